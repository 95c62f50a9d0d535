"""Why a call ended, in words for the user, both ways between SIP status codes and reason codes.

Outbound, a final failure response (RFC 3261 §21) becomes a `Reason` the browser shows
(`reason_for_status`): an exact table for the statuses users meet, then one entry per status class
(3xx-6xx) that quotes the status. Inbound, the web user's choice or the call's fate becomes the
status the caller hears (`REJECT_STATUS`, `RESPONSE_PHRASES`). Ring timeouts answer 480, as
ISDN cause 19 "no answer from user" maps to 480 (RFC 3398 §8.2.6.1) and Asterisk and FreeSWITCH
answer an unanswered call so.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from gateway.calls.errors import InvalidValue
from gateway.calls.states import RejectKind
from sipcore.errors import Unreachable


class EndReason(enum.StrEnum):
    """The `reason` code of an `ended` (or `error`) event to the browser."""

    # from a SIP final response
    NO_SUCH_NUMBER = "no_such_number"
    BUSY = "busy"
    CANCELLED = "cancelled"
    PBX_UNREACHABLE = "pbx_unreachable"
    UNAVAILABLE = "unavailable"
    DECLINED = "declined"
    INCOMPATIBLE_MEDIA = "incompatible_media"
    FORBIDDEN = "forbidden"
    AUTH_FAILED = "auth_failed"
    REDIRECTED = "redirected"
    REJECTED = "rejected"
    SERVER_ERROR = "server_error"
    GLOBAL_FAILURE = "global_failure"
    # from the gateway or the users
    HANGUP = "hangup"  # the web user hung up
    REMOTE_HANGUP = "remote_hangup"  # the SIP party sent BYE
    CONNECTION_LOST = "connection_lost"  # the SIP dialog ended without a BYE (no ACK, transport)
    NO_ANSWER = "no_answer"
    MEDIA_TIMEOUT = "media_timeout"
    MEDIA_FAILED = "media_failed"
    DISCONNECTED = "disconnected"  # the browser's session went away
    ANSWERED_ELSEWHERE = "answered_elsewhere"
    REJECTED_ELSEWHERE = "rejected_elsewhere"
    CALLER_CANCELLED = "caller_cancelled"
    DESTINATION_NOT_ALLOWED = "destination_not_allowed"
    BAD_DESTINATION = "bad_destination"
    HOLD_FAILED = "hold_failed"
    RENEGOTIATION_FAILED = "renegotiation_failed"  # the browser's own new offer mid-call was refused
    TRANSFERRED = "transferred"  # the web user transferred the call (REFER succeeded)
    SHUTDOWN = "shutdown"  # the gateway stopped (SIGTERM, a restart)
    ADMIN_HANGUP = "admin_hangup"  # an administrator ended the call (the admin page or API)


@dataclass(frozen=True, slots=True)
class Reason:
    """A reason code, the sentence shown to the user, and the SIP status behind it (if any)."""

    code: EndReason
    message: str
    sip_status: int | None = None

    def __post_init__(self) -> None:
        if self.sip_status is not None and not 100 <= self.sip_status <= 699:
            raise InvalidValue(f"SIP status must be 100-699, got {self.sip_status!r}")


# Exact statuses (RFC 3261 §21.4-21.6); others fall back to their class below.
_BY_STATUS: Final[Mapping[int, tuple[EndReason, str]]] = MappingProxyType(
    {
        401: (EndReason.AUTH_FAILED, "The PBX did not accept the gateway's credentials"),
        403: (EndReason.FORBIDDEN, "The PBX refused the call"),
        404: (EndReason.NO_SUCH_NUMBER, "No such number"),
        407: (EndReason.AUTH_FAILED, "The PBX did not accept the gateway's credentials"),
        408: (EndReason.PBX_UNREACHABLE, "The PBX is unreachable"),
        410: (EndReason.NO_SUCH_NUMBER, "The number is no longer in service"),
        480: (EndReason.UNAVAILABLE, "The person you called is unavailable"),
        484: (EndReason.NO_SUCH_NUMBER, "The number is incomplete"),
        486: (EndReason.BUSY, "Busy"),
        487: (EndReason.CANCELLED, "The call was cancelled"),
        488: (EndReason.INCOMPATIBLE_MEDIA, "The other side cannot use the call's audio"),
        600: (EndReason.BUSY, "Busy everywhere"),
        603: (EndReason.DECLINED, "The call was declined"),
        604: (EndReason.NO_SUCH_NUMBER, "The number does not exist anywhere"),
        606: (EndReason.INCOMPATIBLE_MEDIA, "The other side cannot use the call's audio"),
    }
)
_BY_CLASS: Final[Mapping[int, tuple[EndReason, str]]] = MappingProxyType(
    {
        3: (EndReason.REDIRECTED, "The call was redirected, which the gateway does not follow"),
        4: (EndReason.REJECTED, "The call failed"),
        5: (EndReason.SERVER_ERROR, "The PBX reported an error"),
        6: (EndReason.GLOBAL_FAILURE, "The call was refused"),
    }
)

_LOCAL: Final[Mapping[EndReason, str]] = MappingProxyType(
    {
        EndReason.HANGUP: "You hung up",
        EndReason.REMOTE_HANGUP: "The other side hung up",
        EndReason.CONNECTION_LOST: "The connection to the other side was lost",
        EndReason.NO_ANSWER: "No answer",
        EndReason.MEDIA_TIMEOUT: "No audio arrived for too long",
        EndReason.MEDIA_FAILED: "The audio connection failed",
        EndReason.DISCONNECTED: "The browser disconnected",
        EndReason.ANSWERED_ELSEWHERE: "answered elsewhere",
        EndReason.REJECTED_ELSEWHERE: "rejected elsewhere",
        EndReason.CALLER_CANCELLED: "The caller hung up",
        EndReason.CANCELLED: "The call was cancelled",
        EndReason.DESTINATION_NOT_ALLOWED: "You may not call this destination",
        EndReason.BAD_DESTINATION: "Not a number or SIP address the gateway can call",
        EndReason.PBX_UNREACHABLE: "The PBX is unreachable",
        EndReason.HOLD_FAILED: "The other side refused the hold or resume",
        EndReason.TRANSFERRED: "The call was transferred",
        EndReason.SHUTDOWN: "The phone gateway stopped (a restart?): call again in a moment",
        EndReason.ADMIN_HANGUP: "An administrator ended the call",
    }
)

MAX_DETAIL_CHARS: Final = 120  # of the detail added to a reason phrase (see `phrase`)
# Reason phrases of the statuses the gateway sends (RFC 3261 §21).
RESPONSE_PHRASES: Final[Mapping[int, str]] = MappingProxyType(
    {
        180: "Ringing",
        200: "OK",
        400: "Bad Request",
        404: "Not Found",
        480: "Temporarily Unavailable",
        481: "Call/Transaction Does Not Exist",
        486: "Busy Here",
        487: "Request Terminated",
        488: "Not Acceptable Here",
        491: "Request Pending",
        500: "Server Internal Error",
        603: "Decline",
    }
)

REJECT_STATUS: Final[Mapping[RejectKind, int]] = MappingProxyType(
    {RejectKind.BUSY: 486, RejectKind.UNAVAILABLE: 480, RejectKind.DECLINE: 603}
)


def reject_kind(status: int) -> RejectKind:
    """The `RejectKind` whose response is SIP `status` (480, 486 or 603; the browser's `reject`)."""
    for kind, code in REJECT_STATUS.items():
        if code == status:
            return kind
    raise InvalidValue(f"a web user cannot reject with SIP {status!r}; only {sorted(REJECT_STATUS.values())}")


def reason_for_status(status: int, phrase: str = "") -> Reason:
    """The user-facing reason for a final failure `status` of an outbound INVITE."""
    if not 300 <= status <= 699:
        raise InvalidValue(f"not a final failure status: {status!r}")
    if status == 503 and phrase.startswith(Unreachable.phrase):  # our own: ICMP unreachable, TCP refused
        return Reason(EndReason.PBX_UNREACHABLE, _unreachable(phrase), status)
    exact = _BY_STATUS.get(status)
    if exact is not None:
        return Reason(exact[0], exact[1], status)
    code, message = _BY_CLASS[status // 100]
    said = f"SIP {status} {phrase}".rstrip()
    return Reason(code, f"{message} ({said})", status)


def _unreachable(phrase: str) -> str:
    """What the web user is told of an unreachable PBX: how it failed ("refused the connection", "ICMP:
    Connection refused"), never where: the PBX's address, first in the transport's detail, stays in the
    gateway's log (issue 33: it reached the browser, cut mid-word)."""
    detail = phrase.removeprefix(Unreachable.phrase).lstrip(": ")
    how = detail.split(" ", 1)[1].strip(" ()") if " " in detail else ""
    return f"The PBX is unreachable ({Unreachable.phrase}{': ' + how if how else ''})"


def local_reason(code: EndReason, sip_status: int | None = None, message: str | None = None) -> Reason:
    """A reason the gateway itself decided on (hangups, timeouts, media, policy)."""
    text = message if message is not None else _LOCAL.get(code, code.value.replace("_", " "))
    return Reason(code, text, sip_status)


def phrase(status: int, detail: str | None = None) -> str:
    """The reason phrase the gateway sends with `status`; `detail` (why an offer was refused) is added
    in parentheses, so that the other side's logs say what was wrong with its SDP (RFC 3261 §21.4.26
    leaves the phrase to the UAS). Control characters become spaces: a phrase is one line."""
    text = RESPONSE_PHRASES.get(status, "")
    if detail:
        cleaned = "".join(ch if ch.isprintable() else " " for ch in detail)[:MAX_DETAIL_CHARS]
        text = f"{text} ({cleaned})" if text else cleaned
    return text
