"""The four SIP transaction state machines (RFC 3261 §17, with RFC 6026's Accepted state).

A transaction is a sans-I/O object: ``handle(event, now)`` takes a received message, a
message the TU wants sent, a timer that fired or a transport failure, and returns actions:
:class:`Send` these bytes, :class:`StartTimer` / :class:`CancelTimer` (deadlines are absolute,
on the caller's clock), :class:`PassUp` a message to the TU, :class:`Notify` the TU of a
timeout or transport error, :class:`Terminated` when the transaction can be forgotten.

Each class holds a transition table ``(state, event kind) -> handler function`` (a reference to
the function, not its name, so a typo fails at import). Pairs the RFC says to
absorb map to ``_absorb``; any other pair is illegal and raises :class:`TransactionError`
naming both (a timer fired in a state that has none, the TU sent a response on a client
transaction, ...), as does a timer event for a timer the machine is not running (Timer A on a
reliable transport). Every state change goes through ``_set_state``, which logs ``old -> new``.
Request retransmissions (timers A, E, G) happen only on unreliable transports; timers D, I, J
and K are zero on reliable ones, so those transactions terminate at once (RFC 3261 §17.1.1.2,
§17.1.2.2, §17.2.1, §17.2.2).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from sipcore.errors import SIPError
from sipcore.syntax.message import Headers, Request, Response, make_response
from sipcore.tables import transition_table

# fmt: off
__all__ = [
    "Action", "CancelTimer", "Event", "EventKind", "InviteClientTransaction",
    "InviteServerTransaction", "NonInviteClientTransaction", "NonInviteServerTransaction",
    "Notice", "Notify", "PassUp", "Send", "StartTimer", "State", "Terminated", "Timer",
    "TimerConfig", "Transaction", "TransactionError",
]
# fmt: on

logger = logging.getLogger(__name__)


class TransactionError(SIPError):
    """An event the transaction cannot take in its current state."""

    status = 500
    phrase = "Server Internal Error"


# RFC 3261 §17 states, and RFC 6026's Accepted (§7.1, §8.4).
State = enum.Enum("State", "CALLING TRYING PROCEEDING COMPLETED CONFIRMED ACCEPTED TERMINATED")
# RFC 3261 §17 / Table 4 timers, and RFC 6026's L and M.
Timer = enum.Enum("Timer", "A B D E F G H I J K L M")
# What a transaction reacts to: messages received, responses the TU sends, timers, failures.
EventKind = enum.Enum(
    "EventKind",
    "RECV_1XX RECV_2XX RECV_FINAL_ERROR RECV_REQUEST RECV_ACK SEND_1XX SEND_2XX SEND_FINAL_ERROR "
    "TRANSPORT_ERROR TIMER_A TIMER_B TIMER_D TIMER_E TIMER_F TIMER_G TIMER_H TIMER_I TIMER_J "
    "TIMER_K TIMER_L TIMER_M",
)


_TIMER_OF = {EventKind[f"TIMER_{timer.name}"]: timer for timer in Timer}


_RESPONSE_KINDS = {
    (prefix, suffix): EventKind[f"{prefix}_{suffix}"]
    for prefix in ("RECV", "SEND")
    for suffix in ("1XX", "2XX", "FINAL_ERROR")
}


def _response_kind(response: Response, prefix: str) -> EventKind:
    suffix = "1XX" if response.status < 200 else "2XX" if response.status < 300 else "FINAL_ERROR"
    return _RESPONSE_KINDS[(prefix, suffix)]


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    message: Request | Response | None = None

    @classmethod
    def received(cls, message: Request | Response) -> Event:
        if isinstance(message, Response):
            return cls(_response_kind(message, "RECV"), message)
        return cls(EventKind.RECV_ACK if message.method == "ACK" else EventKind.RECV_REQUEST, message)

    @classmethod
    def send(cls, response: Response) -> Event:
        return cls(_response_kind(response, "SEND"), response)

    @classmethod
    def timer(cls, timer: Timer) -> Event:
        return cls(EventKind[f"TIMER_{timer.name}"])

    @classmethod
    def transport_error(cls) -> Event:
        return cls(EventKind.TRANSPORT_ERROR)


class Notice(enum.Enum):
    TIMEOUT = "timeout"  # RFC 3261 §17.1.1.2 / §17.1.2.2 / §17.2.1 (Timer B, F, H)
    TRANSPORT_ERROR = "transport error"  # RFC 3261 §17.1.4 / §17.2.4


@dataclass(frozen=True, slots=True)
class Send:
    data: bytes


@dataclass(frozen=True, slots=True)
class StartTimer:
    timer: Timer
    deadline: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    timer: Timer


@dataclass(frozen=True, slots=True)
class PassUp:
    message: Request | Response


@dataclass(frozen=True, slots=True)
class Notify:
    notice: Notice


@dataclass(frozen=True, slots=True)
class Terminated:
    pass


Action = Send | StartTimer | CancelTimer | PassUp | Notify | Terminated


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """RFC 3261 §17.1.1.1 defaults: T1 = 500 ms (RTT estimate), T2 = 4 s, T4 = 5 s."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < self.t1 <= self.t2:
            raise ValueError(f"need 0 < T1 <= T2, got T1={self.t1!r} T2={self.t2!r}")
        if self.t4 <= 0:
            raise ValueError(f"T4 must be positive, not {self.t4!r}")


def _response(event: Event) -> Response:
    if not isinstance(event.message, Response):
        raise TransactionError(f"event {event.kind.name!r} carries no response")
    return event.message


def _message(event: Event) -> Request | Response:
    if event.message is None:
        raise TransactionError(f"event {event.kind.name!r} carries no message")
    return event.message


# A handler is a transaction class's function, called with the transaction, the event and the time.
Handler = Callable[[Any, Event, float], list[Action]]
Table = dict[tuple[State, EventKind], Handler]


class Transaction:
    """Common machinery; subclasses set ``INITIAL`` and ``TABLE`` (after their handlers, which it
    names by reference)."""

    INITIAL: ClassVar[State]
    TABLE: ClassVar[Table]

    def __init__(self, request: Request, *, reliable: bool, timers: TimerConfig = TimerConfig()) -> None:
        self.request = request
        self.reliable = reliable
        self.timers = timers
        self.state = self.INITIAL
        self.last_response: Response | None = None
        self._intervals: dict[Timer, float] = {}
        self._started = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.request.method} {self.request.call_id} {self.state.name}>"

    def _set_state(self, new: State, actions: list[Action]) -> None:
        logger.debug(
            "sip_call_id=%s %s transaction: %s -> %s",
            self.request.call_id,
            self.request.method,
            self.state.name,
            new.name,
        )
        self.state = new
        if new is State.TERMINATED:
            actions.append(Terminated())

    def _start_timer(self, timer: Timer, interval: float, now: float) -> StartTimer:
        self._intervals[timer] = interval
        return StartTimer(timer, now + interval)

    def _send(self, message: Request | Response) -> Send:
        return Send(message.serialize())

    def start(self, now: float) -> list[Action]:
        if self._started:
            raise TransactionError(f"{self!r} already started")
        self._started = True
        return self._on_start(now)

    def _on_start(self, now: float) -> list[Action]:
        raise NotImplementedError

    def handle(self, event: Event, now: float) -> list[Action]:
        handler = self.TABLE.get((self.state, event.kind))
        if handler is None or not self._started:
            raise TransactionError(
                f"{type(self).__name__}: illegal event {event.kind.name!r} in state {self.state.name!r}"
            )
        timer = _TIMER_OF.get(event.kind)
        if timer is not None and timer not in self._intervals:
            # A timer that is not running (Timer A on a reliable transport, one already
            # cancelled) cannot fire.
            raise TransactionError(
                f"{type(self).__name__}: timer {timer.name} is not running in state {self.state.name!r}"
            )
        return handler(self, event, now)

    def _absorb(self, event: Event, now: float) -> list[Action]:
        return []

    def _terminate(self, event: Event, now: float) -> list[Action]:
        actions: list[Action] = [CancelTimer(t) for t in self._intervals]
        self._intervals.clear()
        self._set_state(State.TERMINATED, actions)
        return actions

    def _fail(self, notice: Notice, now: float) -> list[Action]:
        actions: list[Action] = [Notify(notice)]
        actions += self._terminate(Event(EventKind.TRANSPORT_ERROR), now)
        return actions

    def _timeout(self, event: Event, now: float) -> list[Action]:
        return self._fail(Notice.TIMEOUT, now)

    def _transport_error(self, event: Event, now: float) -> list[Action]:
        return self._fail(Notice.TRANSPORT_ERROR, now)

    def _wait_or_terminate(
        self, timer: Timer, interval: float, new: State, now: float, actions: list[Action]
    ) -> list[Action]:
        """Enter ``new`` and start ``timer``, or terminate at once when it is zero (reliable)."""
        for running in list(self._intervals):
            actions.append(CancelTimer(running))
        self._intervals.clear()
        if self.reliable and interval == 0:
            self._set_state(State.TERMINATED, actions)
            return actions
        self._set_state(new, actions)
        actions.append(self._start_timer(timer, interval, now))
        return actions


def _build_ack(request: Request, response: Response) -> Request:
    """ACK for a non-2xx final response (RFC 3261 §17.1.1.3): Request-URI, Call-ID, From, Route
    and top Via of the INVITE, To of the response, CSeq number with method ACK."""
    items: list[tuple[str, str]] = []
    via = request.headers.get("Via")
    if via is not None:
        items.append(("Via", via))
    for name, source in (
        ("Max-Forwards", request),
        ("From", request),
        ("To", response),
        ("Call-ID", request),
    ):
        value = source.headers.get(name)
        if value is not None:
            items.append((name, value))
    cseq = request.cseq
    if cseq is not None:
        items.append(("CSeq", f"{cseq.seq} ACK"))
    items += [("Route", value) for value in request.headers.get_all("Route")]
    return Request("ACK", request.uri, Headers(tuple(items)))


class InviteClientTransaction(Transaction):
    """RFC 3261 §17.1.1 (Figure 5) with RFC 6026 §8.4 (Accepted, Timer M)."""

    INITIAL = State.CALLING

    def _on_start(self, now: float) -> list[Action]:
        actions: list[Action] = [self._send(self.request)]
        if not self.reliable:
            actions.append(self._start_timer(Timer.A, self.timers.t1, now))
        actions.append(self._start_timer(Timer.B, 64 * self.timers.t1, now))
        return actions

    def _retransmit(self, event: Event, now: float) -> list[Action]:
        # RFC 3261 §17.1.1.2: Timer A doubles each time.
        return [self._send(self.request), self._start_timer(Timer.A, 2 * self._intervals[Timer.A], now)]

    def _provisional(self, event: Event, now: float) -> list[Action]:
        actions: list[Action] = []
        if self.state is State.CALLING:
            actions += [CancelTimer(t) for t in self._intervals]
            self._intervals.clear()
            self._set_state(State.PROCEEDING, actions)
        return [*actions, PassUp(_message(event))]

    def _accepted(self, event: Event, now: float) -> list[Action]:
        actions: list[Action] = [PassUp(_message(event))]
        return self._wait_or_terminate(Timer.M, 64 * self.timers.t1, State.ACCEPTED, now, actions)

    def _completed(self, event: Event, now: float) -> list[Action]:
        self.last_response = _response(event)
        actions: list[Action] = [
            self._send(_build_ack(self.request, _response(event))),
            PassUp(_message(event)),
        ]
        interval = 0.0 if self.reliable else 32.0  # Timer D: at least 32 s on unreliable transports
        return self._wait_or_terminate(Timer.D, interval, State.COMPLETED, now, actions)

    def _resend_ack(self, event: Event, now: float) -> list[Action]:
        return [self._send(_build_ack(self.request, _response(event)))]

    def _pass_up(self, event: Event, now: float) -> list[Action]:
        return [PassUp(_message(event))]

    # RFC 3261 §17.1.1.2, Figure 5; RFC 6026 §8.4.
    TABLE = transition_table(
        State,
        EventKind,
        ("CALLING", "TIMER_A", _retransmit),
        ("CALLING", "TIMER_B", Transaction._timeout),
        ("CALLING,PROCEEDING", "RECV_1XX", _provisional),
        ("CALLING,PROCEEDING", "RECV_2XX", _accepted),
        ("CALLING,PROCEEDING", "RECV_FINAL_ERROR", _completed),
        ("COMPLETED", "RECV_FINAL_ERROR", _resend_ack),
        ("COMPLETED", "RECV_1XX,RECV_2XX", Transaction._absorb),
        ("COMPLETED", "TIMER_D", Transaction._terminate),
        ("ACCEPTED", "RECV_2XX", _pass_up),
        ("ACCEPTED", "RECV_1XX,RECV_FINAL_ERROR", Transaction._absorb),
        ("ACCEPTED", "TIMER_M", Transaction._terminate),
        ("TERMINATED", "RECV_1XX,RECV_2XX,RECV_FINAL_ERROR", Transaction._absorb),
        ("CALLING,PROCEEDING,COMPLETED,ACCEPTED", "TRANSPORT_ERROR", Transaction._transport_error),
    )


class NonInviteClientTransaction(Transaction):
    """RFC 3261 §17.1.2 (Figure 6)."""

    INITIAL = State.TRYING

    def _on_start(self, now: float) -> list[Action]:
        actions: list[Action] = [self._send(self.request)]
        if not self.reliable:
            actions.append(self._start_timer(Timer.E, self.timers.t1, now))
        actions.append(self._start_timer(Timer.F, 64 * self.timers.t1, now))
        return actions

    def _retransmit(self, event: Event, now: float) -> list[Action]:
        # RFC 3261 §17.1.2.2: E doubles up to T2 while Trying, is T2 while Proceeding.
        if self.state is State.PROCEEDING:
            interval = self.timers.t2
        else:
            interval = min(2 * self._intervals[Timer.E], self.timers.t2)
        return [self._send(self.request), self._start_timer(Timer.E, interval, now)]

    def _provisional(self, event: Event, now: float) -> list[Action]:
        actions: list[Action] = []
        if self.state is State.TRYING:
            self._set_state(State.PROCEEDING, actions)
        return [*actions, PassUp(_message(event))]

    def _final(self, event: Event, now: float) -> list[Action]:
        self.last_response = _response(event)
        interval = 0.0 if self.reliable else self.timers.t4  # Timer K
        return self._wait_or_terminate(Timer.K, interval, State.COMPLETED, now, [PassUp(_message(event))])

    # RFC 3261 §17.1.2.2, Figure 6.
    TABLE = transition_table(
        State,
        EventKind,
        ("TRYING,PROCEEDING", "TIMER_E", _retransmit),
        ("TRYING,PROCEEDING", "TIMER_F", Transaction._timeout),
        ("TRYING,PROCEEDING", "RECV_1XX", _provisional),
        ("TRYING,PROCEEDING", "RECV_2XX,RECV_FINAL_ERROR", _final),
        ("COMPLETED,TERMINATED", "RECV_1XX,RECV_2XX,RECV_FINAL_ERROR", Transaction._absorb),
        ("COMPLETED", "TIMER_K", Transaction._terminate),
        ("TRYING,PROCEEDING,COMPLETED", "TRANSPORT_ERROR", Transaction._transport_error),
    )


class _ServerTransaction(Transaction):
    def _respond(self, event: Event) -> Response:
        response = _response(event)
        self.last_response = response
        return response

    def _resend_last(self, event: Event, now: float) -> list[Action]:
        return [self._send(self.last_response)] if self.last_response is not None else []


class InviteServerTransaction(_ServerTransaction):
    """RFC 3261 §17.2.1 (Figure 7) with RFC 6026 §7.1 (Accepted, Timer L)."""

    INITIAL = State.PROCEEDING

    def __init__(
        self,
        request: Request,
        *,
        reliable: bool,
        timers: TimerConfig = TimerConfig(),
        send_trying: bool = True,
    ) -> None:
        super().__init__(request, reliable=reliable, timers=timers)
        self.send_trying = send_trying

    def _on_start(self, now: float) -> list[Action]:
        actions: list[Action] = [PassUp(self.request)]
        if self.send_trying:
            # RFC 3261 §17.2.1: a 100 Trying unless the TU answers within 200 ms.
            self.last_response = make_response(self.request, 100)
            actions.append(self._send(self.last_response))
        return actions

    def _send_provisional(self, event: Event, now: float) -> list[Action]:
        return [self._send(self._respond(event))]

    def _send_success(self, event: Event, now: float) -> list[Action]:
        actions: list[Action] = [self._send(self._respond(event))]
        return self._wait_or_terminate(Timer.L, 64 * self.timers.t1, State.ACCEPTED, now, actions)

    def _send_again(self, event: Event, now: float) -> list[Action]:
        return [self._send(self._respond(event))]  # RFC 6026 §7.1: 2xx retransmissions by the TU

    def _send_failure(self, event: Event, now: float) -> list[Action]:
        actions: list[Action] = [self._send(self._respond(event))]
        self._set_state(State.COMPLETED, actions)
        if not self.reliable:
            actions.append(self._start_timer(Timer.G, self.timers.t1, now))
        actions.append(self._start_timer(Timer.H, 64 * self.timers.t1, now))
        return actions

    def _retransmit(self, event: Event, now: float) -> list[Action]:
        interval = min(2 * self._intervals[Timer.G], self.timers.t2)
        return [*self._resend_last(event, now), self._start_timer(Timer.G, interval, now)]

    def _confirmed(self, event: Event, now: float) -> list[Action]:
        interval = 0.0 if self.reliable else self.timers.t4  # Timer I
        return self._wait_or_terminate(Timer.I, interval, State.CONFIRMED, now, [])

    def _pass_up_ack(self, event: Event, now: float) -> list[Action]:
        return [PassUp(_message(event))]

    # RFC 3261 §17.2.1, Figure 7; RFC 6026 §7.1.
    TABLE = transition_table(
        State,
        EventKind,
        ("PROCEEDING", "RECV_REQUEST", _ServerTransaction._resend_last),
        ("PROCEEDING", "SEND_1XX", _send_provisional),
        ("PROCEEDING", "SEND_2XX", _send_success),
        ("PROCEEDING", "SEND_FINAL_ERROR", _send_failure),
        ("COMPLETED", "RECV_REQUEST", _ServerTransaction._resend_last),
        ("COMPLETED", "TIMER_G", _retransmit),
        ("COMPLETED", "TIMER_H", Transaction._timeout),
        ("COMPLETED", "RECV_ACK", _confirmed),
        ("CONFIRMED", "RECV_REQUEST,RECV_ACK", Transaction._absorb),
        ("CONFIRMED", "TIMER_I", Transaction._terminate),
        ("ACCEPTED", "RECV_REQUEST", Transaction._absorb),
        ("ACCEPTED", "SEND_2XX", _send_again),
        ("ACCEPTED", "RECV_ACK", _pass_up_ack),
        ("ACCEPTED", "TIMER_L", Transaction._terminate),
        ("PROCEEDING,COMPLETED,CONFIRMED,ACCEPTED", "TRANSPORT_ERROR", Transaction._transport_error),
    )


class NonInviteServerTransaction(_ServerTransaction):
    """RFC 3261 §17.2.2 (Figure 8)."""

    INITIAL = State.TRYING

    def _on_start(self, now: float) -> list[Action]:
        return [PassUp(self.request)]

    def _send_provisional(self, event: Event, now: float) -> list[Action]:
        actions: list[Action] = [self._send(self._respond(event))]
        if self.state is State.TRYING:
            self._set_state(State.PROCEEDING, actions)
        return actions

    def _send_final(self, event: Event, now: float) -> list[Action]:
        actions: list[Action] = [self._send(self._respond(event))]
        interval = 0.0 if self.reliable else 64 * self.timers.t1  # Timer J
        return self._wait_or_terminate(Timer.J, interval, State.COMPLETED, now, actions)

    # RFC 3261 §17.2.2, Figure 8 (responses from the TU once Completed are discarded).
    TABLE = transition_table(
        State,
        EventKind,
        ("TRYING", "RECV_REQUEST", Transaction._absorb),
        ("PROCEEDING,COMPLETED", "RECV_REQUEST", _ServerTransaction._resend_last),
        ("TRYING,PROCEEDING", "SEND_1XX", _send_provisional),
        ("TRYING,PROCEEDING", "SEND_2XX,SEND_FINAL_ERROR", _send_final),
        ("COMPLETED", "SEND_1XX,SEND_2XX,SEND_FINAL_ERROR", Transaction._absorb),
        ("COMPLETED", "TIMER_J", Transaction._terminate),
        ("TRYING,PROCEEDING,COMPLETED", "TRANSPORT_ERROR", Transaction._transport_error),
    )
