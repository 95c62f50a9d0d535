"""Call pickup (gateway/calls/setup/pickup.py, RFC 3891 §3): an INVITE with Replaces naming the web user's
ringing outbound call; and 481 for an inbound call ringing at her (an early dialog we are the UAS of)."""

from __future__ import annotations

from gateway.calls import (
    CallState,
    MediaAnswerFromSip,
    MediaFailed,
    MediaPickupReady,
    MediaSipPickup,
    MediaWebAnswerReady,
    NotifyConnected,
    SendWebAnswer,
    SipAckReceived,
    SipBye,
    SipRespondReinvite,
    StartTimer,
    TimerName,
)
from gateway.calls.boundary.commands import NotifyReplaced, SipRefuseReplacing, SipTakeOver
from gateway.calls.boundary.events import SipReplacingInvite
from tests.calls import flows as f

PICKUP = SipReplacingInvite("sip:2001@pbx.example.org", "Bob", f.SIP_OFFER)


def test_a_ringing_call_is_answered_by_the_phone_that_picks_it_up() -> None:
    call = f.inviting_ringing()
    out = call.handle(PICKUP)
    assert out[1:] == [SipTakeOver("c1"), MediaSipPickup("c1", f.SIP_OFFER)]
    assert TimerName.RING not in call.timers
    out = call.handle(MediaPickupReady(f.GW_SIP_ANSWER, f.WEB_ANSWER))
    assert out == [
        SipRespondReinvite("c1", 200, "OK", f.GW_SIP_ANSWER),
        SendWebAnswer("s1", "c1", f.WEB_ANSWER),
        NotifyConnected("s1", "c1"),
        NotifyReplaced("s1", "c1", "sip:2001@pbx.example.org", "Bob"),
    ]
    assert call.state is CallState.CONNECTED and call.connected_at is not None and not call.replacing
    assert call.local_sip_sdp == f.GW_SIP_ANSWER


def test_early_media_already_answered_the_browser() -> None:
    call = f.early_out()
    call.handle(MediaWebAnswerReady(f.WEB_ANSWER))
    call.handle(PICKUP)
    out = call.handle(MediaPickupReady(f.GW_SIP_ANSWER, f.WEB_ANSWER))
    assert not any(isinstance(c, SendWebAnswer) for c in out)
    assert call.state is CallState.CONNECTED


def test_an_unusable_offer_refuses_the_pickup_and_the_call_rings_on() -> None:
    call = f.inviting_ringing()
    call.handle(PICKUP)
    out = call.handle(MediaFailed("no common codec", 488))
    assert [c.status for c in out if isinstance(c, SipRefuseReplacing)] == [488]
    assert any(isinstance(c, StartTimer) and c.name is TimerName.RING for c in out)
    assert call.state is CallState.INVITING and not call.replacing


def test_an_offerless_pickup_gets_our_offer_in_the_200_and_the_ack_brings_the_answer() -> None:
    call = f.inviting_ringing()
    out = call.handle(SipReplacingInvite("sip:2001@pbx.example.org", "Bob"))
    assert out[1:] == [SipTakeOver("c1"), MediaSipPickup("c1", None)]
    assert [c.status for c in call.handle(PICKUP) if isinstance(c, SipRefuseReplacing)] == [
        491
    ]  # one at a time
    out = call.handle(MediaPickupReady(f.GW_SIP_OFFER, f.WEB_ANSWER))
    assert out[0] == SipRespondReinvite("c1", 200, "OK", f.GW_SIP_OFFER)  # our offer in the 200
    assert call.state is CallState.CONNECTED
    assert call.handle(SipAckReceived(f.SIP_ANSWER)) == [MediaAnswerFromSip("c1", f.SIP_ANSWER)]
    assert call.state is CallState.CONNECTED and call.reinvite is None


def test_an_offerless_pickup_whose_ack_has_no_answer_ends_the_call() -> None:
    call = f.inviting_ringing()
    call.handle(SipReplacingInvite("sip:2001@pbx.example.org"))
    call.handle(MediaPickupReady(f.GW_SIP_OFFER, f.WEB_ANSWER))
    out = call.handle(SipAckReceived(None))
    assert any(isinstance(c, SipBye) for c in out) and call.state is CallState.CLOSING


def test_an_inbound_call_ringing_at_the_web_user_is_not_replaced() -> None:
    """RFC 3891 §3: an early dialog this UA did not initiate: 481, the dialog left unchanged."""
    for call in (f.invited(), f.early_in()):
        state = call.state
        out = call.handle(PICKUP)
        assert [c.status for c in out if isinstance(c, SipRefuseReplacing)] == [481]
        assert call.state is state
