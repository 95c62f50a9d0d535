"""Connected calls: hold and resume both ways, glare, DTMF, media failures, BYE, disconnects."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from gateway.calls import (
    EVENT_TYPES,
    CallError,
    CallMachine,
    CallSettings,
    CallState,
    CancelTimer,
    CloseBridge,
    EndReason,
    GatewayStopping,
    MediaAnswerFromSip,
    MediaDropReoffer,
    MediaDtmfUnsent,
    MediaFailed,
    MediaInactive,
    MediaSendDtmf,
    MediaSipAnswerReady,
    MediaSipOfferReady,
    MediaSipReoffer,
    MediaSipUpdate,
    MediaWebDtmf,
    NotifyDtmf,
    NotifyEnded,
    NotifyError,
    NotifyHeld,
    NotifyResumed,
    RemoteDtmf,
    Side,
    SipAckReceived,
    SipBye,
    SipByeReceived,
    SipCancel,
    SipInfoDtmf,
    SipLegClosed,
    SipReinvite,
    SipReinviteReceived,
    SipReinviteResult,
    SipRespond,
    SipRespondReinvite,
    StartTimer,
    StopRinging,
    TimerFired,
    TimerName,
    WebDisconnected,
    WebDtmf,
    WebHangup,
    WebHold,
    WebResume,
)
from gateway.calls.connected.midcall import remote_holds
from gateway.config.values import DtmfMode
from tests.calls import flows as f
from tests.calls.test_pairs import sample


def notice(commands: Sequence[object]) -> NotifyEnded:
    [found] = [c for c in commands if isinstance(c, NotifyEnded)]
    return found


# --- hold and resume ----------------------------------------------------------------------------------


def test_browser_holds_and_resumes() -> None:
    call = f.connected_out()
    assert call.handle(WebHold("s1")) == [MediaSipReoffer("c1", True)]
    assert call.state is CallState.CONNECTED  # not held until the SIP party agrees
    assert call.handle(MediaSipOfferReady(f.GW_SIP_OFFER)) == [SipReinvite("c1", f.GW_SIP_OFFER)]
    out = call.handle(SipReinviteResult(200, f.SIP_ANSWER))
    assert out == [MediaAnswerFromSip("c1", f.SIP_ANSWER), NotifyHeld("s1", "c1", Side.LOCAL)]
    assert call.state is CallState.HOLDING
    assert call.handle(WebResume("s1")) == [MediaSipReoffer("c1", False)]
    f.run(call, MediaSipOfferReady(f.GW_SIP_OFFER))
    out = call.handle(SipReinviteResult(200, f.SIP_ANSWER))
    assert out[-1] == NotifyResumed("s1", "c1", Side.LOCAL)
    assert call.state is CallState.CONNECTED


@pytest.mark.parametrize(
    "held_sdp", [f.SIP_HOLD, f.sip_sdp("inactive"), f.sip_sdp("sendrecv", address="0.0.0.0")]
)
def test_sip_party_holds_and_resumes(held_sdp: str) -> None:
    call = f.connected_in()
    assert call.handle(SipReinviteReceived(held_sdp)) == [MediaSipUpdate("c1", held_sdp)]
    out = call.handle(MediaSipAnswerReady(f.GW_SIP_ANSWER))
    assert out == [
        SipRespondReinvite("c1", 200, "OK", f.GW_SIP_ANSWER),
        NotifyHeld("s1", "c1", Side.REMOTE),
    ]
    assert call.state is CallState.HOLDING
    f.run(call, SipReinviteReceived(f.SIP_RESUME))
    out = call.handle(MediaSipAnswerReady(f.GW_SIP_ANSWER))
    assert out[-1] == NotifyResumed("s1", "c1", Side.REMOTE)
    assert call.state is CallState.CONNECTED


def test_a_refresh_reinvite_changes_nothing_for_the_browser() -> None:
    call = f.connected_in()
    f.run(call, SipReinviteReceived(f.SIP_RESUME))
    out = call.handle(MediaSipAnswerReady(f.GW_SIP_ANSWER))
    assert f.kinds(out) == [SipRespondReinvite]
    assert call.state is CallState.CONNECTED


def test_both_sides_hold_then_resume_one_by_one() -> None:
    call = f.holding_local()
    f.run(call, SipReinviteReceived(f.SIP_HOLD), MediaSipAnswerReady(f.GW_SIP_ANSWER))
    assert call.local_hold and call.remote_hold
    f.run(call, SipReinviteReceived(f.SIP_RESUME), MediaSipAnswerReady(f.GW_SIP_ANSWER))
    assert call.state is CallState.HOLDING  # still held by the web user
    f.run(call, WebResume("s1"), MediaSipOfferReady(f.GW_SIP_OFFER), SipReinviteResult(200, f.SIP_ANSWER))
    assert call.state is CallState.CONNECTED


def test_hold_then_resume_queue_instead_of_crossing() -> None:
    call = f.connected_out()
    f.run(call, WebHold("s1"))
    assert call.handle(WebResume("s1")) == []  # one re-INVITE at a time
    assert call.handle(WebHold("s1")) == []
    f.run(call, MediaSipOfferReady(f.GW_SIP_OFFER))
    out = call.handle(SipReinviteResult(200, f.SIP_ANSWER))
    assert NotifyHeld("s1", "c1", Side.LOCAL) in out
    assert MediaSipReoffer("c1", False) not in out  # the last wish (hold) is what was sent
    f.run(call, WebResume("s1"))
    assert call.reinvite is not None


def test_resume_asked_during_a_hold_reinvite_follows_it() -> None:
    call = f.connected_out()
    f.run(call, WebHold("s1"), MediaSipOfferReady(f.GW_SIP_OFFER), WebResume("s1"))
    out = call.handle(SipReinviteResult(200, f.SIP_ANSWER))
    assert out[-2:] == [NotifyHeld("s1", "c1", Side.LOCAL), MediaSipReoffer("c1", False)]


def test_refused_hold_tells_the_browser_and_keeps_the_call() -> None:
    call = f.connected_out()
    f.run(call, WebHold("s1"), MediaSipOfferReady(f.GW_SIP_OFFER))
    out = call.handle(SipReinviteResult(488))
    [error] = out
    assert isinstance(error, NotifyError) and error.code == EndReason.HOLD_FAILED.value
    assert "488" in error.message
    assert call.state is CallState.CONNECTED and not call.want_local_hold
    assert call.handle(WebHold("s1")) == [MediaSipReoffer("c1", True)]  # may try again


@pytest.mark.parametrize("status", [408, 481])
def test_reinvite_408_or_481_ends_the_call(status: int) -> None:
    call = f.connected_out()
    f.run(call, WebHold("s1"), MediaSipOfferReady(f.GW_SIP_OFFER))
    out = call.handle(SipReinviteResult(status))
    assert SipBye("c1") in out
    assert (notice(out).reason, notice(out).sip_status) == (EndReason.CONNECTION_LOST, status)
    assert call.state is CallState.CLOSING


# --- glare-free re-INVITEs (RFC 3261 §14) -----------------------------------------------------------


def test_glare_their_reinvite_while_ours_is_out_gets_491() -> None:
    call = f.connected_out()
    f.run(call, WebHold("s1"), MediaSipOfferReady(f.GW_SIP_OFFER))
    out = call.handle(SipReinviteReceived(f.SIP_HOLD))
    assert out == [SipRespondReinvite("c1", 491, "Request Pending")]


def test_glare_their_reinvite_while_ours_is_being_made_gets_491() -> None:
    call = f.connected_out()
    f.run(call, WebHold("s1"))
    assert f.kinds(call.handle(SipReinviteReceived(f.SIP_HOLD))) == [SipRespondReinvite]


@pytest.mark.parametrize(("build", "delay"), [(f.connected_out, 3.05), (f.connected_in, 1.0)])
def test_our_reinvite_491_is_retried_after_the_rfc_delay(
    build: Callable[[], CallMachine], delay: float
) -> None:
    call = build()
    f.run(call, WebHold("s1"), MediaSipOfferReady(f.GW_SIP_OFFER))
    out = call.handle(SipReinviteResult(491))
    assert out == [StartTimer("c1", TimerName.REINVITE_RETRY, delay)]  # jitter 0.5: 2.1+0.95 or 1.0
    assert call.handle(TimerFired(TimerName.REINVITE_RETRY)) == [MediaSipReoffer("c1", True)]
    f.run(call, MediaSipOfferReady(f.GW_SIP_OFFER), SipReinviteResult(200, f.SIP_ANSWER))
    assert call.state is CallState.HOLDING


def test_their_reinvite_during_our_retry_wait_goes_first() -> None:
    call = f.connected_out()
    f.run(call, WebHold("s1"), MediaSipOfferReady(f.GW_SIP_OFFER), SipReinviteResult(491))
    out = call.handle(SipReinviteReceived(f.SIP_HOLD))
    assert out == [CancelTimer("c1", TimerName.REINVITE_RETRY), MediaSipUpdate("c1", f.SIP_HOLD)]
    out = call.handle(MediaSipAnswerReady(f.GW_SIP_ANSWER))
    assert out[-2:] == [NotifyHeld("s1", "c1", Side.REMOTE), MediaSipReoffer("c1", True)]
    assert call.handle(TimerFired(TimerName.REINVITE_RETRY)) == []  # the cancelled timer is stale


def test_second_reinvite_while_answering_the_first_gets_500_retry_after() -> None:
    call = f.connected_in()
    f.run(call, SipReinviteReceived(f.SIP_HOLD))
    [reply] = call.handle(SipReinviteReceived(f.SIP_RESUME))
    assert isinstance(reply, SipRespondReinvite)
    assert reply.status == 500 and reply.retry_after is not None and 0 <= reply.retry_after <= 10


def held_remotely_offerless() -> CallMachine:
    """The SIP party held the call (a=sendonly), then sent a re-INVITE without SDP (Polycom's resume)."""
    call = f.holding_remote()
    assert call.handle(SipReinviteReceived(None)) == [MediaSipReoffer("c1", False, full=True)]
    return call


def test_offerless_reinvite_gets_a_full_sendrecv_offer_and_the_ack_answer_resumes() -> None:
    call = held_remotely_offerless()
    assert call.handle(MediaSipOfferReady(f.GW_SIP_OFFER)) == [
        SipRespondReinvite("c1", 200, "OK", f.GW_SIP_OFFER)
    ]
    assert call.state is CallState.HOLDING  # until the answer in the ACK says otherwise
    out = call.handle(SipAckReceived(f.SIP_RESUME))
    assert out == [MediaAnswerFromSip("c1", f.SIP_RESUME), NotifyResumed("s1", "c1", Side.REMOTE)]
    assert call.state is CallState.CONNECTED and not call.remote_hold
    assert call.local_sip_sdp == f.GW_SIP_OFFER


def test_offerless_reinvite_while_the_web_user_holds_offers_sendonly() -> None:
    call = f.holding_local()
    assert call.handle(SipReinviteReceived(None)) == [MediaSipReoffer("c1", True, full=True)]
    f.run(call, MediaSipOfferReady(f.GW_SIP_OFFER))
    assert call.handle(SipAckReceived(f.sip_sdp("recvonly", version=4))) == [
        MediaAnswerFromSip("c1", f.sip_sdp("recvonly", version=4))
    ]
    assert call.state is CallState.HOLDING and call.local_hold and not call.remote_hold


def test_an_ack_answer_that_holds_puts_the_call_on_remote_hold() -> None:
    call = f.connected_in()
    f.run(call, SipReinviteReceived(None), MediaSipOfferReady(f.GW_SIP_OFFER))
    out = call.handle(SipAckReceived(f.SIP_HOLD))
    assert out == [MediaAnswerFromSip("c1", f.SIP_HOLD), NotifyHeld("s1", "c1", Side.REMOTE)]
    assert call.state is CallState.HOLDING


def test_an_ack_without_the_answer_leaves_the_session_as_it_was() -> None:
    call = held_remotely_offerless()
    f.run(call, MediaSipOfferReady(f.GW_SIP_OFFER))
    assert call.handle(SipAckReceived(None)) == [MediaDropReoffer("c1")]
    assert call.state is CallState.HOLDING and call.reinvite is None


def test_while_our_offer_waits_in_a_200_a_new_offer_gets_491_and_ours_is_held_back() -> None:
    call = f.connected_in()
    f.run(call, SipReinviteReceived(None))
    [busy] = call.handle(SipReinviteReceived(f.SIP_HOLD))  # the bridge is still making our offer
    assert isinstance(busy, SipRespondReinvite) and busy.status == 500 and busy.retry_after is not None
    assert call.handle(WebHold("s1")) == []  # queued: one offer at a time
    f.run(call, MediaSipOfferReady(f.GW_SIP_OFFER))
    assert call.handle(SipReinviteReceived(f.SIP_HOLD)) == [SipRespondReinvite("c1", 491, "Request Pending")]
    out = call.handle(SipAckReceived(f.SIP_RESUME))
    assert out == [MediaAnswerFromSip("c1", f.SIP_RESUME), MediaSipReoffer("c1", True)]  # now ours


def test_plain_acks_change_nothing() -> None:
    call = f.connected_in()
    assert call.handle(SipAckReceived(None)) == []
    assert call.handle(SipAckReceived(f.SIP_OFFER)) == []  # no offer of ours was out: not an answer
    assert call.state is CallState.CONNECTED


def test_unparsable_reinvite_is_refused_and_the_call_goes_on() -> None:
    call = f.connected_in()
    [reply] = call.handle(SipReinviteReceived("garbage"))
    assert isinstance(reply, SipRespondReinvite) and reply.status in (400, 488)
    assert "(" in reply.phrase and "v=0" in reply.phrase  # says why (the SDP error), on one line
    assert call.state is CallState.CONNECTED and call.reinvite is None


def test_remote_holds() -> None:
    assert remote_holds(f.SIP_HOLD)
    assert remote_holds(f.sip_sdp("inactive"))
    assert not remote_holds(f.SIP_RESUME)
    assert not remote_holds(f.sip_sdp("recvonly"))


# --- DTMF ------------------------------------------------------------------------------------------


def test_browser_dtmf_rfc4733() -> None:
    call = f.connected_out()
    assert call.handle(WebDtmf("s1", "1#")) == [
        MediaSendDtmf("c1", "1", 100),
        MediaSendDtmf("c1", "#", 100),
    ]


def test_browser_dtmf_info() -> None:
    call = f.connected_in(CallSettings(pbx_domain=f.DOMAIN, dtmf_mode=DtmfMode.INFO))
    assert call.handle(WebDtmf("s1", "9*", 250)) == [SipInfoDtmf("c1", "9", 250), SipInfoDtmf("c1", "*", 250)]


@pytest.mark.parametrize(("mode", "kind"), [(DtmfMode.RFC4733, MediaSendDtmf), (DtmfMode.INFO, SipInfoDtmf)])
def test_browser_dtmf_into_early_media(mode: DtmfMode, kind: type) -> None:
    call = f.early_out(CallSettings(pbx_domain=f.DOMAIN, dtmf_mode=mode))
    assert f.kinds(call.handle(WebDtmf("s1", "1"))) == [kind]


@pytest.mark.parametrize("mode", list(DtmfMode))
def test_sip_dtmf_reaches_the_browser_in_each_mode(mode: DtmfMode) -> None:
    call = f.connected_out(CallSettings(pbx_domain=f.DOMAIN, dtmf_mode=mode))
    assert call.handle(RemoteDtmf("5", 160)) == [NotifyDtmf("s1", "c1", "5", 160)]


def test_dtmf_while_held() -> None:
    call = f.holding_remote()
    assert f.kinds(call.handle(WebDtmf("s1", "0"))) == [MediaSendDtmf]
    assert f.kinds(call.handle(RemoteDtmf("0", 100))) == [NotifyDtmf]


INFO_MODE = CallSettings(pbx_domain=f.DOMAIN, dtmf_mode=DtmfMode.INFO)


@pytest.mark.parametrize(
    "build", [f.inviting, f.early_out, f.early_in, f.connected_out, f.holding_local, f.closing_bye]
)
def test_a_digit_in_the_browsers_media_goes_as_info_only_in_info_mode(
    build: Callable[[CallSettings], CallMachine],
) -> None:
    """The bridge forwards the browser's telephone-events itself (rfc4733); with info, the call sends
    each digit it reports as SIP INFO, whatever the state the web leg is up in (a flash too)."""
    assert build(f.SETTINGS).handle(MediaWebDtmf("5", 120)) == []
    call = build(INFO_MODE)
    assert call.handle(MediaWebDtmf("5", 120)) == [SipInfoDtmf("c1", "5", 120)]
    assert call.handle(MediaWebDtmf("!", 80)) == [SipInfoDtmf("c1", "!", 80)]


def test_a_digit_the_bridge_cannot_send_goes_as_info() -> None:
    """No telephone-event on the SIP leg (RFC 4733 not negotiated): the keypad digit goes as INFO."""
    call = f.connected_out()
    assert call.handle(WebDtmf("s1", "7", 150)) == [MediaSendDtmf("c1", "7", 150)]
    assert call.handle(MediaDtmfUnsent("7", 150)) == [SipInfoDtmf("c1", "7", 150)]
    assert call.state is CallState.CONNECTED


# --- media failures, BYE, closing ---------------------------------------------------------------------


def test_media_inactivity_hangs_up() -> None:
    call = f.connected_in()
    out = call.handle(MediaInactive(10))
    assert f.kinds(out) == [SipBye, CloseBridge, NotifyEnded, StartTimer]
    assert notice(out).reason is EndReason.MEDIA_TIMEOUT and "10 seconds" in notice(out).message


def test_the_gateway_stopping_ends_the_call_as_its_own() -> None:
    """Issue 34/36: at shutdown the browser hears `ended` (shutdown), not a lost socket: it showed
    "Reconnecting the call" for 30 s; the record says the gateway ended it (`shutdown`)."""
    for call in (f.connected_in(), f.holding_remote()):
        out = call.handle(GatewayStopping())
        assert f.kinds(out) == [SipBye, CloseBridge, NotifyEnded, StartTimer]
        assert notice(out).reason is EndReason.SHUTDOWN and "call again" in notice(out).message
        assert call.state is CallState.CLOSING


def test_media_inactivity_on_hold_is_expected() -> None:
    call = f.holding_remote()
    assert call.handle(MediaInactive(30)) == []
    assert call.state is CallState.HOLDING


def test_a_held_party_that_sends_nothing_at_all_is_gone() -> None:
    """No RTP nor RTCP from a held party (``held``): it died on hold; BYE, as for a silent one."""
    call = f.holding_remote()
    out = call.handle(MediaInactive(15, held=True))
    assert f.kinds(out) == [SipBye, CloseBridge, NotifyEnded, StartTimer]
    assert notice(out).reason is EndReason.MEDIA_TIMEOUT
    assert notice(out).message == "Nothing arrived from the other side for 15 seconds"
    assert call.state is CallState.CLOSING


def test_ice_failure_hangs_up_with_a_reason() -> None:
    call = f.connected_out()
    out = call.handle(MediaFailed("ICE consent lost"))
    assert notice(out).reason is EndReason.MEDIA_FAILED and "ICE consent lost" in notice(out).message


def test_bye_from_the_sip_party() -> None:
    call = f.connected_out()
    out = call.handle(SipByeReceived(cause=200))
    assert out == [
        CloseBridge("c1"),
        NotifyEnded("s1", "c1", EndReason.REMOTE_HANGUP, "The other side hung up", 200),
    ]
    assert call.state is CallState.CLOSED


def test_bye_from_the_browser() -> None:
    call = f.connected_in()
    out = call.handle(WebHangup("s1"))
    assert out[0] == SipBye("c1") and notice(out).reason is EndReason.HANGUP
    assert call.state is CallState.CLOSING
    # the session ended with the BYE (RFC 3261 §15.1.1): its answer is awaited for bye_timeout only
    assert StartTimer("c1", TimerName.CLOSING, call.settings.bye_timeout) in out
    assert call.settings.bye_timeout < call.settings.closing_timeout
    call.handle(SipLegClosed())
    assert call.state is CallState.CLOSED


def test_byes_cross() -> None:
    call = f.closing_bye()
    assert call.handle(SipByeReceived()) == [CancelTimer("c1", TimerName.CLOSING)]
    assert call.state is CallState.CLOSED


def test_closing_gives_up_after_its_timer() -> None:
    call = f.closing_bye()
    assert call.handle(TimerFired(TimerName.CLOSING)) == []
    assert call.state is CallState.CLOSED


def test_dialog_lost_while_connected() -> None:
    call = f.connected_out()
    assert notice(call.handle(SipLegClosed())).reason is EndReason.CONNECTION_LOST


# --- a browser that disconnects, in every state ---------------------------------------------------------

DISCONNECTS: dict[str, tuple[Callable[[], CallMachine], CallState, type | None]] = {
    "inviting, offer not ready": (f.inviting_prep, CallState.CLOSED, None),
    "inviting": (f.inviting, CallState.CLOSING, SipCancel),
    "inviting, ringing": (f.inviting_ringing, CallState.CLOSING, SipCancel),
    "early media": (f.early_out, CallState.CLOSING, SipCancel),
    "answering": (f.early_in_offered, CallState.CLOSED, SipRespond),
    "connected out": (f.connected_out, CallState.CLOSING, SipBye),
    "connected in": (f.connected_in, CallState.CLOSING, SipBye),
    "holding": (f.holding_local, CallState.CLOSING, SipBye),
    "held": (f.holding_remote, CallState.CLOSING, SipBye),
    "closing": (f.closing_bye, CallState.CLOSING, None),
}


@pytest.mark.parametrize("name", list(DISCONNECTS))
def test_browser_disconnect(name: str) -> None:
    build, state, sip = DISCONNECTS[name]
    call = build()
    out = call.handle(WebDisconnected("s1"))
    assert call.state is state
    assert not [c for c in out if isinstance(c, (NotifyEnded, StopRinging))]  # nobody left to tell
    if sip is not None:
        assert sip in f.kinds(out)
    if sip is SipRespond:
        assert [c.status for c in out if isinstance(c, SipRespond)] == [480]
    assert call.sessions == frozenset()


def test_browser_disconnect_while_ringing_on_every_session() -> None:
    call = f.invited()
    f.run(call, WebDisconnected("s1"))
    out = call.handle(WebDisconnected("s2"))
    assert [c.status for c in out if isinstance(c, SipRespond)] == [480]
    assert call.state is CallState.CLOSED


# --- closed is final -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", EVENT_TYPES)
def test_nothing_after_closed(kind: type) -> None:
    call = f.closed()
    with pytest.raises(CallError):
        call.handle(sample(kind, "s1", TimerName.CLOSING))
    assert call.state is CallState.CLOSED


def test_hangup_while_answering_their_reinvite_answers_it_487() -> None:
    call = f.connected_in()
    f.run(call, SipReinviteReceived(f.SIP_HOLD))
    out = call.handle(WebHangup("s1"))
    assert out[:2] == [SipRespondReinvite("c1", 487, "Request Terminated"), SipBye("c1")]
