"""The web leg: one aiortc ``RTCPeerConnection`` per call (ICE, DTLS-SRTP, rtcp-mux, BUNDLE), its raw RTP in
and out around aiortc's queues and codecs, and every hook into aiortc's and aioice's private internals.

Owns ``webrtc_leg`` (``WebRtcLeg``; its states in ``web_leg_state``), ``web_video`` (its bundled video
transceiver), ``web_sdp`` (fix-ups between the browser's descriptions and aiortc's), ``aiortc_hooks``,
``aiortc_direct`` and ``aiortc_receive`` (RTP out and in), ``aiortc_rtcp`` and ``aiortc_dtls`` (the
private internals, guarded by ``tests/media/webrtc/test_aiortc_hooks.py``), ``ice_completion``,
``ice_restart`` and ``ice_consent`` (aioice's, RFC 7675 consent), ``data_channel`` (chat), ``offer_check`` (a browser's offer checked in full before a call is
dialled). It may import
aiortc, aioice, ``sdp``, the media package's shared modules (``errors``, ``events``, ``arrival``,
``coarse_timers``, ``slim_waiters``), and two sans-I/O values of other parts:
``gateway.media.rtp.rtp_stats.ReceptionState`` (receive statistics the fast lane hands over) and
``gateway.media.video.forward.VideoOut`` (a video packet out); never the SIP leg's endpoint, the bridge
or the fast lane.
"""
