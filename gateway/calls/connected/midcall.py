"""Handlers of a connected call (states connected and holding), DTMF, and the end of a call.

Hold (RFC 3264 §8.4) is two flags: `local_hold` (the web user held: our re-INVITE offered
sendonly) and `remote_hold` (the SIP party's re-INVITE offered sendonly or inactive). The state is
holding while either is set. A call has at most one re-INVITE in progress (`Reinvite`): the
browser's hold/resume only sets `want_local_hold`, and a re-INVITE is started whenever none is in
progress and the wish differs from the fact, so requests queue instead of crossing. A re-INVITE
from the SIP party while ours is being made or is out gets 491 (RFC 3261 §14.2); one while we
answer theirs gets 500 with Retry-After. Their re-INVITE without an offer is answered with ours (every
codec, sendrecv unless the web user holds) and the ACK brings the answer, as after a late offer. Ours answered 491 is retried after 2.1-4 s when we own
the Call-ID (outbound), else 0-2 s (RFC 3261 §14.1). A 408 or 481 to our re-INVITE ends the call
(RFC 3261 §14.1, §12.2.1.2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sdp
from gateway.calls.boundary.commands import (
    CloseBridge,
    MediaAnswerFromSip,
    MediaCancelSipReoffer,
    MediaDropReoffer,
    MediaSendDtmf,
    MediaSipReoffer,
    MediaSipUpdate,
    NotifyDtmf,
    NotifyError,
    NotifyHeld,
    NotifyResumed,
    SipBye,
    SipInfoDtmf,
    SipReinvite,
    SipRespondReinvite,
)
from gateway.calls.boundary.events import (
    GatewayStopping,
    MediaDtmfUnsent,
    MediaFailed,
    MediaInactive,
    MediaSipAnswerReady,
    MediaSipOfferReady,
    MediaWebDtmf,
    RemoteDtmf,
    SipAckReceived,
    SipByeReceived,
    SipLegClosed,
    SipReinviteReceived,
    SipReinviteResult,
    TimerFired,
    WebDisconnected,
    WebDtmf,
    WebHangup,
    WebHold,
    WebResume,
)
from gateway.calls.reasons import EndReason, Reason, local_reason, phrase
from gateway.calls.states import CallDirection, CallState, Reinvite, Side, TimerName
from gateway.config.values import DtmfMode

if TYPE_CHECKING:
    from gateway.calls.machine import CallMachine


def _drop_pending(call: CallMachine) -> None:
    """A re-INVITE of the SIP party still unanswered gets 487 as the dialog ends (RFC 3261 §15.1.2)."""
    if call.reinvite in (Reinvite.ANSWERING, Reinvite.OFFERING, Reinvite.ASKING_WEB):
        _answer_reinvite(call, 487)
    call.reinvite_to(None)


def end_connected(call: CallMachine, reason: Reason) -> None:
    """We end a confirmed dialog: BYE, close the bridge, tell the browser, wait a little for the BYE's
    answer (bye_timeout: the session is over once BYE is sent, RFC 3261 §15.1.1)."""
    _drop_pending(call)
    call.emit(SipBye(call.call_id), CloseBridge(call.call_id))
    call.tell_ended(reason)
    call.begin_closing(call.settings.bye_timeout)


def hangup(call: CallMachine, event: WebHangup) -> None:
    if not (event.of_login and call.detached):
        call.require_session(event.session_id)
    end_connected(call, local_reason(EndReason.HANGUP))


def disconnected(call: CallMachine, event: WebDisconnected) -> None:
    call.require_session(event.session_id)
    call.web_left()
    end_connected(call, local_reason(EndReason.DISCONNECTED))


def remote_bye(call: CallMachine, event: SipByeReceived) -> None:
    _drop_pending(call)
    call.emit(CloseBridge(call.call_id))
    call.tell_ended(local_reason(EndReason.REMOTE_HANGUP, event.cause))
    call.close()


def leg_lost(call: CallMachine, event: SipLegClosed) -> None:
    call.emit(CloseBridge(call.call_id))
    call.tell_ended(local_reason(EndReason.CONNECTION_LOST))
    call.close()


def stopping(call: CallMachine, event: GatewayStopping) -> None:
    """The gateway stops: BYE, `ended` (shutdown) to the browser (it showed "reconnecting" for 30 s)."""
    end_connected(call, local_reason(event.reason))


def media_failed(call: CallMachine, event: MediaFailed) -> None:
    end_connected(call, local_reason(EndReason.MEDIA_FAILED, message=f"The audio failed: {event.reason}"))


def media_inactive(call: CallMachine, event: MediaInactive) -> None:
    """No RTP: hang up, unless the call is on hold (a held party may rightly send no audio); a party
    that sent nothing at all, not even RTCP, is gone even on hold."""
    if call.state is CallState.HOLDING and not event.held:
        return
    if event.held:
        message = f"Nothing arrived from the other side for {event.seconds:g} seconds"
        end_connected(call, local_reason(EndReason.MEDIA_TIMEOUT, message=message))
        return
    message = f"No audio arrived for {event.seconds:g} seconds"
    end_connected(call, local_reason(EndReason.MEDIA_TIMEOUT, message=message))


def ignore(call: CallMachine, event: object) -> None:
    """A legal event that changes nothing here (a stale reply, a race the SIP UA already settled)."""


# --- DTMF ------------------------------------------------------------------------------------------


def web_dtmf(call: CallMachine, event: WebDtmf) -> None:
    """Keypad digits to the SIP leg: RFC 4733 through the bridge, or SIP INFO, per sip.dtmf_mode."""
    call.require_session(event.session_id)
    if call.state is CallState.EARLY and call.direction is not CallDirection.OUTBOUND:
        raise call.illegal(event, "no early media to send digits into")
    duration = event.duration_ms if event.duration_ms is not None else call.settings.dtmf_duration_ms
    for digit in event.digits:
        if call.settings.dtmf_mode is DtmfMode.INFO:
            call.emit(SipInfoDtmf(call.call_id, digit, duration))
        else:
            call.emit(MediaSendDtmf(call.call_id, digit, duration))


def remote_dtmf(call: CallMachine, event: RemoteDtmf) -> None:
    if call.session_id is not None and not call.web_gone:
        call.emit(NotifyDtmf(call.session_id, call.call_id, event.digit, event.duration_ms))


def web_media_dtmf(call: CallMachine, event: MediaWebDtmf) -> None:
    """A digit the browser sent in its media: SIP INFO per sip.dtmf_mode info (with rfc4733 the bridge
    forwarded it as telephone-events itself). Whatever the state the web leg is up in, closing too: the
    UA sends it only while the dialog lives."""
    if call.settings.dtmf_mode is DtmfMode.INFO:
        call.emit(SipInfoDtmf(call.call_id, event.digit, event.duration_ms))


def dtmf_unsent(call: CallMachine, event: MediaDtmfUnsent) -> None:
    """A keypad digit the bridge could not send (the SIP party negotiated no telephone-event, RFC 4733):
    it goes as SIP INFO instead (closing too, as it did when sent at once)."""
    call.emit(SipInfoDtmf(call.call_id, event.digit, event.duration_ms))


# --- hold, resume, re-INVITEs ------------------------------------------------------------------------


def web_hold(call: CallMachine, event: WebHold) -> None:
    call.require_session(event.session_id)
    call.wish_hold(True)
    advance(call)


def web_resume(call: CallMachine, event: WebResume) -> None:
    call.require_session(event.session_id)
    call.wish_hold(False)
    advance(call)


def advance(call: CallMachine) -> None:
    """Start our re-INVITE when none is in progress and the browser's wish differs from the fact."""
    if call.reinvite is not None or call.want_local_hold == call.local_hold:
        return
    call.reinvite_to(Reinvite.PREPARING, hold=call.want_local_hold)
    call.emit(MediaSipReoffer(call.call_id, call.want_local_hold))


def reoffer_ready(call: CallMachine, event: MediaSipOfferReady) -> None:
    if call.reinvite is Reinvite.OFFERING:  # the offer for our 200 to their offerless re-INVITE
        call.reinvite_to(Reinvite.AWAITING_ACK, offer=event.sdp, hold=call.local_hold)
        _answer_reinvite(call, 200, event.sdp)
        return
    if call.reinvite is not Reinvite.PREPARING:
        raise call.illegal(event, "no re-offer was asked for")
    call.reinvite_to(Reinvite.SENT, offer=event.sdp)
    call.emit(SipReinvite(call.call_id, event.sdp))


def reinvite_result(call: CallMachine, event: SipReinviteResult) -> None:
    if call.reinvite is not Reinvite.SENT:
        raise call.illegal(event, "no re-INVITE of ours is out")
    assert call.session_id is not None
    if 200 <= event.status < 300:
        call.reinvite_to(None)
        call.gave_sip(call.reinvite_offer)
        if event.sdp is not None:
            call.emit(MediaAnswerFromSip(call.call_id, event.sdp))
        if call.hold_to(Side.LOCAL, call.reinvite_hold):
            tell_hold(call, Side.LOCAL, call.local_hold)
        if call.state is CallState.EARLY:  # an UPDATE in the early dialog (early_update.web_hold)
            call.renegotiated_early()  # the INVITE's 2xx repeats the old answer: not applied
            advance(call)
            return
        _settle(call)
    elif event.status == 491:
        call.reinvite_to(Reinvite.RETRY_WAIT)
        call.start_timer(TimerName.REINVITE_RETRY, glare_wait(call))
    elif event.status in (408, 481) and call.state is not CallState.EARLY:
        end_connected(call, local_reason(EndReason.CONNECTION_LOST, event.status))
    else:
        # RFC 3261 §14.1: a failed re-INVITE leaves the session as it was.
        call.reinvite_to(None)
        call.wish_hold(call.local_hold)
        what = "hold" if call.reinvite_hold else "resume"
        message = f"The other side refused the {what} (SIP {event.status})"
        call.emit(NotifyError(call.session_id, call.call_id, EndReason.HOLD_FAILED.value, message))


def glare_wait(call: CallMachine) -> float:
    """Seconds before our re-INVITE goes again after a 491 (RFC 3261 §14.1): 2.1-4 s when we made the
    Call-ID, else 0-2 s."""
    owner = call.direction is CallDirection.OUTBOUND
    return round(2.1 + 1.9 * call.jitter() if owner else max(0.01, 2.0 * call.jitter()), 2)


def retry_reinvite(call: CallMachine, event: TimerFired) -> None:
    if call.reinvite is not Reinvite.RETRY_WAIT:
        return
    if call.reinvite_for_web:
        if call.relaying and call.reinvite_offer is not None:
            # a pass-through call taken back (reconnect.py): the browser's offer goes again, as it was
            call.reinvite_to(Reinvite.SENT)
            call.emit(SipReinvite(call.call_id, call.reinvite_offer))
            return
        drop_web_offer(call)  # (its browser went meanwhile)
        advance(call)
        return
    call.reinvite_to(None)
    advance(call)


def drop_web_offer(call: CallMachine) -> None:
    """The browser's offer waiting to go again after a 491 is given up: no re-INVITE in progress, and the
    media side forgets the offer it prepared."""
    call.cancel_timer(TimerName.REINVITE_RETRY)
    call.reinvite_to(None, for_web=False)
    call.emit(MediaCancelSipReoffer(call.call_id))


def remote_reinvite(call: CallMachine, event: SipReinviteReceived) -> None:
    if call.reinvite in (Reinvite.PREPARING, Reinvite.SENT, Reinvite.AWAITING_ACK):
        _answer_reinvite(call, 491)  # an offer of ours is out (RFC 3261 §14.2, RFC 6337 §3.1)
        return
    if call.reinvite is Reinvite.RETRY_WAIT and call.relaying:
        _answer_reinvite(call, 491)  # the browser's offer, taking the call back, goes first (then theirs)
        return
    if call.reinvite in (Reinvite.ANSWERING, Reinvite.OFFERING, Reinvite.ASKING_WEB):
        call.emit(SipRespondReinvite(call.call_id, 500, phrase(500), retry_after=1 + int(9 * call.jitter())))
        return
    held = False
    if event.sdp is not None:
        try:
            held = remote_holds(event.sdp)
        except sdp.SdpError as exc:
            _answer_reinvite(call, exc.sip_status, detail=exc.message)
            return
    if call.reinvite is Reinvite.RETRY_WAIT:  # theirs first; ours follows through _advance
        call.cancel_timer(TimerName.REINVITE_RETRY)
    if event.sdp is None:
        # An offerless re-INVITE (Polycom's resume, a refresh): our offer goes in the 200 with every
        # codec and sendrecv, unless the web user holds (RFC 3261 §14.2, RFC 6337 §5.3); the answer
        # comes in the ACK (ack_received).
        call.reinvite_to(Reinvite.OFFERING)
        call.emit(MediaSipReoffer(call.call_id, call.local_hold, full=True))
        return
    call.reinvite_to(Reinvite.ANSWERING, remote_hold=held)
    call.emit(MediaSipUpdate(call.call_id, event.sdp))


def ack_received(call: CallMachine, event: SipAckReceived) -> None:
    """The ACK of our 2xx. When that 2xx carried our offer, the ACK carries the answer: apply it (the
    SIP party's hold comes from its direction). An ACK without one leaves a re-INVITE's session as it
    was; after a late offer there is no session, and the call ends (RFC 3261 §13.3.1.4)."""
    if call.reinvite is not Reinvite.AWAITING_ACK:
        return  # the ACK of a 2xx that carried an answer
    initial = call.offer_in_200
    call.reinvite_to(None, initial=False)
    problem = "the ACK carried no SDP answer" if event.sdp is None else None
    held = False
    if event.sdp is not None:
        try:
            held = remote_holds(event.sdp)
        except sdp.SdpError as exc:
            problem = f"the SDP answer in the ACK is not valid: {exc.message}"
    if problem is not None:
        if initial:
            end_connected(call, local_reason(EndReason.INCOMPATIBLE_MEDIA, message=f"No audio: {problem}"))
            return
        call.emit(MediaDropReoffer(call.call_id))
        _settle(call)
        return
    assert event.sdp is not None
    call.gave_sip(call.reinvite_offer)
    call.emit(MediaAnswerFromSip(call.call_id, event.sdp))
    if call.hold_to(Side.REMOTE, held):
        tell_hold(call, Side.REMOTE, held)
    _settle(call)


def reanswer_ready(call: CallMachine, event: MediaSipAnswerReady) -> None:
    if call.reinvite is not Reinvite.ANSWERING:
        raise call.illegal(event, "no re-INVITE of the SIP party is being answered")
    call.reinvite_to(None)
    call.gave_sip(event.sdp)
    _answer_reinvite(call, 200, event.sdp)
    if call.hold_to(Side.REMOTE, call.remote_hold_pending):
        tell_hold(call, Side.REMOTE, call.remote_hold)
    _settle(call)


def _answer_reinvite(
    call: CallMachine, status: int, sdp_text: str | None = None, detail: str | None = None
) -> None:
    call.emit(SipRespondReinvite(call.call_id, status, phrase(status, detail), sdp_text))


def tell_hold(call: CallMachine, by: Side, held: bool) -> None:
    if call.session_id is None or call.web_gone:
        return
    notice = NotifyHeld if held else NotifyResumed
    call.emit(notice(call.session_id, call.call_id, by))


def _settle(call: CallMachine) -> None:
    """Holding while either side holds; then start the next re-INVITE of ours, if one is wished."""
    call.settle()
    advance(call)


settle = _settle  # escalation.py: a refused re-INVITE of theirs lets ours go


def remote_holds(text: str) -> bool:
    """Whether a re-offer puts us on hold: no active stream receives (RFC 3264 §8.4, c=0.0.0.0 too)."""
    description = sdp.parse(text)
    active = [i for i, media in enumerate(description.media) if media.port != 0]
    return bool(active) and not any(description.effective_direction(i).receives for i in active)


# --- closing ---------------------------------------------------------------------------------------


def closing_bye(call: CallMachine, event: SipByeReceived) -> None:
    """BYEs crossed, or the SIP party ended first: nothing left to wait for."""
    call.close()


def closing_done(call: CallMachine, event: object) -> None:
    """The SIP leg confirmed the end: BYE answered, or the cancelled INVITE's final response."""
    call.close()


def closing_accepted(call: CallMachine, event: object) -> None:
    """A 2xx crossed our CANCEL (RFC 3261 §9.1): the UA ACKs it, we BYE it."""
    call.emit(SipBye(call.call_id))


def closing_reinvite(call: CallMachine, event: SipReinviteReceived) -> None:
    _answer_reinvite(call, 481)


def closing_expired(call: CallMachine, event: TimerFired) -> None:
    call.close()
