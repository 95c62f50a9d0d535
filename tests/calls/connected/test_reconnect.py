"""Reconnect grace (gateway/calls/connected/reconnect.py): a connected call outlives its browser for a while."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.calls import (
    CallRegistry,
    CallState,
    CancelTimer,
    CloseBridge,
    IllegalEvent,
    MediaDetachWeb,
    MediaRenewWeb,
    MediaSipAnswerReady,
    MediaSipOfferReady,
    MediaWebLost,
    MediaWebRenewed,
    NotifyEnded,
    NotifyHeld,
    SendReattached,
    SipAccepted,
    SipBye,
    SipByeReceived,
    SipReinvite,
    SipReinviteReceived,
    StartTimer,
    TimerFired,
    TimerName,
    WebDetached,
    WebDisconnected,
    WebHangup,
    WebReattach,
    WebReoffer,
    WrongSession,
)
from gateway.calls.boundary.commands import (
    MediaCancelSipReoffer,
    MediaSipReofferFromWeb,
    MediaWebAnswerFromSip,
    SipRespondReinvite,
)
from gateway.calls.boundary.events import (
    MediaWebReofferAnswered,
    MediaWebReofferRefused,
    SipReinviteResult,
    TakenOver,
)
from gateway.calls.errors import InvalidValue
from gateway.calls.machine import CallMachine
from gateway.calls.reasons import EndReason
from gateway.calls.settings import CallSettings
from tests.calls import flows as f

GRACE = dataclasses.replace(f.SETTINGS, reconnect_grace=12.0)


def test_detached_call_stays_up_and_starts_the_grace() -> None:
    """A lost socket: the call waits for its browser, and its web leg stays up meanwhile (away: the
    media did not go with the socket); the web leg lost as well is closed then."""
    call = f.connected_out(GRACE)
    out = call.handle(WebDetached("s1"))
    assert f.kinds(out) == [StartTimer]
    assert out[0] == StartTimer("c1", TimerName.RECONNECT, 12.0)
    assert call.state is CallState.CONNECTED and call.detached and call.away and not call.web_lost
    assert call.sessions == frozenset()  # nobody to tell anything
    assert f.kinds(call.handle(MediaWebLost("ICE failed"))) == [MediaDetachWeb]  # (the grace runs already)
    assert call.detached and not call.away and call.web_lost


def test_reattach_from_a_new_session_gets_the_call_back() -> None:
    call = f.connected_in(GRACE)
    f.run(call, WebDetached("s1"))
    out = call.handle(WebReattach("s9", f.WEB_OFFER))
    assert out == [CancelTimer("c1", TimerName.RECONNECT), MediaRenewWeb("c1", f.WEB_OFFER)]
    assert call.session_id == "s9" and call.sessions == frozenset({"s9"})
    out = call.handle(MediaWebRenewed(f.WEB_ANSWER))
    assert out == [SendReattached("s9", "c1", f.WEB_ANSWER, False, False)]
    assert call.state is CallState.CONNECTED and not call.detached and not call.reattaching
    # the call is the new session's now: it can hang up, the old one cannot
    with pytest.raises(WrongSession):
        call.handle(WebHangup("s1"))
    assert SipBye in f.kinds(call.handle(WebHangup("s9")))


def test_a_pass_through_call_taken_back_sends_the_new_offer_to_the_far_end() -> None:
    """Its media is the far end's: the new offer is our re-INVITE's, the far end's 2xx answer `reattached`."""
    call = f.connected_out(GRACE)
    f.run(call, WebDetached("s1"))
    out = call.handle(WebReattach("s9", f.WEB_OFFER, passthrough=True))
    assert out == [CancelTimer("c1", TimerName.RECONNECT), MediaSipReofferFromWeb("c1", f.WEB_OFFER)]
    assert call.reattaching and call.session_id == "s9"
    assert call.handle(MediaSipOfferReady(f.WEB_OFFER)) == [SipReinvite("c1", f.WEB_OFFER)]
    assert call.handle(SipReinviteResult(200, f.SIP_ANSWER)) == [MediaWebAnswerFromSip("c1", f.SIP_ANSWER)]
    out = call.handle(MediaWebReofferAnswered(f.SIP_ANSWER))
    assert out == [SendReattached("s9", "c1", f.SIP_ANSWER, False, False)]
    assert call.state is CallState.CONNECTED and not call.reattaching and not call.detached
    assert SipBye in f.kinds(call.handle(WebHangup("s9")))


def test_a_pass_through_call_whose_browser_kept_its_media_is_taken_back_without_an_offer() -> None:
    """Its media flows end to end and the browser kept it: the new session carries the call at once,
    `reattached` without sdp, nothing asked of the far end; not while a renegotiation is under way (the
    page may not have seen an offer of it: it tries again once that is over)."""
    call = f.connected_out(GRACE)
    f.run(call, WebDetached("s1"), SipReinviteReceived(f.SIP_OFFER))
    with pytest.raises(IllegalEvent, match="renegotiation"):
        call.handle(WebReattach("s9", None, passthrough=True))
    f.run(call, MediaSipAnswerReady(f.GW_SIP_OFFER))  # answered at once: over
    out = call.handle(WebReattach("s9", None, passthrough=True))
    assert out == [CancelTimer("c1", TimerName.RECONNECT), SendReattached("s9", "c1", None, False, False)]
    assert call.session_id == "s9" and not call.reattaching and not call.detached and not call.web_lost
    assert SipBye in f.kinds(call.handle(WebHangup("s9")))


def test_a_call_whose_media_goes_through_the_gateway_is_taken_back_without_an_offer_only_while_away() -> None:
    """Its socket lost, its web leg up: a session of its login takes it back as it is (no offer, nothing
    asked of the far end, `reattached` without SDP). Its web leg lost too: a reattach needs an offer."""
    call = f.connected_out(GRACE)
    f.run(call, WebDetached("s1"))
    out = call.handle(WebReattach("s9", None))
    assert f.kinds(out) == [CancelTimer, SendReattached]
    assert out[1] == SendReattached("s9", "c1", None, False, False)
    assert not call.detached and call.session_id == "s9"
    f.run(call, WebDetached("s9"), MediaWebLost("ICE failed"))
    with pytest.raises(IllegalEvent, match="needs an offer"):
        call.handle(WebReattach("s10", None))
    assert call.detached


@pytest.mark.parametrize("refusal", ["sip", "media"])
def test_a_pass_through_call_whose_far_end_refuses_the_new_offer_ends(refusal: str) -> None:
    """Nothing else can bring its media back: BYE, reason media_failed, the new session told."""
    call = f.connected_out(GRACE)
    f.run(call, WebDetached("s1"), WebReattach("s9", f.WEB_OFFER, passthrough=True))
    if refusal == "sip":
        f.run(call, MediaSipOfferReady(f.WEB_OFFER))
        out = call.handle(SipReinviteResult(488))
    else:
        out = call.handle(MediaWebReofferRefused("no offer of it"))
    assert SipBye in f.kinds(out) and call.state is not CallState.CONNECTED
    [ended] = [c for c in out if isinstance(c, NotifyEnded)]
    assert ended.session_id == "s9" and ended.reason is EndReason.MEDIA_FAILED, ended


def test_a_bridged_reattach_during_the_browsers_own_reinvite_is_not_taken_for_a_relayed_one() -> None:
    """A camera toggled, then the page's socket went and a new session takes the call back (a new web
    leg here): the far end's refusal of the video re-INVITE is only that, its call goes on."""
    call = f.connected_out(GRACE)
    f.run(call, WebReoffer("s1", f.WEB_OFFER), MediaSipOfferReady(f.GW_SIP_OFFER), WebDetached("s1"))
    f.run(call, WebReattach("s9", f.WEB_OFFER))
    out = call.handle(SipReinviteResult(488))
    assert SipBye not in f.kinds(out) and call.state is CallState.CONNECTED and call.reattaching
    assert call.handle(MediaWebRenewed(f.WEB_ANSWER)) == [
        SendReattached("s9", "c1", f.WEB_ANSWER, False, False)
    ]


def test_a_pass_through_call_is_not_taken_back_during_a_renegotiation() -> None:
    call = f.connected_out(GRACE)
    f.run(call, WebDetached("s1"), SipReinviteReceived(f.SIP_OFFER))
    with pytest.raises(IllegalEvent, match="renegotiation"):
        call.handle(WebReattach("s9", f.WEB_OFFER, passthrough=True))
    assert call.detached


def test_reattach_tells_the_hold_state() -> None:
    call = f.holding_remote(GRACE)
    f.run(call, WebDetached("s1"), WebReattach("s2", f.WEB_OFFER))
    out = call.handle(MediaWebRenewed(f.WEB_ANSWER))
    assert out == [SendReattached("s2", "c1", f.WEB_ANSWER, False, True)]
    assert call.state is CallState.HOLDING


def test_sip_events_while_detached_keep_their_meaning() -> None:
    """The SIP party holds while the browser is away: answered as always, nobody told; the BYE ends it."""
    call = f.connected_in(GRACE)
    f.run(call, WebDetached("s1"), SipReinviteReceived(f.SIP_HOLD), MediaSipAnswerReady(f.GW_SIP_ANSWER))
    assert call.state is CallState.HOLDING
    out = call.handle(SipByeReceived())
    assert f.kinds(out) == [CloseBridge, CancelTimer]  # no NotifyEnded: the browser is gone
    assert call.state is CallState.CLOSED
    assert call.end_reason is not None and call.end_reason.code is EndReason.REMOTE_HANGUP


def test_grace_expiry_ends_the_call_with_bye() -> None:
    call = f.connected_out(GRACE)
    f.run(call, WebDetached("s1"))
    out = call.handle(TimerFired(TimerName.RECONNECT))
    assert f.kinds(out) == [SipBye, CloseBridge, StartTimer]
    assert call.state is CallState.CLOSING
    assert call.end_reason is not None and call.end_reason.code is EndReason.DISCONNECTED


def test_a_session_of_its_login_hangs_up_a_detached_call() -> None:
    """A page that hung up while its socket was down tells the gateway once it is back (its login
    checked by the driver: `of_login`): BYE, reason hangup. Without `of_login`, or on a call that is not
    detached, the session must be the one carrying the call."""
    call = f.connected_out(GRACE)
    f.run(call, WebDetached("s1"))
    with pytest.raises(WrongSession):
        call.handle(WebHangup("s9"))
    out = call.handle(WebHangup("s9", of_login=True))
    assert f.kinds(out) == [SipBye, CloseBridge, CancelTimer, StartTimer]
    assert call.state is CallState.CLOSING
    assert call.end_reason is not None and call.end_reason.code is EndReason.HANGUP
    attached = f.connected_out(GRACE)
    with pytest.raises(WrongSession):
        attached.handle(WebHangup("s9", of_login=True))


def test_web_media_lost_waits_then_ends_with_media_failed() -> None:
    call = f.connected_out(GRACE)
    assert f.kinds(call.handle(MediaWebLost("ICE failed"))) == [MediaDetachWeb, StartTimer]
    assert call.handle(MediaWebLost("DTLS closed")) == []  # the closed leg's late report
    assert call.sessions == frozenset({"s1"})  # the session is still there
    out = call.handle(TimerFired(TimerName.RECONNECT))
    assert f.kinds(out) == [SipBye, CloseBridge, NotifyEnded, StartTimer]
    assert isinstance(out[2], NotifyEnded) and out[2].reason is EndReason.MEDIA_FAILED


def test_lost_media_then_the_socket_keeps_one_grace() -> None:
    """The browser closed DTLS a moment before its WebSocket (a reload): one timer, counted from the first."""
    call = f.connected_out(GRACE)
    f.run(call, MediaWebLost("the browser closed DTLS (close_notify)"))
    assert call.handle(WebDetached("s1")) == []
    assert call.detached and TimerName.RECONNECT in call.timers


def test_same_session_renews_its_media() -> None:
    """A network change: the WebSocket stayed, the RTCPeerConnection failed; the page offers again."""
    call = f.connected_out(GRACE)
    f.run(call, MediaWebLost("ICE failed"))
    out = call.handle(WebReattach("s1", f.WEB_OFFER))
    assert f.kinds(out) == [CancelTimer, MediaRenewWeb]
    with pytest.raises(WrongSession):  # not detached: only the carrying session may
        f.connected_out(GRACE).handle(WebReattach("s2", f.WEB_OFFER))


def test_one_reattach_at_a_time() -> None:
    call = f.connected_out(GRACE)
    f.run(call, WebDetached("s1"), WebReattach("s2", f.WEB_OFFER))
    with pytest.raises(IllegalEvent, match="already under way"):
        call.handle(WebReattach("s3", f.WEB_OFFER))


def test_gone_again_while_reattaching_drops_the_stale_answer() -> None:
    call = f.connected_out(GRACE)
    f.run(call, WebDetached("s1"), WebReattach("s2", f.WEB_OFFER), WebDetached("s2"))
    assert call.handle(MediaWebRenewed(f.WEB_ANSWER)) == []
    assert call.detached and TimerName.RECONNECT in call.timers


def test_shutdown_ends_a_detached_call() -> None:
    """The driver's shutdown feeds WebDisconnected for the session the call last had."""
    call = f.connected_out(GRACE)
    f.run(call, WebDetached("s1"))
    out = call.handle(WebDisconnected("s1"))
    assert f.kinds(out) == [SipBye, CloseBridge, CancelTimer, StartTimer]
    assert call.state is CallState.CLOSING


def test_no_grace_ends_at_once() -> None:
    settings = dataclasses.replace(f.SETTINGS, reconnect_grace=0)
    assert f.kinds(f.connected_out(settings).handle(WebDetached("s1"))) == [SipBye, CloseBridge, StartTimer]
    out = f.connected_out(settings).handle(MediaWebLost("ICE failed"))
    assert f.kinds(out) == [SipBye, CloseBridge, NotifyEnded, StartTimer]


def test_held_notice_after_reattach_goes_to_the_new_session() -> None:
    call = f.connected_in(GRACE)
    f.run(call, WebDetached("s1"), WebReattach("s2", f.WEB_OFFER), MediaWebRenewed(f.WEB_ANSWER))
    f.run(call, SipReinviteReceived(f.SIP_HOLD))
    out = call.handle(MediaSipAnswerReady(f.GW_SIP_ANSWER))
    held = [c for c in out if isinstance(c, NotifyHeld)]
    assert held and held[0].session_id == "s2"


def test_registry_indexes_the_call_by_its_new_session() -> None:
    registry = CallRegistry(GRACE, new_call_id=lambda: "c1")
    call_id, _ = registry.dial(f.dial(session="s1"))
    call = registry.get(call_id)
    registry.handle(call_id, MediaSipOfferReady(f.GW_SIP_OFFER))
    registry.handle(call_id, SipAccepted(f.SIP_ANSWER))
    assert call.state is CallState.CONNECTED
    registry.handle(call_id, WebDetached("s1"))
    assert registry.calls_of("s1") == ()
    registry.handle(call_id, WebReattach("s2", f.WEB_OFFER))
    assert registry.calls_of("s2") == (call_id,)


def test_grace_is_validated() -> None:
    with pytest.raises(InvalidValue, match="reconnect_grace"):
        CallSettings(reconnect_grace=-1)


def test_only_an_up_call_waits_for_the_browser_that_carries_it() -> None:
    for build in (f.connected_out, f.connected_in, f.holding_local, f.holding_remote):
        call = build(GRACE)
        assert call.may_wait_for("s1") and not call.may_wait_for("s2")
        assert not call.waits_for_browser
        f.run(call, WebDetached("s1"))
        assert call.waits_for_browser
    for build in (f.inviting_ringing, f.early_out, f.invited, f.early_in, f.closing_bye, f.closed):
        call = build(GRACE)
        assert not call.may_wait_for("s1") and not call.waits_for_browser


def test_a_detached_call_that_ends_waits_no_more() -> None:
    call = f.connected_out(GRACE)
    f.run(call, WebDetached("s1"))
    f.run(call, SipByeReceived())
    assert not call.waits_for_browser


def test_only_an_up_call_lets_its_browser_renew_a_failed_web_leg() -> None:
    for build in (f.connected_out, f.connected_in, f.holding_local, f.holding_remote):
        call = build(GRACE)
        assert call.may_renew_web
        call.handle(MediaWebLost("ICE failed"))  # what the runtime feeds when the answer is yes
        assert call.web_lost and call.state in (CallState.CONNECTED, CallState.HOLDING)
    for build in (f.inviting_ringing, f.early_out, f.invited, f.early_in, f.closing_bye, f.closed):
        assert not build(GRACE).may_renew_web  # the failure means what it always did: MediaFailed...


def test_a_call_taken_over_from_a_dead_instance_waits_for_its_browser() -> None:
    """The machine read back on a survivor (from its dict) from a call whose browser was attached: the dead
    instance's timers are gone, the browser with it; a whole grace starts, and its login takes it back."""
    before = f.connected_out(GRACE)
    call = CallMachine.from_dict(before.to_dict(), lambda _id: f.ALICE, GRACE)
    assert not call.detached and call.session_id == "s1"
    out = call.handle(TakenOver("gw1"))
    assert out == [StartTimer("c1", TimerName.RECONNECT, 12.0)]
    assert call.state is CallState.CONNECTED and call.detached and call.sessions == frozenset()
    assert call.timers == frozenset({TimerName.RECONNECT})
    out = call.handle(WebReattach("s7", f.WEB_OFFER))
    assert out == [CancelTimer("c1", TimerName.RECONNECT), MediaRenewWeb("c1", f.WEB_OFFER)]
    assert call.handle(MediaWebRenewed(f.WEB_ANSWER)) == [
        SendReattached("s7", "c1", f.WEB_ANSWER, False, False)
    ]


def test_a_call_taken_over_ends_when_no_browser_comes_back() -> None:
    call = f.connected_in(GRACE)
    f.run(call, WebDetached("s1"))  # it was waiting already on the dead instance: a whole grace again
    assert call.handle(TakenOver("gw1")) == [StartTimer("c1", TimerName.RECONNECT, 12.0)]
    out = call.handle(TimerFired(TimerName.RECONNECT))
    assert SipBye in f.kinds(out) and call.state is CallState.CLOSING


def test_a_call_taken_over_with_its_session_kept_waits_for_that_session_to_renew() -> None:
    """An HTTP API session made again under its ids on the survivor: the call waits for its own session's
    new offer (as after a lost web leg), and another session cannot take it."""
    call = CallMachine.from_dict(f.connected_out(GRACE).to_dict(), lambda _id: f.ALICE, GRACE)
    assert call.handle(TakenOver("gw1", session_kept=True)) == [StartTimer("c1", TimerName.RECONNECT, 12.0)]
    assert call.web_lost and not call.detached and call.session_id == "s1"
    with pytest.raises(WrongSession):
        call.handle(WebReattach("s7", f.WEB_OFFER))
    out = call.handle(WebReattach("s1", f.WEB_OFFER))
    assert out == [CancelTimer("c1", TimerName.RECONNECT), MediaRenewWeb("c1", f.WEB_OFFER)]
    assert call.handle(MediaWebRenewed(f.WEB_ANSWER)) == [
        SendReattached("s1", "c1", f.WEB_ANSWER, False, False)
    ]


def test_a_pass_through_call_taken_over_with_its_http_session_goes_on_as_it_was() -> None:
    """Its media flows end to end and outlived the dead instance (`media_intact`): the HTTP API session
    made again here carries the call on, attached, with no grace running; it hangs up as before. Its
    media lost already on the dead instance, it waits for the session's new offer as any."""
    call = CallMachine.from_dict(f.connected_out(GRACE).to_dict(), lambda _id: f.ALICE, GRACE)
    assert call.handle(TakenOver("gw1", session_kept=True, media_intact=True)) == []
    assert not call.web_lost and not call.detached and call.session_id == "s1" and call.timers == frozenset()
    assert SipBye in f.kinds(call.handle(WebHangup("s1")))
    lost = f.connected_out(GRACE)
    f.run(lost, MediaWebLost("ice failed"))
    again = CallMachine.from_dict(lost.to_dict(), lambda _id: f.ALICE, GRACE)
    out = again.handle(TakenOver("gw1", session_kept=True, media_intact=True))
    assert out == [StartTimer("c1", TimerName.RECONNECT, 12.0)] and again.web_lost


def test_a_pass_through_call_taken_back_retries_its_offer_after_a_491() -> None:
    """The far end's own re-INVITE crossed ours with the browser's offer (RFC 3261 §14.1): the same offer
    goes again after the wait (2.1-4 s: we made the Call-ID), the far end's crossing re-INVITE meanwhile
    is answered 491 (ours first), and the answer to the retry is `reattached`. Before, the 491 ended the
    call (media_failed)."""
    call = f.connected_out(GRACE)
    f.run(call, WebDetached("s1"), WebReattach("s9", f.WEB_OFFER, passthrough=True))
    f.run(call, MediaSipOfferReady(f.WEB_OFFER))
    [wait] = call.handle(SipReinviteResult(491))
    assert (
        isinstance(wait, StartTimer) and wait.name is TimerName.REINVITE_RETRY and 2.1 <= wait.seconds <= 4.0
    )
    assert call.reattaching and call.state is CallState.CONNECTED
    out = call.handle(SipReinviteReceived(f.SIP_OFFER))
    assert [c.status for c in out if isinstance(c, SipRespondReinvite)] == [491]
    assert call.handle(TimerFired(TimerName.REINVITE_RETRY)) == [SipReinvite("c1", f.WEB_OFFER)]
    assert call.handle(SipReinviteResult(200, f.SIP_ANSWER)) == [MediaWebAnswerFromSip("c1", f.SIP_ANSWER)]
    out = call.handle(MediaWebReofferAnswered(f.SIP_ANSWER))
    assert out == [SendReattached("s9", "c1", f.SIP_ANSWER, False, False)]
    assert call.state is CallState.CONNECTED and not call.reattaching


def test_a_take_back_offer_is_retried_three_times_at_most() -> None:
    """A far end that answers every try 491: the offer goes 3 times more, then the call ends as any
    refusal of a take-back ends it (media_failed), instead of re-INVITEs forever."""
    call = f.connected_out(GRACE)
    f.run(call, WebDetached("s1"), WebReattach("s9", f.WEB_OFFER, passthrough=True))
    f.run(call, MediaSipOfferReady(f.WEB_OFFER))
    for _ in range(3):
        assert f.kinds(call.handle(SipReinviteResult(491))) == [StartTimer]
        assert call.handle(TimerFired(TimerName.REINVITE_RETRY)) == [SipReinvite("c1", f.WEB_OFFER)]
    out = call.handle(SipReinviteResult(491))
    assert SipBye in f.kinds(out) and call.state is not CallState.CONNECTED
    [ended] = [c for c in out if isinstance(c, NotifyEnded)]
    assert ended.reason is EndReason.MEDIA_FAILED


def test_a_browser_gone_while_its_take_back_waits_for_a_retry_gives_it_up() -> None:
    """The page that took the call back goes again while its offer waits to be sent again after a 491:
    the retry is cancelled and the media side forgets the offer it prepared; the call waits for a browser
    as before, and the far end's next re-INVITE is an ordinary one again (not 491)."""
    call = f.connected_out(GRACE)
    f.run(call, WebDetached("s1"), WebReattach("s9", f.WEB_OFFER, passthrough=True))
    f.run(call, MediaSipOfferReady(f.WEB_OFFER), SipReinviteResult(491))
    out = call.handle(WebDetached("s9"))
    assert CancelTimer("c1", TimerName.REINVITE_RETRY) in out and MediaCancelSipReoffer("c1") in out
    assert call.detached and call.reinvite is None and not call.reinvite_for_web
    assert StartTimer("c1", TimerName.RECONNECT, 12.0) in out
    out = call.handle(SipReinviteReceived(f.SIP_OFFER))
    assert 491 not in [c.status for c in out if isinstance(c, SipRespondReinvite)]
