"""gateway/calls/setup/busy.py: what an INVITE for a busy web user gets (users[].on_busy), decided by the call
layer from the gateway's calls before any call rings. No I/O."""

from __future__ import annotations

import itertools

import pytest

from gateway.calls import CallRegistry
from gateway.calls.setup.busy import BusyAction, busy_action, busy_refusal
from gateway.identity.errors import IdentityError
from gateway.identity.model import Found, WebUser
from tests.calls import flows as f

ALICE = f.ALICE


def test_busy_action() -> None:
    assert busy_action(ALICE, "pbx.example.org") is None  # ring: call waiting
    reject = WebUser("r", "R", ALICE.aor, on_busy="reject")
    assert busy_action(reject, None) == BusyAction(486)
    forward = WebUser("f", "F", ALICE.aor, on_busy="forward:2000")
    assert busy_action(forward, "pbx.example.org") == BusyAction(302, "sip:2000@pbx.example.org")
    assert busy_action(forward, None) == BusyAction(486)  # a number and no PBX domain
    uri = WebUser("f", "F", ALICE.aor, on_busy="forward:sip:vm@voicemail.example.org")
    assert busy_action(uri, None) == BusyAction(302, "sip:vm@voicemail.example.org")
    with pytest.raises(ValueError, match="302 or 486"):
        BusyAction(404)
    with pytest.raises(ValueError, match="contact"):
        BusyAction(302)
    with pytest.raises(IdentityError, match="on_busy"):
        WebUser("x", "X", ALICE.aor, on_busy="voicemail")


def _registry() -> CallRegistry:
    counter = itertools.count(1)
    return CallRegistry(f.SETTINGS, clock=f.Clock(), new_call_id=lambda: f"call-{next(counter)}")


def _target(*users: tuple[WebUser, tuple[str, ...]]) -> Found:
    return Found(f"sip:1001@{f.DOMAIN}", tuple(u for u, _ in users), {u.id: s for u, s in users})


def test_an_invite_is_refused_only_when_every_session_carries_a_call_and_the_policy_refuses() -> None:
    reject = WebUser("alice", "Alice", ALICE.aor, on_busy="reject")
    forward = WebUser("alice", "Alice", ALICE.aor, on_busy="forward:2000")
    calls = _registry()
    assert busy_refusal(calls, _target((reject, ("s1",))), f.DOMAIN) is None  # no call: not busy
    calls.dial(f.dial())  # s1 carries a call now
    assert busy_refusal(calls, _target((reject, ("s1",))), f.DOMAIN) == BusyAction(486)
    assert busy_refusal(calls, _target((forward, ("s1",))), f.DOMAIN) == BusyAction(
        302, f"sip:2000@{f.DOMAIN}"
    )
    assert busy_refusal(calls, _target((ALICE, ("s1",))), f.DOMAIN) is None  # ring: call waiting
    assert busy_refusal(calls, _target((reject, ("s1", "s2"))), f.DOMAIN) is None  # s2 is free
    assert busy_refusal(calls, _target((reject, ())), f.DOMAIN) is None  # no session: not busy
    other = WebUser("bob", "Bob", f.BOB.aor, on_busy="reject")
    both = _target((reject, ("s1",)), (other, ("s9",)))  # bob is free: the INVITE rings him
    assert busy_refusal(calls, both, f.DOMAIN) is None
