"""CallRegistry: many calls, several sessions per user, first-answer-wins, sessions that go away."""

from __future__ import annotations

import itertools

import pytest

from gateway.calls import (
    CallRegistry,
    CallSettings,
    CallState,
    MediaSipOfferReady,
    NotifyIncoming,
    RejectKind,
    SipAccepted,
    SipBye,
    SipCancel,
    SipLegClosed,
    SipProvisional,
    SipRespond,
    StopRinging,
    UnknownCall,
    WebAccept,
    WebHangup,
    WebReject,
    WrongSession,
)
from tests.calls import flows as f


def registry() -> CallRegistry:
    counter = itertools.count(1)
    return CallRegistry(f.SETTINGS, clock=f.Clock(), new_call_id=lambda: f"call-{next(counter)}")


def test_dial_creates_and_routes() -> None:
    calls = registry()
    call_id, out = calls.dial(f.dial())
    assert call_id == "call-1" and out
    assert calls.calls_of("s1") == ("call-1",)
    assert calls.get(call_id).state is CallState.INVITING
    assert f.kinds(calls.handle(call_id, MediaSipOfferReady(f.GW_SIP_OFFER)))[0].__name__ == "SipInvite"


def test_a_session_may_hold_several_calls() -> None:
    calls = registry()
    first, _ = calls.dial(f.dial("1002"))
    second, _ = calls.dial(f.dial("1003"))
    third, _ = calls.incoming(f.invite(f.found(("alice", "s1"))))
    assert calls.calls_of("s1") == (first, second, third)
    assert len(calls) == 3


def test_closed_calls_are_forgotten() -> None:
    calls = registry()
    call_id, _ = calls.dial(f.dial("2000"))  # refused by policy: closed at once
    assert call_id not in calls and calls.calls_of("s1") == ()
    with pytest.raises(UnknownCall):
        calls.handle(call_id, WebHangup("s1"))


def test_lifecycle_keeps_the_index_in_step() -> None:
    calls = registry()
    call_id, _ = calls.dial(f.dial())
    calls.handle(call_id, MediaSipOfferReady(f.GW_SIP_OFFER))
    calls.handle(call_id, SipAccepted(f.SIP_ANSWER))
    calls.handle(call_id, WebHangup("s1"))
    assert calls.calls_of("s1") == ()  # told the end: no longer involved
    assert calls.get(call_id).state is CallState.CLOSING
    calls.handle(call_id, SipLegClosed())
    assert len(calls) == 0


def test_first_answer_wins_across_sessions() -> None:
    calls = registry()
    call_id, out = calls.incoming(f.invite(f.found(("alice", "s1"), ("alice", "s2"), ("bob", "s3"))))
    assert {c.session_id for c in out if isinstance(c, NotifyIncoming)} == {"s1", "s2", "s3"}
    assert [calls.calls_of(s) for s in ("s1", "s2", "s3")] == [(call_id,)] * 3
    out = calls.handle(call_id, WebAccept("s3"))
    assert {c.session_id for c in out if isinstance(c, StopRinging)} == {"s1", "s2"}
    assert calls.calls_of("s1") == calls.calls_of("s2") == ()
    assert calls.calls_of("s3") == (call_id,)


def test_session_closed_ends_each_call_as_its_state_requires() -> None:
    calls = registry()
    connected, _ = calls.dial(f.dial("1002"))
    for event in (MediaSipOfferReady(f.GW_SIP_OFFER), SipAccepted(f.SIP_ANSWER)):
        calls.handle(connected, event)
    inviting, _ = calls.dial(f.dial("1003"))
    calls.handle(inviting, MediaSipOfferReady(f.GW_SIP_OFFER))
    calls.handle(inviting, SipProvisional(180))
    ringing_alone, _ = calls.incoming(f.invite(f.found(("alice", "s1"))))
    ringing_shared, _ = calls.incoming(f.invite(f.found(("alice", "s1"), ("alice", "s2"))))
    unrelated, _ = calls.dial(f.dial("1004", session="s9"))

    out = calls.session_closed("s1")
    by_call: dict[str, list[type]] = {}
    for command in out:
        by_call.setdefault(getattr(command, "call_id", ""), []).append(type(command))
    assert SipBye in by_call[connected]
    assert SipCancel in by_call[inviting]
    assert SipRespond in by_call[ringing_alone]
    assert ringing_shared not in by_call  # s2 still rings
    assert unrelated not in by_call
    assert calls.calls_of("s1") == ()
    assert calls.calls_of("s2") == (ringing_shared,)
    assert ringing_alone not in calls
    assert calls.get(connected).state is CallState.CLOSING
    assert calls.get(unrelated).state is CallState.INVITING


def test_repeated_call_id_is_refused() -> None:
    calls = CallRegistry(f.SETTINGS, new_call_id=lambda: "same")
    calls.dial(f.dial())
    with pytest.raises(UnknownCall):
        calls.dial(f.dial())


def test_a_refused_event_keeps_the_registry_consistent() -> None:
    calls = registry()
    call_id, _ = calls.incoming(f.invite())
    with pytest.raises(WrongSession):
        calls.handle(call_id, WebAccept("nobody"))
    assert calls.calls_of("s1") == (call_id,) and len(calls) == 1
    assert [c.call_id for c in calls] == [call_id]


def test_a_flood_of_inbound_calls_rings_a_user_a_few_times_then_gets_486() -> None:
    """Issue 10, item 8: a trusted source could keep thousands of calls ringing one web user."""
    counter = itertools.count(1)
    registry = CallRegistry(
        CallSettings(pbx_domain=f.DOMAIN, max_ringing_per_user=3), new_call_id=lambda: f"call-{next(counter)}"
    )
    ringing = [registry.incoming(f.invite(f.found(("alice", "s1")))) for _ in range(3)]
    assert all(SipRespond in f.kinds(out) and NotifyIncoming in f.kinds(out) for _, out in ringing)
    _, fourth = registry.incoming(f.invite(f.found(("alice", "s1"))))
    assert [(c.status, c.phrase) for c in fourth if isinstance(c, SipRespond)] == [
        (486, "Busy Here (too many calls ringing this user)")
    ]
    # bob is not flooded: a call for both rings him only
    _, both = registry.incoming(f.invite(f.found(("alice", "s1"), ("bob", "s9"))))
    assert [c.session_id for c in both if isinstance(c, NotifyIncoming)] == ["s9"]
    # once one of alice's calls is answered, she may ring again
    registry.handle(ringing[0][0], WebReject("s1", RejectKind.BUSY))
    _, again = registry.incoming(f.invite(f.found(("alice", "s1"))))
    assert NotifyIncoming in f.kinds(again)
