"""An INVITE with Replaces taking a connected call over (gateway/calls/connected/replaces.py, RFC 3891 §3)."""

from __future__ import annotations

from gateway.calls import CallState, MediaFailed, MediaSipAnswerReady, MediaSipUpdate, SipRespondReinvite
from gateway.calls.boundary.commands import NotifyReplaced, SipRefuseReplacing, SipTakeOver
from gateway.calls.boundary.events import SipReinviteReceived, SipReplacingInvite
from tests.calls import flows as f

NEW = SipReplacingInvite("sip:2001@pbx.example.org", "Bob", f.SIP_OFFER)


def test_a_connected_call_is_taken_over_and_the_browser_told() -> None:
    call = f.connected_out()
    out = call.handle(NEW)
    assert out == [
        SipTakeOver("c1"),
        NotifyReplaced("s1", "c1", "sip:2001@pbx.example.org", "Bob"),
        MediaSipUpdate("c1", f.SIP_OFFER),
    ]
    out = call.handle(MediaSipAnswerReady(f.GW_SIP_ANSWER))
    assert [c.status for c in out if isinstance(c, SipRespondReinvite)] == [200]
    assert call.state is CallState.CONNECTED and not call.replacing


def test_an_unusable_offer_refuses_the_new_invite_and_keeps_the_call() -> None:
    call = f.connected_in()
    call.handle(NEW)
    out = call.handle(MediaFailed("no common codec", 488))
    assert out == [SipRefuseReplacing("c1", 488, out[0].phrase)]  # type: ignore[union-attr]
    assert call.state is CallState.CONNECTED and call.reinvite is None


def test_491_while_a_reinvite_is_answered_and_481_before_the_call_is_up() -> None:
    call = f.connected_in()
    call.handle(SipReinviteReceived(f.SIP_HOLD))
    assert [type(c) for c in call.handle(NEW)] == [SipRefuseReplacing]
    assert call.handle(NEW)[0].status == 491  # type: ignore[union-attr]
    ringing = f.invited()
    assert [c.status for c in ringing.handle(NEW) if isinstance(c, SipRefuseReplacing)] == [481]
    assert ringing.state is CallState.INVITED
