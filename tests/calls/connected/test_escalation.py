"""Escalation from the browser (gateway/calls/connected/escalation.py): its own new offer mid-call goes to the SIP
side as our re-INVITE first; the browser is answered after the 2xx, told `renegotiation_failed` after a
refusal (the call goes on as it was), and a second renegotiation waits for the first."""

from __future__ import annotations

import pytest

from gateway.calls import (
    CallMachine,
    CallState,
    IllegalEvent,
    MediaSipOfferReady,
    NotifyError,
    SendWebReofferAnswer,
    SipReinvite,
    SipReinviteReceived,
    SipReinviteResult,
    SipRespondReinvite,
    WebHold,
    WebReoffer,
)
from gateway.calls.boundary.commands import (
    MediaCancelSipReoffer,
    MediaSipReofferFromWeb,
    MediaWebAnswerFromSip,
)
from gateway.calls.boundary.events import MediaWebReofferAnswered, MediaWebReofferRefused
from gateway.calls.states import Reinvite
from tests.calls import flows as f


def reoffer_out() -> CallMachine:
    call = f.connected_out()
    assert f.kinds(f.run(call, WebReoffer("s1", f.WEB_OFFER))) == [MediaSipReofferFromWeb]
    (invite,) = f.run(call, MediaSipOfferReady(f.GW_SIP_OFFER))
    assert isinstance(invite, SipReinvite) and invite.sdp == f.GW_SIP_OFFER
    return call


def test_the_sip_answer_makes_the_browsers_answer() -> None:
    call = reoffer_out()
    (apply,) = f.run(call, SipReinviteResult(200, f.SIP_ANSWER))
    assert isinstance(apply, MediaWebAnswerFromSip) and apply.sip_sdp == f.SIP_ANSWER
    assert call.reinvite is None and call.local_sip_sdp == f.GW_SIP_OFFER
    (answer,) = f.run(call, MediaWebReofferAnswered(f.WEB_ANSWER))
    assert isinstance(answer, SendWebReofferAnswer) and answer.sdp == f.WEB_ANSWER
    assert answer.session_id == "s1" and call.state is CallState.CONNECTED


@pytest.mark.parametrize("status", [488, 491, 500, 603])
def test_a_refusal_leaves_the_call_as_it_was(status: int) -> None:
    call = reoffer_out()
    before = call.local_sip_sdp
    cancel, error = f.run(call, SipReinviteResult(status, None))
    assert isinstance(cancel, MediaCancelSipReoffer)
    assert isinstance(error, NotifyError) and error.code == "renegotiation_failed"
    assert f"SIP {status}" in error.message and error.sip_status == status  # for a SIP WebSocket library
    assert call.state is CallState.CONNECTED and call.reinvite is None and call.local_sip_sdp == before
    # the browser may offer again
    assert f.kinds(f.run(call, WebReoffer("s1", f.WEB_OFFER))) == [MediaSipReofferFromWeb]


def test_a_2xx_without_answer_is_a_refusal() -> None:
    call = reoffer_out()
    cancel, error = f.run(call, SipReinviteResult(200, None))
    assert isinstance(cancel, MediaCancelSipReoffer)
    assert isinstance(error, NotifyError) and error.sip_status is None


@pytest.mark.parametrize("status", [408, 481])
def test_a_dialog_gone_ends_the_call(status: int) -> None:
    call = reoffer_out()
    commands = f.run(call, SipReinviteResult(status, None))
    assert isinstance(commands[0], MediaCancelSipReoffer)
    assert call.state is CallState.CLOSING


def test_an_offer_the_bridge_cannot_make_is_told() -> None:
    call = f.connected_out()
    f.run(call, WebReoffer("s1", f.WEB_OFFER))
    (error,) = f.run(call, MediaWebReofferRefused("no video change"))
    assert isinstance(error, NotifyError) and "no video change" in error.message
    assert call.reinvite is None and call.state is CallState.CONNECTED


def test_a_hold_asked_meanwhile_follows() -> None:
    """The user's hold while the browser's offer is out waits, then goes (one re-INVITE at a time)."""
    call = reoffer_out()
    assert f.run(call, WebHold("s1")) == []
    commands = f.kinds(f.run(call, SipReinviteResult(200, f.SIP_ANSWER)))
    assert commands[0] is MediaWebAnswerFromSip and call.reinvite is Reinvite.PREPARING  # the hold's


def test_one_renegotiation_at_a_time() -> None:
    call = reoffer_out()
    with pytest.raises(IllegalEvent):
        f.run(call, WebReoffer("s1", f.WEB_OFFER))
    # their re-INVITE meanwhile: 491 (RFC 3261 §14.2)
    (refusal,) = f.run(call, SipReinviteReceived(f.SIP_OFFER))
    assert isinstance(refusal, SipRespondReinvite) and refusal.status == 491
    held = f.connected_out()
    f.run(held, WebHold("s1"))
    with pytest.raises(IllegalEvent):
        f.run(held, WebReoffer("s1", f.WEB_OFFER))
