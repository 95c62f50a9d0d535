"""Media: the plain RTP leg (RTP/RTCP, ports, symmetric RTP endpoint, DTMF) and, later, the aiortc web leg.

This is the only package that imports aiortc; the modules present so far do not need it.
"""

from gateway.media.errors import DtmfError, EndpointError, MediaError, PacketError, PortAllocationError

__all__ = ["DtmfError", "EndpointError", "MediaError", "PacketError", "PortAllocationError"]
