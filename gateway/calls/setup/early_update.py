"""An offer in UPDATE in the early dialog of the web user's outbound call (RFC 3311 §5.1).

Once an 18x answered our INVITE's offer (early media), the PBX may re-negotiate the early session with
an UPDATE carrying a new offer: move the media to another address, hold it (a=sendonly), change the
codec. The UA has already applied §5.2 (491 while an offer of ours is unanswered, 500 with Retry-After
while one of theirs is) and delivers the rest as `SipReinviteReceived`; in state early (outbound) the
call answers it as it answers a re-INVITE in a connected call:

    SipReinviteReceived(sdp) -> MediaSipUpdate          (reinvite = ANSWERING)
    MediaSipAnswerReady(sdp) -> SipRespondReinvite 200  (the answer in the UPDATE's 200; no ACK)

An offer the bridge cannot take is refused with its status (488...) and the early media goes on as it
was.

The web user's hold and resume during early media go the other way, as an UPDATE of ours (RFC 3311
§5.1: the 18x answered our INVITE's offer reliably; the UA sends UPDATE in an early dialog only then,
to a far end that allows it, else the request fails and the browser hears `error` hold_failed):

    WebHold -> MediaSipReoffer(hold) -> MediaSipOfferReady -> SipReinvite (the UA: UPDATE)
    SipReinviteResult 200 -> MediaAnswerFromSip, NotifyHeld (local); the 2xx's SDP is then not applied

and the call reaches HOLDING instead of CONNECTED if the far end answers while the web user holds. Once an UPDATE changed the session, the SDP in the INVITE's 2xx is the old answer repeated and is
not applied again (RFC 3261 §13.2.1: the first answer counts; RFC 3311 §5.1 moved the session on). The
2xx arriving while the UPDATE is still answered leaves it to the connected call (`midcall`), which
answers it the same way. Leaving (hangup, the browser gone) while it is answered refuses it 487 first.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import sdp
from gateway.calls.boundary.commands import MediaSipUpdate, SipRespondReinvite
from gateway.calls.boundary.events import (
    GatewayStopping,
    MediaFailed,
    MediaSipAnswerReady,
    SipAccepted,
    SipReinviteReceived,
    WebHold,
    WebResume,
)
from gateway.calls.connected import midcall
from gateway.calls.reasons import phrase
from gateway.calls.setup import pickup
from gateway.calls.states import Reinvite, Side

if TYPE_CHECKING:
    from gateway.calls.machine import CallMachine

logger = logging.getLogger(__name__)

Handler = Callable[["CallMachine", Any], None]


def received(call: CallMachine, event: SipReinviteReceived) -> None:
    """Early (outbound): the PBX's UPDATE offer goes to the bridge."""
    if event.sdp is None:  # the UA answers an UPDATE without an offer itself (a refresh)
        raise call.illegal(event, "an early re-negotiation needs an offer")
    if call.replacing:  # being picked up: the old leg is about to be CANCELled
        logger.info("call=%s UPDATE offer on the picked-up leg: not answered", call.call_id)
        return
    if call.reinvite is Reinvite.ANSWERING:  # RFC 3311 §5.2 (the UA checks it first)
        _respond(call, 500, retry_after=1 + int(9 * call.jitter()))
        return
    if call.reinvite in (Reinvite.PREPARING, Reinvite.SENT):  # ours is out: glare (§5.2, the UA too)
        _respond(call, 491)
        return
    logger.info("call=%s early media re-negotiated by UPDATE (RFC 3311 §5.1)", call.call_id)
    try:
        held = midcall.remote_holds(event.sdp)
    except sdp.SdpError:  # the bridge refuses it (488): nothing changes
        held = call.remote_hold
    call.reinvite_to(Reinvite.ANSWERING, remote_hold=held)
    call.emit(MediaSipUpdate(call.call_id, event.sdp))


def answered(call: CallMachine, event: MediaSipAnswerReady) -> None:
    """Early (outbound): the bridge's answer goes in the UPDATE's 200."""
    if call.reinvite is not Reinvite.ANSWERING:
        raise call.illegal(event, "no UPDATE of the SIP party is being answered")
    call.reinvite_to(None)
    call.renegotiated_early()
    call.gave_sip(event.sdp)
    _respond(call, 200, event.sdp)
    if call.hold_to(Side.REMOTE, call.remote_hold_pending):  # the PBX holds (or resumes) its early media
        midcall.tell_hold(call, Side.REMOTE, call.remote_hold)
    midcall.advance(call)  # a hold the web user asked for meanwhile


def media_failed(call: CallMachine, event: MediaFailed) -> None:
    """Early (outbound): an unusable UPDATE offer is refused, the early media goes on; other failures
    end the call (after answering the UPDATE 500)."""
    if call.reinvite is Reinvite.ANSWERING:
        call.reinvite_to(None)
        if event.sip_status is not None:
            _respond(call, event.sip_status)
            return
        _respond(call, 500)
    pickup.media_failed(call, event)


def accepted(handler: Handler) -> Handler:
    """``handler`` for the INVITE's 2xx; after an early UPDATE its SDP is not applied again."""

    def guarded(call: CallMachine, event: SipAccepted) -> None:
        if call.early_renegotiated and event.sdp is not None:
            logger.info("call=%s the 2xx's SDP is the early answer: the UPDATE's session stays", call.call_id)
            event = dataclasses.replace(event, sdp=None)
        handler(call, event)

    return guarded


def stopping(call: CallMachine, event: GatewayStopping) -> None:
    """The gateway stops during early media (outbound): an UPDATE being answered gets 487 first."""
    if call.reinvite is Reinvite.ANSWERING:
        call.reinvite_to(None)
        _respond(call, 487)
    pickup.stopping(call, event)


def leaving(handler: Handler) -> Handler:
    """``handler`` for the browser leaving; an UPDATE being answered gets 487 first."""

    def guarded(call: CallMachine, event: Any) -> None:
        call.require_session(event.session_id)
        if call.reinvite is Reinvite.ANSWERING:
            call.reinvite_to(None)
            _respond(call, 487)
        handler(call, event)

    return guarded


def _respond(call: CallMachine, status: int, sdp: str | None = None, retry_after: int | None = None) -> None:
    call.emit(SipRespondReinvite(call.call_id, status, phrase(status), sdp, retry_after))


def web_hold(call: CallMachine, event: WebHold) -> None:
    """Early (outbound): hold the early media, by UPDATE (midcall's re-offer machinery, no state change)."""
    _early_session(call, event)
    midcall.web_hold(call, event)


def web_resume(call: CallMachine, event: WebResume) -> None:
    _early_session(call, event)
    midcall.web_resume(call, event)


def _early_session(call: CallMachine, event: WebHold | WebResume) -> None:
    if call.early_sip_sdp is None:
        raise call.illegal(event, "no early media to hold before the call is answered")
    if call.replacing:
        raise call.illegal(event, "the call is being picked up")
