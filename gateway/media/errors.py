"""Errors of the media package: one base class, subclasses per cause."""

from __future__ import annotations


class MediaError(Exception):
    """Base class of every error raised by ``gateway.media``; ``sip_status``: the SIP response a call that
    fails of it gives, when one is due (None: the call's own choice)."""

    sip_status: int | None = None


class PacketError(MediaError):
    """An RTP or RTCP packet (from the network or built locally) is malformed (RFC 3550 §5.1, §6.4)."""


class PortAllocationError(MediaError):
    """No RTP/RTCP port pair could be allocated in the configured range: 503 (RFC 3261 §21.5.4, a
    temporary overload: the caller may try again later or elsewhere)."""

    sip_status = 503


class EndpointError(MediaError):
    """An RTP endpoint was used in a state that does not allow it (for example sending after close)."""


class DtmfError(MediaError):
    """A DTMF event, RFC 4733 payload or SIP INFO DTMF body is malformed or unknown."""
