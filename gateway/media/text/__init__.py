"""Real-time text of a call (issue 68): RFC 4103 T.140 over RTP on the SIP side, an RFC 8865 T.140 data
channel on the web leg.

Owns ``t140`` (the RTP payloads: RED redundancy recovered on receipt, 300 ms buffering and two
generations on sending; sans-I/O) and ``text_bridge`` (``TextBridge``, owned by the ``MediaBridge``: the
SIP side's text endpoint and the data channel). It may import ``sdp``, ``gateway.media.rtp``,
``gateway.media.codecs.codec_choice``, the media package's shared modules and aiortc's data channel type.
"""
