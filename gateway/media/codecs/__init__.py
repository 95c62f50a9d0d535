"""Audio payloads: which codec each leg uses, and everything done to an audio payload between them.

Owns ``codec_choice`` (the codec of each leg and the plain RTP offer, pure), ``transcode`` (PyAV and
libopus between Opus, G.711, G.722 and G.729), ``g729`` (libbcg729 through ctypes, SIP leg only),
``opus_decoder`` (libopus through ctypes), ``opus_settings`` (the process's Opus encoder settings),
``packetize`` (other packet times for G.711, G.722, G.729), ``dtmf`` (RFC 4733 and SIP INFO bodies, sans-I/O)
and ``dtmf_player`` (paced telephone-events), and the rooms' audio ``mixer`` with its ``pcm_codec``. It may import PyAV, ``sdp``, and the media package's ``errors`` and
``native_hooks``; never aiortc, a leg, the bridge or the fast lane (``opus_settings`` hands its setting to
the compiled engine through a function-level import).
"""
