"""The media bridge's states (gateway/media/bridge.py): IDLE -> AWAITING_SIP_ANSWER or AWAITING_WEB_ANSWER
-> ACTIVE -> CLOSED, and the error an illegal call raises. WEB_OFFER_TAKEN lies between IDLE and
AWAITING_SIP_ANSWER when the browser is answered before our SIP offer is made (``take_web_offer``,
``answer_web_first``, then ``sip_offer``: the HTTP offer API's early answer)."""

from __future__ import annotations

import enum

from gateway.media.errors import MediaError


class BridgeError(MediaError):
    """A bridge method called in a state that does not allow it."""


class BridgeState(enum.Enum):
    IDLE = "idle"
    WEB_OFFER_TAKEN = "web-offer-taken"  # the browser's offer checked, the SIP leg's ports leased
    AWAITING_SIP_ANSWER = "awaiting-sip-answer"
    AWAITING_WEB_ANSWER = "awaiting-web-answer"
    ACTIVE = "active"
    CLOSED = "closed"


TRANSITIONS = frozenset(
    {
        (BridgeState.IDLE, BridgeState.AWAITING_SIP_ANSWER),
        (BridgeState.IDLE, BridgeState.WEB_OFFER_TAKEN),
        (BridgeState.WEB_OFFER_TAKEN, BridgeState.AWAITING_SIP_ANSWER),
        (BridgeState.IDLE, BridgeState.AWAITING_WEB_ANSWER),
        (BridgeState.AWAITING_SIP_ANSWER, BridgeState.ACTIVE),
        (BridgeState.AWAITING_WEB_ANSWER, BridgeState.ACTIVE),
        *((s, BridgeState.CLOSED) for s in BridgeState if s is not BridgeState.CLOSED),
    }
)
