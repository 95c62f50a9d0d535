"""Property tests of the four transaction machines (RFC 3261 §17, RFC 6026): any sequence of
events (messages received, responses the TU sends, timers, transport errors) raises nothing but
TransactionError, a timer the machine started can always fire, nothing comes out after
Terminated, and enough timer firings (plus the final response the TU or the peer owes) always
end the transaction."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sipcore.transaction import (
    Action,
    CancelTimer,
    Event,
    EventKind,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    StartTimer,
    State,
    Terminated,
    Timer,
    TimerConfig,
    Transaction,
    TransactionError,
)
from tests.sipcore.test_transaction import INVITE, OPTIONS, event_for

MACHINES: list[type[Transaction]] = [
    InviteClientTransaction,
    NonInviteClientTransaction,
    InviteServerTransaction,
    NonInviteServerTransaction,
]
FIRE = "fire"  # a step that fires one of the timers the machine is running
Step = EventKind | tuple[str, int]
steps = st.lists(
    st.one_of(st.sampled_from(list(EventKind)), st.tuples(st.just(FIRE), st.integers(0, 5))),
    max_size=40,
)


class Driver:
    """Runs a machine on a fake clock, keeping its timers as the layer does."""

    def __init__(self, kind: type[Transaction], reliable: bool) -> None:
        self.request = INVITE if kind in (InviteClientTransaction, InviteServerTransaction) else OPTIONS
        self.txn = kind(self.request, reliable=reliable, timers=TimerConfig(t1=0.5, t2=4.0, t4=5.0))
        self.client = kind in (InviteClientTransaction, NonInviteClientTransaction)
        self.now = 0.0
        self.timers: dict[Timer, float] = {}
        self.terminated = False
        self.apply(self.txn.start(self.now))

    def apply(self, actions: list[Action]) -> None:
        assert not self.terminated or actions == [], f"actions after Terminated: {actions!r}"
        for action in actions:
            if isinstance(action, StartTimer):
                assert action.deadline >= self.now
                self.timers[action.timer] = action.deadline
            elif isinstance(action, CancelTimer):
                self.timers.pop(action.timer, None)
            elif isinstance(action, Terminated):
                self.terminated = True
                self.timers.clear()
        assert self.terminated == (self.txn.state is State.TERMINATED)

    def handle(self, event: Event) -> None:
        try:
            actions = self.txn.handle(event, self.now)
        except TransactionError:
            return  # the only exception allowed
        self.apply(actions)

    def fire(self, index: int) -> None:
        """Fire a running timer: the machine must take it (the layer only fires what it was asked to)."""
        timer = sorted(self.timers, key=lambda t: (self.timers[t], t.name))[index % len(self.timers)]
        self.now = max(self.now, self.timers.pop(timer))
        self.apply(self.txn.handle(Event.timer(timer), self.now))

    def step(self, step: Step) -> None:
        if isinstance(step, tuple):
            if self.timers:
                self.fire(step[1])
            return
        self.handle(event_for(step, self.request))

    def finish(self) -> None:
        """Fire the timers, earliest first; when none runs, give the final response still owed
        (the TU's on a server transaction, the peer's on a client one)."""
        for _ in range(200):
            if self.terminated:
                return
            if self.timers:
                self.fire(0)
            elif self.client:
                self.handle(event_for(EventKind.RECV_FINAL_ERROR, self.request))
            else:
                self.handle(event_for(EventKind.SEND_FINAL_ERROR, self.request))
        raise AssertionError(f"{self.txn!r} still running with timers {self.timers!r}")


@settings(deadline=None)  # examples: tests/conftest.py's profile (150; a fifth in test-fast)
@given(kind=st.sampled_from(MACHINES), reliable=st.booleans(), sequence=steps)
def test_any_event_sequence(kind: type[Transaction], reliable: bool, sequence: list[Step]) -> None:
    driver = Driver(kind, reliable)
    for step in sequence:
        driver.step(step)
    driver.finish()
    assert driver.txn.state is State.TERMINATED and driver.timers == {}
    for event_kind in EventKind:  # a terminated transaction takes nothing more
        driver.handle(event_for(event_kind, driver.request))
    assert driver.txn.state is State.TERMINATED


@settings(deadline=None)  # examples: tests/conftest.py's profile (150; a fifth in test-fast)
@given(kind=st.sampled_from(MACHINES), reliable=st.booleans(), sequence=steps)
def test_only_timers_end_every_machine(kind: type[Transaction], reliable: bool, sequence: list[Step]) -> None:
    """After any prefix, a client transaction ends on its timers alone unless a provisional
    response put it in Proceeding (INVITE: it waits for the final response, RFC 3261 §17.1.1.2)."""
    driver = Driver(kind, reliable)
    for step in sequence:
        driver.step(step)
    if not driver.client:
        return
    for _ in range(200):
        if not driver.timers:
            break
        driver.fire(0)
    waiting = kind is InviteClientTransaction and driver.txn.state is State.PROCEEDING
    assert driver.terminated or waiting, driver.txn
