"""The web leg's states (gateway/media/webrtc/webrtc_leg.py): NEW -> NEGOTIATING -> CONNECTED, FAILED from
NEGOTIATING or CONNECTED, CLOSED from any; and the error an illegal use raises."""

from __future__ import annotations

import enum

from gateway.media.errors import MediaError


class WebLegError(MediaError):
    """The web leg was used in a state that does not allow it, or aiortc refused a description."""


class IceSocketsError(WebLegError):
    """No ICE socket could be opened: no descriptor or port pair left (issue 32, issue 36); 503, as for
    the SIP leg's ports (``PortAllocationError``)."""

    sip_status = 503


class WebLegState(enum.Enum):
    NEW = "new"
    NEGOTIATING = "negotiating"
    CONNECTED = "connected"
    FAILED = "failed"
    CLOSED = "closed"


TRANSITIONS = {
    (WebLegState.NEW, WebLegState.NEGOTIATING),
    (WebLegState.NEGOTIATING, WebLegState.CONNECTED),
    (WebLegState.NEGOTIATING, WebLegState.FAILED),
    (WebLegState.CONNECTED, WebLegState.FAILED),
    *((state, WebLegState.CLOSED) for state in WebLegState if state is not WebLegState.CLOSED),
}
