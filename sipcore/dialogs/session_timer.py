"""Session timers (RFC 4028), the negotiation part. Sans-I/O.

A UAS answering an INVITE (or re-INVITE) that carries Session-Expires:

    decision = uas_decision(request, policy)
    if isinstance(decision, TooSmall):   # 422 Session Interval Too Small, with Min-SE (§7.2, §9)
        respond 422 with headers decision.headers()
    elif decision is not None:           # the 2xx carries decision.headers(); who refreshes: decision.we_refresh
        ...

A UAC reads the 2xx of its INVITE with ``uac_decision(response, policy)``. The refresher sends a
re-INVITE at half the interval (§10); the other side ends the session with BYE when no refresh came by
``expiry_deadline`` (the interval minus min(32 s, a third of it), §10).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from sipcore.errors import BadRequest
from sipcore.syntax.message import Request, Response

MIN_MIN_SE: Final = 90  # RFC 4028 §4: no Min-SE below 90 s (the policy may lower it for tests only)
_DELTA: Final = re.compile(r"\s*(\d{1,9})\s*((?:;.*)?)")

Refresher = Literal["uac", "uas"]


@dataclass(frozen=True, slots=True)
class TimerPolicy:
    interval: int = 1800  # what we ask for (RFC 4028 §4 recommends 1800 s)
    min_se: int = MIN_MIN_SE  # the shortest we accept

    def __post_init__(self) -> None:
        if not 0 < self.min_se <= self.interval:
            raise ValueError(f"need 0 < min_se <= interval, got {self.min_se} and {self.interval}")


@dataclass(frozen=True, slots=True)
class SessionTimer:
    """An agreed session interval, and whether we are the refresher."""

    interval: int
    refresher: Refresher
    we_are: Refresher  # our role in the dialog's INVITE: "uac" when we sent it

    @property
    def we_refresh(self) -> bool:
        return self.refresher == self.we_are

    @property
    def refresh_after(self) -> float:
        return self.interval / 2

    @property
    def expiry_deadline(self) -> float:
        """Seconds without a refresh after which the session is over (§10)."""
        return self.interval - min(32.0, self.interval / 3)

    def refresher_in(self, *, request: bool) -> Refresher:
        """The refresher parameter of a message we send in this dialog. RFC 4028 §7.4 (requests) and §9
        (responses) name the refresher by its role in the transaction that carries it, not in the
        dialog's first INVITE: in our re-INVITE or UPDATE we are the UAC, in our 2xx the UAS."""
        if self.we_refresh:
            return "uac" if request else "uas"
        return "uas" if request else "uac"

    def request_headers(self) -> tuple[tuple[str, str], ...]:
        """Session-Expires of a refresh or re-offer we send (re-INVITE, UPDATE: RFC 4028 §7.4)."""
        return (("Session-Expires", f"{self.interval};refresher={self.refresher_in(request=True)}"),)

    def headers(self, *, require: bool) -> tuple[tuple[str, str], ...]:
        """Session-Expires (and ``Require: timer`` when ``require``) of our 2xx to an INVITE, re-INVITE
        or UPDATE (RFC 4028 §9): the refresher as a role in that transaction."""
        items = [("Session-Expires", f"{self.interval};refresher={self.refresher_in(request=False)}")]
        if require:
            items.append(("Require", "timer"))
        return tuple(items)


@dataclass(frozen=True, slots=True)
class TooSmall:
    """The request's interval is below our Min-SE: 422 with it (§9)."""

    min_se: int

    def headers(self) -> tuple[tuple[str, str], ...]:
        return (("Min-SE", str(self.min_se)),)


def parse_session_expires(value: str) -> tuple[int, Refresher | None]:
    """(delta-seconds, refresher) of a Session-Expires (or x) value; BadRequest when malformed."""
    found = _DELTA.fullmatch(value)
    if found is None or int(found.group(1)) < 1:
        raise BadRequest(f"invalid Session-Expires {value!r}")
    refresher: Refresher | None = None
    for param in found.group(2).split(";")[1:]:
        name, _, raw = param.strip().partition("=")
        if name.lower() == "refresher":
            text = raw.strip().lower()
            if text not in ("uac", "uas"):
                raise BadRequest(f"invalid refresher in Session-Expires {value!r}")
            refresher = "uac" if text == "uac" else "uas"
    return int(found.group(1)), refresher


def supports_timer(message: Request | Response) -> bool:
    return "timer" in message.headers.tags("Supported")


def _session_expires(message: Request | Response) -> str | None:
    return message.headers.get("Session-Expires") or message.headers.get("x")


def uas_decision(request: Request, policy: TimerPolicy) -> SessionTimer | TooSmall | None:
    """What to answer an INVITE's Session-Expires with: an agreed timer, a 422, or None (none asked)."""
    value = _session_expires(request)
    if value is None:
        return None
    interval, refresher = parse_session_expires(value)
    if interval < policy.min_se:
        return TooSmall(policy.min_se)
    if refresher is None:  # §9: ours to choose; a UAC without timer support cannot refresh
        refresher = "uac" if supports_timer(request) else "uas"
    elif refresher == "uac" and not supports_timer(request):
        refresher = "uas"
    return SessionTimer(interval, refresher, "uas")


def uac_decision(response: Response, policy: TimerPolicy) -> SessionTimer | None:
    """The timer a 2xx to our INVITE agreed on (§7.2); None when it names none."""
    value = _session_expires(response)
    if value is None:
        return None
    interval, refresher = parse_session_expires(value)
    return SessionTimer(max(interval, 1), refresher or "uac", "uac")


def uac_headers(policy: TimerPolicy) -> tuple[tuple[str, str], ...]:
    """What our INVITEs carry: the interval asked for and our Min-SE (Supported: timer is the UA's)."""
    return (("Session-Expires", str(policy.interval)), ("Min-SE", str(policy.min_se)))
