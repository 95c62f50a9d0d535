"""The video of a call (issue 19): passed through between the web leg and a second SIP-side RTP endpoint,
never decoded; keyframe requests and bandwidth hints mapped both ways.

Owns ``video_bridge`` (``VideoBridge``, owned by the ``MediaBridge`` when video is negotiated),
``forward`` (``VideoPath``: one direction, sans-I/O), ``keyframe`` (RTCP PLI/FIR, SIP INFO
picture_fast_update) and ``bandwidth`` (REMB, TMMBR/TMMBN), all sans-I/O but the bridge. It may import
``sdp``, the legs (``gateway.media.webrtc``: the web leg's video transceiver is ``web_video`` there;
``gateway.media.rtp``), ``gateway.media.codecs.codec_choice`` and the media package's shared modules;
never aiortc itself. The fast lane's video is ``gateway.media.fastlane.video_lanes``, which imports this
package, never the other way round (type hints excepted).
"""
