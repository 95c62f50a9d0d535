"""The events a call of the user agent reports to the call layer (frozen dataclasses), and two
small SDP text helpers: the direction for hold and resume, and the DTLS role an answer settled.

Outgoing calls report :class:`Provisional`, :class:`EarlyMedia`, :class:`Answered`; incoming
ones :class:`Confirmed` (the ACK of our 2xx) or :class:`Cancelled`; both
:class:`InfoReceived`, :class:`ReinviteReceived`, :class:`ReinviteAcked`, and end with one of :data:`TERMINAL`
(:class:`Failed`, :class:`Cancelled`, :class:`Bye`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sipcore.syntax.reason import ReasonValue

__all__ = [
    "TERMINAL",
    "Answered",
    "Bye",
    "CallEvent",
    "Cancelled",
    "Confirmed",
    "EarlyMedia",
    "Failed",
    "InfoReceived",
    "MessageReceived",
    "Provisional",
    "ReferProgress",
    "ReferReceived",
    "ReinviteAcked",
    "ReinviteReceived",
    "ReinviteResult",
    "set_direction",
    "with_settled_setup",
]


@dataclass(frozen=True, slots=True)
class Provisional:
    """A 1xx to our INVITE (100 included)."""

    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class EarlyMedia:
    """An 18x to our INVITE carrying SDP: the answer for early media (RFC 3261 §13.2.1)."""

    sdp: str


@dataclass(frozen=True, slots=True)
class Answered:
    """A 2xx to our INVITE (ACKed); ``sdp`` is the answer in it."""

    sdp: str


@dataclass(frozen=True, slots=True)
class Confirmed:
    """The ACK to our 2xx arrived: the incoming call is established."""

    sdp: str = ""  # an answer in the ACK, when their INVITE had no offer


@dataclass(frozen=True, slots=True)
class Failed:
    """The call ended without being established, or its 2xx was never ACKed (terminal)."""

    status: int
    reason: str
    contacts: tuple[str, ...] = ()  # a 3xx's targets, best q-value first (RFC 3261 §8.1.3.4)


@dataclass(frozen=True, slots=True)
class Cancelled:
    """The caller cancelled the incoming call before it was answered; 487 was sent (terminal).

    `reasons`: the CANCEL's Reason header values (RFC 3326), e.g. SIP cause 200 when a forking proxy
    cancels the branches that lost to the one that answered."""

    reasons: tuple[ReasonValue, ...] = ()


@dataclass(frozen=True, slots=True)
class Bye:
    """The established call ended by a BYE (terminal)."""

    by_remote: bool
    status: int = 200  # the answer to our BYE when we sent it
    reasons: tuple[ReasonValue, ...] = ()  # the BYE's Reason header values (RFC 3326), either way


@dataclass(frozen=True, slots=True)
class InfoReceived:
    """An INFO in the dialog (RFC 6086), already answered 200."""

    content_type: str
    body: bytes


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A text/plain MESSAGE in the dialog (RFC 3428 §4), already answered 200: the text (UTF-8)."""

    text: str


@dataclass(frozen=True, slots=True)
class ReinviteReceived:
    """A re-INVITE (hold, resume...): answer it with ``answer_reinvite``. ``sdp`` is its offer, empty
    when it had none: then the 200 carries our offer and the ACK the answer (:class:`ReinviteAcked`)."""

    sdp: str


@dataclass(frozen=True, slots=True)
class ReinviteAcked:
    """The ACK to our 2xx for their re-INVITE; ``sdp`` is the answer in it (empty when none)."""

    sdp: str = ""


@dataclass(frozen=True, slots=True)
class ReinviteResult:
    """The outcome of our re-INVITE: the final status and the answer SDP of a 2xx."""

    status: int
    reason: str
    sdp: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True, slots=True)
class ReferProgress:
    """A NOTIFY of our REFER's implicit subscription (RFC 3515 §2.4.5), already answered 200: the status
    line of its message/sipfrag; ``terminated`` when the subscription ended with it."""

    status: int
    reason: str
    terminated: bool


@dataclass(frozen=True, slots=True)
class ReferReceived:
    """A REFER in the dialog (RFC 3515): answer it with ``answer_refer`` (202 or a refusal), then report
    the referred call with ``notify_refer``. ``target`` is the Refer-To URI without its headers,
    ``replaces`` the escaped Replaces it carried (RFC 3891 §5), empty when none."""

    target: str
    replaces: str = ""
    referred_by: str = ""


CallEvent = (
    Provisional
    | EarlyMedia
    | Answered
    | Confirmed
    | Failed
    | Cancelled
    | Bye
    | InfoReceived
    | MessageReceived
    | ReinviteReceived
    | ReinviteAcked
    | ReferProgress
    | ReferReceived
)
TERMINAL = (Failed, Cancelled, Bye)


_DIRECTION = re.compile(r"^a=(sendrecv|sendonly|recvonly|inactive)(?=\r?$)", re.MULTILINE)  # (the CR stays)
_ORIGIN = re.compile(r"^(o=\S+ \S+ )(\d+)", re.MULTILINE)


def set_direction(sdp: str, direction: str) -> str:
    """``sdp`` with every direction attribute set to ``direction`` (one added at the end when it
    has none) and the o= version incremented (RFC 3264 §8, §8.4: hold is ``sendonly``)."""
    if direction not in ("sendrecv", "sendonly", "recvonly", "inactive"):
        raise ValueError(f"invalid SDP direction {direction!r}")
    text, count = _DIRECTION.subn(f"a={direction}", sdp)
    if not count:
        text = text.rstrip("\r\n") + f"\r\na={direction}\r\n"
    return _ORIGIN.sub(lambda m: f"{m.group(1)}{int(m.group(2)) + 1}", text, count=1)


def with_settled_setup(offer: str, answer: str) -> str:
    """Our ``offer`` as the DTLS roles stand once ``answer`` settled them (RFC 5763 §5: actpass is for
    offers only): ``a=setup:actpass`` made passive to an active answer, else active; the SDP to mirror in
    answers to the peer's later re-INVITEs."""
    ours = "passive" if "a=setup:active" in answer else "active"
    return offer.replace("a=setup:actpass", f"a=setup:{ours}")
