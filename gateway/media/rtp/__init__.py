"""The SIP leg: plain RTP/AVP over asyncio UDP sockets, its packets, reports and keys.

Owns the sans-I/O protocol pieces (``packet``: RTP, RFC 3550 §5; ``rtcp``; ``rtp_stats``: receive
statistics; ``latch``: symmetric RTP, RFC 4961; ``retime``: timestamp continuity; ``dtls_srtp`` and
``ice_lite``: DTLS-SRTP and ICE-lite toward a SIP peer), RTP port allocation (``ports``), SRTP (``srtp``:
SDES and DTLS-keyed, pylibsrtp's public API), and the asyncio side: ``rtp_endpoint`` (``RtpEndpoint``, one
symmetric RTP socket pair; its states and settings in ``endpoint_state``, its RTCP in ``endpoint_rtcp``),
``sip_dtls`` (DTLS and ICE-lite on its sockets), ``sip_leg`` (the endpoint as SDP). It may import
``sdp``, pylibsrtp, pyOpenSSL, aioice's STUN messages (``ice_lite``), the media package's shared modules
(``errors``, ``arrival``, ``coarse_timers``, ``slim_waiters``, ``bridge_settings``) and
``gateway.media.codecs`` (codec choice, packet times); never aiortc, the web leg
(``gateway.media.webrtc``) or the fast lane.
"""
