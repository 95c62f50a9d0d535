"""Media: the SIP leg's plain RTP, the aiortc web leg, and the bridge between them (the only aiortc user).

    from gateway.media.bridge import MediaBridge
    from gateway.media.bridge_settings import BridgeSettings, settings_from_config

Modules: ``rtp``/``rtcp``/``rtp_stats`` (packets, sans-I/O), ``ports`` (RTP port allocation),
``rtp_endpoint`` (symmetric RTP socket), ``dtmf`` (RFC 4733 and INFO bodies), ``sip_leg`` (the endpoint
as SDP), ``webrtc_leg`` + ``web_sdp`` (aiortc), ``aiortc_hooks`` (every private aiortc internal used),
``forward`` + ``retime`` + ``transcode`` (one direction of media), ``codec_choice``, ``dtmf_player``,
``watchdog``, ``events``, ``bridge``. This package imports no aiortc until the web-leg modules are imported.
"""

from gateway.media.errors import DtmfError, EndpointError, MediaError, PacketError, PortAllocationError

__all__ = ["DtmfError", "EndpointError", "MediaError", "PacketError", "PortAllocationError"]
