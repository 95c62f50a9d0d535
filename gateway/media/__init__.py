"""Media: the bridge that pairs a call's two legs, and what every part of the media plane shares; the only
user of aiortc, aioice, pylibsrtp and PyAV (no aiortc is imported until a web-leg module is).

    from gateway.media.bridge import MediaBridge
    from gateway.media.bridge_settings import BridgeSettings, settings_from_config

Here: ``bridge`` (``MediaBridge``; ``bridge_setup``: the first offer and answer; ``bridge_midcall``:
mid-call offers; ``bridge_state``; ``bridge_settings``), ``forward`` (``MediaPath``: one direction of audio),
``watchdog``, ``warmup``, and the shared base the sub-packages may import: ``errors``, ``events``,
``arrival``, ``coarse_timers``, ``slim_waiters``, ``native_hooks`` (pylibsrtp's, PyAV's and asyncio's
private internals). Sub-packages, named after the architecture: ``webrtc`` (the aiortc web leg, ICE,
DTLS, every aiortc hook), ``rtp`` (the SIP leg: RTP/RTCP, SRTP, DTLS-SRTP, ICE-lite, the endpoint),
``codecs`` (codec choice, transcoding, Opus, DTMF, packet times, the rooms' mixer), ``video`` (video
pass-through, keyframes, bandwidth), ``fastlane`` (the native engine's C sources and Python side) and
``streaming`` (a call's audio decoded for an app's live stream, and the app's mixed in: sans-I/O).
The bridge and the fast lane may import every sub-package; the others import no bridge module but
``bridge_settings`` (the settings a leg is built with).
"""

from gateway.media.errors import DtmfError, EndpointError, MediaError, PacketError, PortAllocationError

__all__ = ["DtmfError", "EndpointError", "MediaError", "PacketError", "PortAllocationError"]
