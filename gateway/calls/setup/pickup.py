"""Call pickup (RFC 3891 §3): an INVITE with Replaces naming the web user's outbound call while it rings.

A phone that picks the ringing call up (a group or directed pickup at the PBX) sends an INVITE with
Replaces naming the early dialog of the web user's INVITE; the UA matched it (Call-ID, our tag, their
tag), checked the source and found that we are that dialog's UAC (§3: only the UA that *initiated* an
early dialog may have it replaced). The call core, in inviting (ringing, 180 without SDP) or early (early
media), takes it as the call's answer from a new party:

    SipReplacingInvite(sdp)   -> SipTakeOver, MediaSipPickup         (replacing; RING/SETUP timers off)
    MediaPickupReady(sip, web) -> SipRespondReinvite 200 (sip answer on the new INVITE; the runtime then
                                  CANCELs our INVITE), SendWebAnswer (unless early media already
                                  answered the browser), NotifyConnected, NotifyReplaced -> connected

An offerless INVITE with Replaces (RFC 3261 §13.2.1 allows it) gets our offer in its 200 (the SIP offer
of our INVITE again) and brings the answer in its ACK, applied as any ACK's answer (midcall.ack_received:
no answer in it ends the call). Refusals keep the ringing call as it was: 491 while another INVITE with
Replaces is being taken, the status of an offer the bridge cannot take (`MediaFailed`, 488...). While the pickup is being answered the old leg's
1xx/2xx/failure change nothing (the old dialog is about to be CANCELled, or BYEd by the runtime when its
2xx crossed), and a hangup from the browser refuses the new INVITE 487 before the call is abandoned.

An inbound call that rings at the web user is an early dialog we are the UAS of: §3 says to answer 481
and leave that dialog unchanged, which the UA does before the call core sees it (`replacing_elsewhere`
answers 481 for the inbound early state too).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gateway.calls.boundary.commands import (
    MediaSipPickup,
    NotifyConnected,
    NotifyReplaced,
    SendWebAnswer,
    SipRefuseReplacing,
    SipRespondReinvite,
    SipTakeOver,
)
from gateway.calls.boundary.events import GatewayStopping, MediaFailed, MediaPickupReady, SipReplacingInvite
from gateway.calls.connected import replaces
from gateway.calls.reasons import phrase
from gateway.calls.records import WebSdp
from gateway.calls.setup import outbound
from gateway.calls.states import CallDirection, CallState, Reinvite, TimerName

if TYPE_CHECKING:
    from gateway.calls.machine import CallMachine

logger = logging.getLogger(__name__)

Handler = Callable[["CallMachine", Any], None]


def replacing_invite(call: CallMachine, event: SipReplacingInvite) -> None:
    """States inviting and early: an outbound call's early dialog is picked up; anything else 481."""
    if call.direction is not CallDirection.OUTBOUND or not call.invite_sent:
        replaces.replacing_elsewhere(call, event)  # §3: an early dialog we are the UAS of: 481
        return
    if call.replacing or call.reinvite is not None:  # a pickup, or an early UPDATE, is being answered
        call.emit(SipRefuseReplacing(call.call_id, 491, phrase(491)))
        return
    logger.info("call=%s picked up by %s%s", call.call_id, event.from_uri, "" if event.sdp else " (no offer)")
    call.picked_up(event.from_uri, event.from_display, offerless=event.sdp is None)
    call.cancel_timer(TimerName.SETUP)
    call.cancel_timer(TimerName.RING)
    call.emit(SipTakeOver(call.call_id), MediaSipPickup(call.call_id, event.sdp))


def ready(call: CallMachine, event: MediaPickupReady) -> None:
    """The bridge answered the pickup's offer: answer the new INVITE, tell the browser, connected."""
    if not call.replacing or call.picked_up_by is None:
        raise call.illegal(event, "no pickup is being answered")
    assert call.session_id is not None
    offerless = call.pickup_offerless
    call.pickup_answered()
    call.gave_sip(event.sip_sdp)
    call.mark_connected()
    if offerless:  # our offer is in the 200: the ACK brings the answer (midcall.ack_received)
        call.reinvite_to(Reinvite.AWAITING_ACK, offer=event.sip_sdp, initial=True)
    call.emit(SipRespondReinvite(call.call_id, 200, phrase(200), event.sip_sdp))
    if not call.web_answer_sent:
        call.web_sdp_to(WebSdp.ANSWER_SENT)
        call.emit(SendWebAnswer(call.session_id, call.call_id, event.web_sdp))
    if not call.web_gone:
        from_uri, display = call.picked_up_by
        call.emit(
            NotifyConnected(call.session_id, call.call_id),
            NotifyReplaced(call.session_id, call.call_id, from_uri, display),
        )
    call.enter(CallState.CONNECTED)


def media_failed(call: CallMachine, event: MediaFailed) -> None:
    """The pickup's offer is unusable (488...): refuse the new INVITE, the call rings on; any other
    failure ends the call as outbound media failures do."""
    if call.replacing and event.sip_status is not None:
        _refuse(call, event.sip_status)
        return
    if call.replacing:
        call.emit(SipRefuseReplacing(call.call_id, 500, phrase(500)))
        call.replacing_to(False)
    outbound.media_failed(call, event)


def _refuse(call: CallMachine, status: int) -> None:
    call.pickup_refused()
    call.emit(SipRefuseReplacing(call.call_id, status, phrase(status)))
    call.start_timer(TimerName.RING, call.settings.outbound_ring_timeout)  # ringing again


def old_leg_ignored(handler: Handler) -> Handler:
    """``handler`` for the old leg's responses, except while a pickup is answered (then nothing)."""

    def guarded(call: CallMachine, event: Any) -> None:
        if call.replacing:
            logger.info("call=%s %s of the picked-up leg: ignored", call.call_id, type(event).__name__)
            return
        handler(call, event)

    return guarded


def stopping(call: CallMachine, event: GatewayStopping) -> None:
    """The gateway stops before the answer: a pickup being answered is refused 487 first."""
    if call.replacing:
        call.replacing_to(False)
        call.emit(SipRefuseReplacing(call.call_id, 487, phrase(487)))
    outbound.stopping(call, event)


def refusing_first(handler: Handler) -> Handler:
    """``handler`` for the browser leaving; a pickup being answered is refused 487 first."""

    def guarded(call: CallMachine, event: Any) -> None:
        call.require_session(event.session_id)
        if call.replacing:
            call.replacing_to(False)
            call.emit(SipRefuseReplacing(call.call_id, 487, phrase(487)))
        handler(call, event)

    return guarded
