"""Property tests: random event sequences against one call.

Whatever arrives, the machine raises nothing but CallError, keeps its timers and sessions
consistent, tells each browser session about the end exactly once (unless it disconnected), ends
in CLOSED once its sessions disconnect and the closing timer fires, and is silent after CLOSED.
"""

from __future__ import annotations

import contextlib
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import event as note
from hypothesis import strategies as st

from gateway.calls import (
    EVENT_TYPES,
    CallError,
    CallRegistry,
    CallSettings,
    CallState,
    CancelTimer,
    Command,
    Event,
    MediaConnected,
    MediaFailed,
    MediaInactive,
    MediaSipAnswerReady,
    MediaSipOfferReady,
    MediaWebAnswerReady,
    MediaWebOfferReady,
    NotifyEnded,
    NotifyIncoming,
    RejectKind,
    RemoteDtmf,
    SipAccepted,
    SipByeReceived,
    SipCancelled,
    SipFailed,
    SipLegClosed,
    SipProvisional,
    SipReinviteReceived,
    SipReinviteResult,
    StartTimer,
    StopRinging,
    TimerFired,
    TimerName,
    WebAccept,
    WebDisconnected,
    WebDtmf,
    WebHangup,
    WebHold,
    WebReject,
    WebResume,
    WebSdpAnswer,
)
from gateway.config.values import DtmfMode
from tests.calls import flows as f
from tests.calls.test_pairs import sample
from tests.conftest import examples

SESSIONS = st.sampled_from(["s1", "s2", "s3", "s9"])
SIP_SDPS = st.sampled_from([f.SIP_HOLD, f.SIP_RESUME, f.sip_sdp("inactive"), "garbage"])

EVENTS: st.SearchStrategy[Event] = st.one_of(
    st.builds(WebAccept, SESSIONS),
    st.builds(WebReject, SESSIONS, st.sampled_from(RejectKind)),
    st.builds(WebSdpAnswer, SESSIONS, st.just(f.WEB_ANSWER)),
    st.builds(WebHangup, SESSIONS),
    st.builds(WebHold, SESSIONS),
    st.builds(WebResume, SESSIONS),
    st.builds(WebDtmf, SESSIONS, st.sampled_from(["1", "#*", "9"])),
    st.builds(WebDisconnected, SESSIONS),
    st.builds(SipProvisional, st.sampled_from([100, 180, 183]), st.sampled_from([None, f.SIP_ANSWER])),
    st.builds(SipAccepted, st.sampled_from([None, f.SIP_ANSWER])),
    st.builds(SipFailed, st.sampled_from([404, 408, 486, 487, 488, 500, 603])),
    st.just(SipCancelled()),
    st.builds(SipByeReceived, st.sampled_from([None, 200])),
    st.builds(SipReinviteReceived, st.one_of(st.none(), SIP_SDPS)),
    st.builds(SipReinviteResult, st.sampled_from([200, 408, 481, 488, 491]), st.just(f.SIP_ANSWER)),
    st.just(SipLegClosed()),
    st.builds(RemoteDtmf, st.sampled_from(["1", "#"]), st.just(100)),
    st.builds(MediaSipOfferReady, st.just(f.GW_SIP_OFFER)),
    st.builds(MediaWebAnswerReady, st.just(f.WEB_ANSWER)),
    st.builds(MediaWebOfferReady, st.just(f.WEB_OFFER)),
    st.builds(MediaSipAnswerReady, st.just(f.GW_SIP_ANSWER)),
    st.just(MediaConnected()),
    st.builds(MediaFailed, st.just("ICE failed"), st.sampled_from([None, 488])),
    st.builds(MediaInactive, st.just(10.0)),
    st.builds(TimerFired, st.sampled_from(TimerName)),
)
_OUT = [f.dial(), MediaSipOfferReady(f.GW_SIP_OFFER)]
_IN = [f.invite(), WebAccept("s2"), MediaWebOfferReady(f.WEB_OFFER), WebSdpAnswer("s2", f.WEB_ANSWER)]
# Happy-path prefixes, so that random events also start from deep states.
STARTS: st.SearchStrategy[list[Event]] = st.one_of(
    st.builds(lambda d: [f.dial(d)], st.sampled_from(["1002", "2000", "sip:echo@test.example", "x"])),
    st.just([f.invite()]),
    st.just([f.invite(f.found(("alice", "s1"), ("bob", "s3")))]),
    st.just([f.invite(f.found(("alice", "s1")))]),
    st.just([*_OUT, SipProvisional(183, f.SIP_ANSWER)]),
    st.just([*_OUT, SipAccepted(f.SIP_ANSWER)]),
    st.just([*_OUT, SipAccepted(f.SIP_ANSWER), WebHold("s1"), MediaSipOfferReady(f.GW_SIP_OFFER)]),
    st.just(_IN),
    st.just([*_IN, MediaSipAnswerReady(f.GW_SIP_ANSWER), MediaConnected()]),
    st.just([*_IN, MediaSipAnswerReady(f.GW_SIP_ANSWER), MediaConnected(), SipReinviteReceived(f.SIP_HOLD)]),
    st.just(
        [
            *_OUT,
            SipAccepted(f.SIP_ANSWER),
            WebHold("s1"),
            MediaSipOfferReady(f.GW_SIP_OFFER),
            SipReinviteResult(200, f.SIP_ANSWER),
        ]
    ),
    st.just(
        [
            *_IN,
            MediaSipAnswerReady(f.GW_SIP_ANSWER),
            MediaConnected(),
            SipReinviteReceived(f.SIP_HOLD),
            MediaSipAnswerReady(f.GW_SIP_ANSWER),
        ]
    ),
)


class Observer:
    """Feeds events and checks the invariants after each one."""

    def __init__(self, mode: DtmfMode) -> None:
        self.call = f.machine(CallSettings(pbx_domain=f.DOMAIN, dtmf_mode=mode))
        self.timers: set[TimerName] = set()
        self.told: set[str] = set()
        self.ends: Counter[str] = Counter()
        self.gone: set[str] = set()

    def feed(self, event: Event) -> list[Command]:
        call = self.call
        running = set(call.timers)
        try:
            out = call.handle(event)
        except CallError:
            assert call.timers == running  # a refused event changes nothing
            return []
        note(f"reached {call.state.value}")  # coverage, shown by --hypothesis-show-statistics
        if isinstance(event, TimerFired) and event.timer in self.timers:
            self.timers.discard(event.timer)
        if isinstance(event, WebDisconnected):
            self.gone.add(event.session_id)
        if hasattr(event, "user"):  # WebDial
            self.told.add("s1")
        for command in out:
            assert command.call_id == call.call_id
            if isinstance(command, StartTimer):
                self.timers.add(command.name)
            elif isinstance(command, CancelTimer):
                assert command.name in self.timers, f"cancelled {command.name}, which is not running"
                self.timers.discard(command.name)
            elif isinstance(command, NotifyIncoming):
                self.told.add(command.session_id)
            elif isinstance(command, (NotifyEnded, StopRinging)):
                assert command.session_id not in self.gone
                self.ends[command.session_id] += 1
        assert self.timers == call.timers
        assert all(count == 1 for count in self.ends.values()), self.ends
        if call.state not in (CallState.CLOSING, CallState.CLOSED):
            assert call.sessions, f"{call.state} with no session left"
        if call.state is CallState.CLOSED:
            assert not self.timers
            assert call.sessions == frozenset()
            for session_id in self.told - self.gone:
                assert self.ends[session_id] == 1, f"session {session_id} was never told the end"
        return out


@settings(max_examples=examples(500), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=STARTS, events=st.lists(EVENTS, max_size=40), mode=st.sampled_from(DtmfMode))
def test_random_sequences(start: list[Event], events: list[Event], mode: DtmfMode) -> None:
    seen = Observer(mode)
    for event in start:
        seen.feed(event)
    for event in events:
        was_closed = seen.call.state is CallState.CLOSED
        out = seen.feed(event)
        if was_closed:
            assert out == [] and seen.call.state is CallState.CLOSED
    # hang up: every session still involved disconnects, then the closing timer fires
    for session_id in sorted(seen.call.sessions):
        seen.feed(WebDisconnected(session_id))
    if seen.call.state is CallState.CLOSING:
        seen.feed(TimerFired(TimerName.CLOSING))
    assert seen.call.state is CallState.CLOSED
    for kind in EVENT_TYPES:
        try:
            out = seen.call.handle(sample(kind, "s1", TimerName.CLOSING))
        except CallError:
            continue
        raise AssertionError(f"{kind.__name__} was accepted after CLOSED and emitted {out}")


# --- the registry: its session index always matches its machines ------------------------------------

REGISTRY_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("dial"), SESSIONS),
        st.tuples(st.just("invite"), st.sampled_from(["s1", "s2", "s3"])),
        st.tuples(st.just("closed"), SESSIONS),
        st.tuples(st.just("event"), st.integers(0, 5), EVENTS),
    ),
    max_size=40,
)


@settings(max_examples=examples(200), deadline=None)
@given(ops=REGISTRY_OPS)
def test_registry_index_matches_its_calls(ops: list[tuple[object, ...]]) -> None:
    counter = iter(range(10_000))
    calls = CallRegistry(
        f.SETTINGS, clock=f.Clock(), new_call_id=lambda: f"c{next(counter)}", jitter=lambda: 0.5
    )
    started: list[str] = []
    for op in ops:
        if op[0] == "dial":
            call_id, _ = calls.dial(f.dial(session=str(op[1])))
            started.append(call_id)
        elif op[0] == "invite":
            call_id, _ = calls.incoming(f.invite(f.found(("alice", str(op[1])), ("bob", "s9"))))
            started.append(call_id)
        elif op[0] == "closed":
            calls.session_closed(str(op[1]))
        elif started:
            index, event = op[1], op[2]
            assert isinstance(index, int)
            with contextlib.suppress(CallError):  # refused, or already closed and forgotten
                calls.handle(started[index % len(started)], event)  # type: ignore[arg-type]
        for call in calls:
            assert call.state is not CallState.CLOSED
            for session_id in call.sessions:
                assert call.call_id in calls.calls_of(session_id)
        for session_id in ("s1", "s2", "s3", "s9"):
            for call_id in calls.calls_of(session_id):
                assert session_id in calls.get(call_id).sessions
