"""Handlers of an inbound call (SIP -> web user) until it is connected or over.

INVITE -> the identity map's answer: NoSuchUser 404, NotOnline 480, an offer whose audio cannot be
bridged 488 with a Warning naming why (sdp.check_audio_offer), else ring every
open session of the users found (NotifyIncoming) and send 180 Ringing. The first session to
answer wins: the others StopRinging("answered elsewhere"). Answering: CreateBridge,
MediaOfferToWeb -> SendWebOffer -> WebSdpAnswer -> MediaAnswerFromWeb -> MediaSipAnswerReady,
and once the bridge reports MediaConnected (WebRTC up), 200 OK with the SIP answer. An INVITE without
an offer (late offer) rings the same; the browser gets an offer of every web codec, and its answer
makes the SIP offer that the 200 carries; the ACK brings the SIP answer (midcall.ack_received).
A reject ends ringing for that user's sessions and, when nobody else rings, answers 486, 480 or 603.
No answer within inbound_ring_timeout: 480 (see gateway/calls/reasons.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

import sdp
from gateway.calls.boundary.commands import (
    CloseBridge,
    CreateBridge,
    MediaAnswerFromWeb,
    MediaOfferToWeb,
    NotifyConnected,
    NotifyIncoming,
    SendWebOffer,
    SipRespond,
)
from gateway.calls.boundary.events import (
    GatewayStopping,
    MediaConnected,
    MediaFailed,
    MediaSipAnswerReady,
    MediaWebOfferReady,
    SipByeReceived,
    SipCancelled,
    SipIncomingInvite,
    TimerFired,
    WebAccept,
    WebDisconnected,
    WebHangup,
    WebOfferWanted,
    WebReject,
    WebSdpAnswer,
)
from gateway.calls.errors import WrongSession
from gateway.calls.reasons import REJECT_STATUS, EndReason, Reason, local_reason, phrase
from gateway.calls.records import WebSdp
from gateway.calls.states import CallDirection, CallState, Reinvite, RejectKind, TimerName
from gateway.identity.model import Found, NoSuchUser

if TYPE_CHECKING:
    from gateway.calls.machine import CallMachine


def respond(
    call: CallMachine,
    status: int,
    sdp_text: str | None = None,
    detail: str | None = None,
    warning: tuple[int, str] | None = None,
) -> None:
    call.emit(SipRespond(call.call_id, status, phrase(status, detail), sdp_text, warning))


def _refuse(
    call: CallMachine, status: int, code: EndReason, detail: str | None = None, warning: int | None = None
) -> None:
    call.end_with(local_reason(code, status))
    respond(call, status, detail=detail, warning=(warning, detail or "") if warning is not None else None)
    call.close()


def incoming(call: CallMachine, event: SipIncomingInvite) -> None:
    call.start_inbound(event.from_uri)
    target = event.target
    if not isinstance(target, Found):
        code = EndReason.NO_SUCH_NUMBER if isinstance(target, NoSuchUser) else EndReason.UNAVAILABLE
        _refuse(call, target.sip_status, code)
        return
    try:  # decided before anyone rings: a web user must not answer a call that then fails
        if event.sdp is not None and event.passthrough:
            sdp.parse(event.sdp)  # WebRTC media for the browser itself: the browser judges its codecs
        elif event.sdp is not None:  # else a late offer (RFC 3261 §13.2.1): ours goes in the 200
            settings = call.settings
            offer = sdp.parse(event.sdp)
            sdp.check_audio_offer(offer, settings.sip_codecs, settings.media_families, settings.sip_srtp)
    except sdp.SdpError as exc:
        _refuse(call, exc.sip_status, EndReason.INCOMPATIBLE_MEDIA, exc.message, exc.warning)
        return
    call.take_sip_offer(event.sdp, passthrough=event.passthrough and event.sdp is not None)
    for user in target.users:
        if user.id in event.busy_users:
            continue  # already ringing settings.max_ringing_per_user calls
        for session_id in target.sessions.get(user.id, ()):
            call.ring(session_id, user.id)
    if not call.ringing and event.busy_users:
        _refuse(call, 486, EndReason.BUSY, "too many calls ringing this user")
        return
    if not call.ringing:  # Found promises sessions; without any there is nobody to ring
        _refuse(call, 480, EndReason.UNAVAILABLE)
        return
    for session_id in call.ringing:
        call.emit(NotifyIncoming(session_id, call.call_id, event.from_uri, event.from_display, event.details))
    respond(call, 180)
    call.start_timer(TimerName.RING, call.settings.inbound_ring_timeout)
    call.enter(CallState.INVITED)


def _require_ringing(call: CallMachine, session_id: str) -> str:
    user_id = call.ringing.get(session_id)
    if user_id is None:
        raise WrongSession(call.call_id, session_id)
    return user_id


def accept(call: CallMachine, event: WebAccept) -> None:
    _require_ringing(call, event.session_id)
    call.answered_by(event.session_id)
    call.cancel_timer(TimerName.RING)
    call.stop_ringing(EndReason.ANSWERED_ELSEWHERE)
    if call.early_web_offer is not None:  # made for a SIP library that rang: the same offer serves
        call.web_sdp_to(WebSdp.OFFER_SENT)
        call.emit(SendWebOffer(event.session_id, call.call_id, call.early_web_offer))
    elif not call.web_offer_requested:  # (else it is on its way: web_offer_ready sends it)
        _request_web_offer(call)
    call.start_timer(TimerName.ANSWER, call.settings.answer_timeout)
    call.enter(CallState.EARLY)


def _request_web_offer(call: CallMachine) -> None:
    call.web_sdp_to(WebSdp.OFFER_REQUESTED)
    call.emit(
        CreateBridge(call.call_id, CallDirection.INBOUND), MediaOfferToWeb(call.call_id, call.sip_offer)
    )


def offer_wanted(call: CallMachine, event: WebOfferWanted) -> None:
    """A ringing session that rings only with our offer (a SIP library). One offer serves every such
    session; the first answer wins (early_answer), the others stop ringing."""
    _require_ringing(call, event.session_id)
    call.wait_for_offer(event.session_id)
    if call.early_web_offer is not None:
        call.emit(SendWebOffer(event.session_id, call.call_id, call.early_web_offer))
    elif not call.web_offer_requested:
        _request_web_offer(call)


def early_offer_ready(call: CallMachine, event: MediaWebOfferReady) -> None:
    if not call.web_offer_requested or call.early_web_offer is not None:
        raise call.illegal(event, "no offer was asked for")
    call.keep_web_offer(event.sdp)
    for session_id in sorted(call.offer_waiters & set(call.ringing)):
        call.emit(SendWebOffer(session_id, call.call_id, event.sdp))


def early_answer(call: CallMachine, event: WebSdpAnswer) -> None:
    """A SIP library answered the offer it rang with: it takes the call (the others stop ringing)."""
    _require_ringing(call, event.session_id)
    if event.session_id not in call.offer_waiters or call.early_web_offer is None:
        raise call.illegal(event, "this session has no offer to answer")
    call.answered_by(event.session_id)
    call.cancel_timer(TimerName.RING)
    call.stop_ringing(EndReason.ANSWERED_ELSEWHERE)
    call.start_timer(TimerName.ANSWER, call.settings.answer_timeout)
    call.enter(CallState.EARLY)
    call.web_sdp_to(WebSdp.ANSWER_RECEIVED)
    call.emit(MediaAnswerFromWeb(call.call_id, event.sdp))


def ringing_stopping(call: CallMachine, event: GatewayStopping) -> None:
    """The gateway stops while web users ring: they hear `ended` (shutdown), the caller 480."""
    call.stop_ringing(event.reason)
    call.emit(CloseBridge(call.call_id))
    _refuse(call, 480, event.reason)


def ringing_media_failed(call: CallMachine, event: MediaFailed) -> None:
    """The early offer could not be made: nobody could answer."""
    call.stop_ringing(EndReason.MEDIA_FAILED)
    call.emit(CloseBridge(call.call_id))
    status = event.sip_status if event.sip_status is not None else 480
    code = EndReason.INCOMPATIBLE_MEDIA if status == 488 else EndReason.MEDIA_FAILED
    _refuse(call, status, code, event.reason if status == 488 else None)


_REJECT_REASON: Final[Mapping[RejectKind, EndReason]] = MappingProxyType(
    {
        RejectKind.BUSY: EndReason.BUSY,
        RejectKind.UNAVAILABLE: EndReason.UNAVAILABLE,
        RejectKind.DECLINE: EndReason.DECLINED,
    }
)


def reject(call: CallMachine, event: WebReject) -> None:
    user_id = _require_ringing(call, event.session_id)
    status = REJECT_STATUS[event.kind]
    own = _REJECT_REASON[event.kind]
    call.stop_ringing(own, [event.session_id])
    if event.kind is not RejectKind.BUSY:
        # A decline is the user's: her other sessions stop ringing. "Busy" is one session's (a tab in a
        # call): the others ring on, as a forking proxy's other branches do after a 486 (RFC 3261 §16.7).
        call.stop_ringing(EndReason.REJECTED_ELSEWHERE, [s for s, u in call.ringing.items() if u == user_id])
    if not call.ringing:
        _refuse(call, status, own)


def hangup_ringing(call: CallMachine, event: WebHangup) -> None:
    """Hang up on a ringing call: a decline (603)."""
    reject(call, WebReject(event.session_id, RejectKind.DECLINE))


def ringing_disconnected(call: CallMachine, event: WebDisconnected) -> None:
    _require_ringing(call, event.session_id)
    call.unring(event.session_id)
    if not call.ringing:
        _refuse(call, 480, EndReason.DISCONNECTED)


def _cancel_reason(event: SipCancelled) -> EndReason:
    """A forking proxy's CANCEL saying another branch answered (RFC 3326) is no missed call."""
    return EndReason.ANSWERED_ELSEWHERE if event.answered_elsewhere else EndReason.CALLER_CANCELLED


def ringing_cancelled(call: CallMachine, event: SipCancelled) -> None:
    """CANCEL: the UA has answered 487; the browsers stop ringing."""
    code = _cancel_reason(event)
    call.stop_ringing(code)
    call.end_with(local_reason(code, 487))
    call.close()


def ringing_bye(call: CallMachine, event: SipByeReceived) -> None:
    """BYE on the early dialog: the INVITE gets 487 (RFC 3261 §15.1.2)."""
    call.stop_ringing(EndReason.CALLER_CANCELLED)
    _refuse(call, 487, EndReason.CALLER_CANCELLED)


def ring_expired(call: CallMachine, event: TimerFired) -> None:
    call.stop_ringing(EndReason.NO_ANSWER)
    _refuse(call, 480, EndReason.NO_ANSWER)


# --- answering (state early, inbound) -------------------------------------------------------------


def web_offer_ready(call: CallMachine, event: MediaWebOfferReady) -> None:
    if call.web_offer_sent:
        raise call.illegal(event, "the browser already has its offer")
    assert call.session_id is not None
    call.keep_web_offer(event.sdp)
    call.web_sdp_to(WebSdp.OFFER_SENT)
    call.emit(SendWebOffer(call.session_id, call.call_id, event.sdp))


def web_sdp_answer(call: CallMachine, event: WebSdpAnswer) -> None:
    call.require_session(event.session_id)
    if not call.web_offer_sent or call.web_answer_received:
        raise call.illegal(event, "no offer is waiting for the browser's answer")
    call.web_sdp_to(WebSdp.ANSWER_RECEIVED)
    call.emit(MediaAnswerFromWeb(call.call_id, event.sdp))


def sip_answer_ready(call: CallMachine, event: MediaSipAnswerReady) -> None:
    if not call.web_answer_received or call.local_sip_sdp is not None:
        raise call.illegal(event, "no SIP answer was asked for")
    call.gave_sip(event.sdp)
    if call.passthrough and not call.media_up:
        # Pass-through media (the browser takes the caller's WebRTC offer as it is): no web leg of ours
        # comes up, and the browser connects to the caller once our 200 is there. So WebRTC is up now.
        call.web_media_up()
    _maybe_answer(call)


def media_connected(call: CallMachine, event: MediaConnected) -> None:
    if call.direction is CallDirection.INBOUND and not call.media_up:
        call.web_media_up()
        _maybe_answer(call)


def _maybe_answer(call: CallMachine) -> None:
    """200 OK once both the SIP answer exists and WebRTC is up."""
    if call.local_sip_sdp is None or not call.media_up:
        return
    assert call.session_id is not None
    call.cancel_timer(TimerName.ANSWER)
    call.mark_connected()
    respond(call, 200, call.local_sip_sdp)
    if call.sip_offer is None:  # the 200 carries our offer; the answer comes in the ACK (midcall.ack)
        call.reinvite_to(Reinvite.AWAITING_ACK, offer=call.local_sip_sdp, hold=False, initial=True)
    call.emit(NotifyConnected(call.session_id, call.call_id))
    call.enter(CallState.CONNECTED)


def _fail_answer(call: CallMachine, reason: Reason, status: int | None, detail: str | None = None) -> None:
    call.emit(CloseBridge(call.call_id))
    call.tell_ended(reason)
    if status is not None:
        respond(call, status, detail=detail)
    call.close()


def answering_hangup(call: CallMachine, event: WebHangup) -> None:
    call.require_session(event.session_id)
    _fail_answer(call, local_reason(EndReason.HANGUP), 480)


def answering_disconnected(call: CallMachine, event: WebDisconnected) -> None:
    call.require_session(event.session_id)
    call.web_left()
    _fail_answer(call, local_reason(EndReason.DISCONNECTED), 480)


def answering_stopping(call: CallMachine, event: GatewayStopping) -> None:
    _fail_answer(call, local_reason(event.reason), 480)


def answering_cancelled(call: CallMachine, event: SipCancelled) -> None:
    _fail_answer(call, local_reason(_cancel_reason(event), 487), None)


def answering_bye(call: CallMachine, event: SipByeReceived) -> None:
    _fail_answer(call, local_reason(EndReason.CALLER_CANCELLED, 487), 487)


def answering_media_failed(call: CallMachine, event: MediaFailed) -> None:
    status = event.sip_status if event.sip_status is not None else 480
    code = EndReason.INCOMPATIBLE_MEDIA if status == 488 else EndReason.MEDIA_FAILED
    reason = local_reason(code, status, f"The audio could not be set up: {event.reason}")
    _fail_answer(call, reason, status, event.reason if status == 488 else None)


def answer_expired(call: CallMachine, event: TimerFired) -> None:
    message = "The audio connection could not be set up in time"
    _fail_answer(call, local_reason(EndReason.MEDIA_FAILED, 480, message), 480)
