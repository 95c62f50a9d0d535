"""Reliable provisional responses (RFC 3262, "100rel"): RSeq, RAck, PRACK; sans-I/O.

How it works, on each side of an INVITE transaction:

- UAC (we sent the INVITE): :class:`ProvisionalTracker` classifies each 1xx (:meth:`classify`): a
  reliable one (``Require: 100rel`` and ``RSeq``, §7.1) whose RSeq is the next in order for its
  early dialog is ``NEW`` (process it and PRACK it, RAck = RSeq, CSeq number, method, §7.2); the
  same RSeq again is a ``RETRANSMISSION`` (never processed again, §4; the gateway resends the same
  PRACK, a retransmission of its transaction, so a UAS whose PRACK was lost stops sooner); any
  other RSeq is ``OUT_OF_ORDER`` (neither PRACKed nor processed, §4); a 1xx without both headers is
  ``UNRELIABLE``. The first RSeq of each early dialog (each To tag: forks count separately) is
  taken as it comes (§4).
- UAS (we answer the INVITE): :class:`ReliableSender` is a state machine (``TABLE``) that stamps
  our 1xx with ``RSeq`` and ``Require: 100rel`` (§3), keeps one unacknowledged at a time (a later
  one waits in a queue, §3), tells the caller to retransmit it at T1, 2*T1, 4*T1... until its
  PRACK (:meth:`prack`: 200 for the one matching RAck, 481 for any other, §3) and to give up
  (the INVITE then fails with a 5xx, §3) once 64*T1 passed without one. :meth:`may_send_2xx` says
  whether the final 2xx can go: not while a reliable 1xx carrying SDP is unacknowledged (§3).

Every method returns actions (:class:`Transmit`, :class:`Arm`, :class:`GiveUp`) instead of doing
anything; the time comes in as ``now``.
"""

from __future__ import annotations

import enum
import logging
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from sipcore.errors import BadRequest, SIPError
from sipcore.syntax.headers import is_token
from sipcore.syntax.message import Request, Response
from sipcore.tables import transition_table

__all__ = [
    "RSEQ_MAX",
    "TABLE",
    "Action",
    "Arm",
    "GiveUp",
    "ProvisionalTracker",
    "RAck",
    "ReliableError",
    "ReliableEvent",
    "ReliableSender",
    "ReliableState",
    "Transmit",
    "Verdict",
    "is_reliable",
    "parse_rseq",
    "wants_reliable",
]

logger = logging.getLogger(__name__)

RSEQ_MAX = 2**31 - 1  # §3: the first RSeq is chosen between 1 and 2**31 - 1
_SEQ_LIMIT = 2**32 - 1  # §7.1: RSeq is a 32-bit number, never 0
TAG = "100rel"


class ReliableError(SIPError):
    """A reliable provisional response or a PRACK the machine cannot take in its state."""

    status = 500
    phrase = "Server Internal Error"


def _number(text: str, what: str) -> int:
    text = text.strip()
    if not text.isdigit() or len(text) > 10:
        raise BadRequest(f"{what} {text!r} is not a number")
    value = int(text)
    if not 1 <= value <= _SEQ_LIMIT:
        raise BadRequest(f"{what} {value} out of range 1..{_SEQ_LIMIT}")
    return value


def parse_rseq(value: str) -> int:
    """``RSeq: 988789`` (RFC 3262 §7.1)."""
    return _number(value, "RSeq")


@dataclass(frozen=True, slots=True)
class RAck:
    """``RAck: <RSeq> <CSeq number> <method>`` of a PRACK (RFC 3262 §7.2)."""

    rseq: int
    cseq: int
    method: str

    def __post_init__(self) -> None:
        for name, value in (("RSeq", self.rseq), ("CSeq", self.cseq)):
            if not 1 <= value <= _SEQ_LIMIT:
                raise ValueError(f"RAck {name} {value!r} out of range 1..{_SEQ_LIMIT}")
        if not is_token(self.method) or self.method.upper() != self.method:
            raise ValueError(f"RAck method {self.method!r} is not an upper-case token")

    @classmethod
    def parse(cls, value: str) -> RAck:
        parts = value.split()
        if len(parts) != 3:
            raise BadRequest(f"RAck {value!r} is not 'RSeq CSeq method'")
        method = parts[2]
        if not is_token(method):
            raise BadRequest(f"RAck method {method!r} is not a token")
        return cls(_number(parts[0], "RAck RSeq"), _number(parts[1], "RAck CSeq"), method.upper())

    @classmethod
    def of(cls, request: Request) -> RAck:
        """The RAck of a PRACK; BadRequest (400) when it has none or a malformed one."""
        value = request.headers.get("RAck")
        if value is None:
            raise BadRequest("PRACK without RAck (RFC 3262 §7.2)")
        return cls.parse(value)

    def __str__(self) -> str:
        return f"{self.rseq} {self.cseq} {self.method}"


def is_reliable(response: Response) -> bool:
    """A 101-199 sent reliably: ``Require: 100rel`` and an ``RSeq`` (RFC 3262 §4, §7.1). A 100 is
    never reliable (§3)."""
    return (
        100 < response.status < 200
        and TAG in response.headers.tags("Require")
        and response.headers.get("RSeq") is not None
    )


def wants_reliable(request: Request, *, when_supported: bool) -> bool:
    """Whether our 1xx to ``request`` (an INVITE) go reliably: always when it requires 100rel, also
    when it only supports it and ``when_supported`` (RFC 3262 §3: the UAS MAY)."""
    tags = request.headers.tags("Require")
    return TAG in tags or (when_supported and TAG in request.headers.tags("Supported"))


# --- UAC: which 1xx to process and PRACK ----------------------------------------------------------


class Verdict(enum.Enum):
    UNRELIABLE = "unreliable"  # process it, no PRACK
    NEW = "new"  # process it and PRACK it
    RETRANSMISSION = "retransmission"  # already processed: not again (§4)
    OUT_OF_ORDER = "out of order"  # neither processed nor PRACKed (§4)


class ProvisionalTracker:
    """The UAC's RSeq bookkeeping for one INVITE (RFC 3262 §4), per early dialog (To tag)."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def classify(self, response: Response) -> tuple[Verdict, RAck | None]:
        """The verdict on a 1xx, and the RAck its PRACK carries (NEW and RETRANSMISSION)."""
        if not is_reliable(response):
            return Verdict.UNRELIABLE, None
        cseq, to = response.cseq, response.to
        if cseq is None or to is None or not to.tag:
            # §4: a reliable 1xx creates an early dialog; without a To tag there is none to PRACK in.
            return Verdict.OUT_OF_ORDER, None
        try:
            rseq = parse_rseq(response.headers.get("RSeq") or "")
        except SIPError:
            return Verdict.OUT_OF_ORDER, None
        rack = RAck(rseq, cseq.seq, cseq.method)
        last = self._last.get(to.tag)
        if last is None or rseq == last + 1:
            self._last[to.tag] = rseq
            return Verdict.NEW, rack
        if rseq == last:
            return Verdict.RETRANSMISSION, rack
        return Verdict.OUT_OF_ORDER, None


# --- UAS: send 1xx reliably ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transmit:
    """Send this response (a first transmission or a retransmission)."""

    response: Response


@dataclass(frozen=True, slots=True)
class Arm:
    """Call :meth:`ReliableSender.timer` at ``at`` (replaces any earlier timer)."""

    at: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    """64*T1 without PRACK: reject the INVITE with a 5xx (RFC 3262 §3)."""

    status: int = 500
    reason: str = "No PRACK"


Action = Transmit | Arm | GiveUp


class ReliableState(enum.Enum):
    IDLE = "idle"  # no reliable 1xx unacknowledged
    AWAITING_PRACK = "awaiting PRACK"  # one sent, retransmitted until its PRACK
    DONE = "done"  # final response sent or given up: nothing more goes reliably


ReliableEvent = enum.Enum("ReliableEvent", "SEND PRACK TIMER FINISH")


@dataclass(slots=True)
class _Outstanding:
    response: Response
    rseq: int
    first_sent: float
    interval: float


class ReliableSender:
    """Our 1xx to one INVITE, sent reliably (RFC 3262 §3); see the module note."""

    def __init__(
        self,
        invite: Request,
        *,
        t1: float = 0.5,
        rng: random.Random | None = None,
        call_id: str = "",
    ) -> None:
        cseq = invite.cseq
        if invite.method != "INVITE" or cseq is None:
            raise ReliableError(f"reliable provisional responses answer an INVITE, not {invite.method}")
        if t1 <= 0:
            raise ValueError(f"T1 must be positive, not {t1!r}")
        self.cseq = cseq.seq
        self.t1 = t1
        self.call_id = call_id or invite.call_id or ""
        self.state = ReliableState.IDLE
        self._next_rseq = (rng or random.Random()).randint(1, RSEQ_MAX)  # §3
        self._outstanding: _Outstanding | None = None
        self._queue: deque[Response] = deque()
        self._acked_sdp = False

    def __repr__(self) -> str:
        return f"<ReliableSender {self.call_id} {self.state.name}>"

    def _set_state(self, new: ReliableState) -> None:
        logger.info("sip_call_id=%s reliable 1xx: %s -> %s", self.call_id, self.state.name, new.name)
        self.state = new

    def _handle(self, event: ReliableEvent, *args: object) -> list[Action]:
        handler = TABLE.get((self.state, event))
        if handler is None:
            raise ReliableError(f"illegal event {event.name!r} in state {self.state.name!r}")
        return handler(self, *args)

    # --- the caller's interface ----------------------------------------------------------------
    @property
    def unacknowledged(self) -> int | None:
        """The RSeq waiting for its PRACK, if any."""
        return self._outstanding.rseq if self._outstanding is not None else None

    def send(self, response: Response, now: float) -> list[Action]:
        """Send ``response`` (a 101-199 to the INVITE) reliably: now, or after the PRACK of the one
        before it (§3)."""
        if not 100 < response.status < 200:
            raise ReliableError(f"only a 101-199 goes reliably, not {response.status}")
        return self._handle(ReliableEvent.SEND, response, now)

    def prack(self, request: Request, now: float) -> tuple[int, list[Action]]:
        """A PRACK for this INVITE: (200, actions) when its RAck names the unacknowledged 1xx, (481,
        []) when it names nothing we wait for (§3). BadRequest for a PRACK without a valid RAck."""
        rack = RAck.of(request)
        waiting = self._outstanding
        actions = self._handle(ReliableEvent.PRACK, rack, now)
        if waiting is not None and self._outstanding is not waiting:
            return 200, actions
        return 481, []

    def timer(self, now: float) -> list[Action]:
        """The retransmission timer fired."""
        return self._handle(ReliableEvent.TIMER, now)

    def finish(self) -> None:
        """The final response went (or the INVITE ended): stop retransmitting (§3)."""
        self._handle(ReliableEvent.FINISH)

    def may_send_2xx(self) -> bool:
        """False while a reliable 1xx with a body (an SDP offer or answer) is unacknowledged or
        queued: the 2xx must wait for its PRACK (§3)."""
        waiting = [self._outstanding.response] if self._outstanding is not None else []
        return not any(response.body for response in (*waiting, *self._queue))

    # --- handlers --------------------------------------------------------------------------------
    def _transmit(self, response: Response, now: float) -> list[Action]:
        rseq = self._next_rseq
        self._next_rseq = rseq + 1 if rseq < _SEQ_LIMIT else 1
        headers = response.headers
        if TAG not in headers.tags("Require"):
            headers = headers.add("Require", TAG)
        stamped = Response(
            response.status, response.reason, headers.replace("RSeq", str(rseq)), response.body
        )
        self._outstanding = _Outstanding(stamped, rseq, now, self.t1)
        self._set_state(ReliableState.AWAITING_PRACK)
        return [Transmit(stamped), Arm(now + self.t1)]

    def _send_now(self, response: Response, now: float) -> list[Action]:
        return self._transmit(response, now)

    def _enqueue(self, response: Response, now: float) -> list[Action]:
        self._queue.append(response)  # §3: one unacknowledged reliable 1xx at a time
        return []

    def _matched(self, rack: RAck, now: float) -> list[Action]:
        outstanding = self._outstanding
        assert outstanding is not None
        if rack != RAck(outstanding.rseq, self.cseq, "INVITE"):
            return []
        self._outstanding = None
        self._set_state(ReliableState.IDLE)
        return self._transmit(self._queue.popleft(), now) if self._queue else []

    def _unmatched(self, rack: RAck, now: float) -> list[Action]:
        return []

    def _retransmit(self, now: float) -> list[Action]:
        outstanding = self._outstanding
        assert outstanding is not None
        if now - outstanding.first_sent >= 64 * self.t1:
            logger.info("sip_call_id=%s no PRACK for RSeq %d within 64*T1", self.call_id, outstanding.rseq)
            self._outstanding = None
            self._queue.clear()
            self._set_state(ReliableState.DONE)
            return [GiveUp()]
        outstanding.interval *= 2  # §3: T1, then doubling for each retransmission
        deadline = outstanding.first_sent + 64 * self.t1
        return [Transmit(outstanding.response), Arm(min(now + outstanding.interval, deadline))]

    def _stale_timer(self, now: float) -> list[Action]:
        return []

    def _finish(self) -> list[Action]:
        self._outstanding = None
        self._queue.clear()
        self._set_state(ReliableState.DONE)
        return []

    def _absorb(self, *args: object) -> list[Action]:
        return []


_Handler = Callable[..., list[Action]]

TABLE: dict[tuple[ReliableState, ReliableEvent], _Handler] = transition_table(
    ReliableState,
    ReliableEvent,
    ("IDLE", "SEND", ReliableSender._send_now),
    ("AWAITING_PRACK", "SEND", ReliableSender._enqueue),
    ("AWAITING_PRACK", "PRACK", ReliableSender._matched),
    ("IDLE,DONE", "PRACK", ReliableSender._unmatched),
    ("AWAITING_PRACK", "TIMER", ReliableSender._retransmit),
    ("IDLE,DONE", "TIMER", ReliableSender._stale_timer),
    ("IDLE,AWAITING_PRACK", "FINISH", ReliableSender._finish),
    ("DONE", "FINISH", ReliableSender._absorb),
)
