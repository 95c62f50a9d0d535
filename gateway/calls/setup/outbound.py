"""Handlers of an outbound call (browser -> PBX) until it is connected or over.

dial -> (policy) -> CreateBridge, MediaOfferToSip -> MediaSipOfferReady -> SipInvite
1xx: the PBX is reachable (SETUP off, RING on); 18x without SDP: ringing; 18x with SDP: early media
(RFC 3261 §13.2.1 lets any 18x carry the answer; browsers get it as their WebRTC answer);
2xx: connected (the UA ACKs); 3xx-6xx: ended, with the reason from gateway/calls/reasons.py.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Final

from gateway.calls.boundary.commands import (
    CloseBridge,
    CreateBridge,
    MediaAnswerFromSip,
    MediaOfferToSip,
    NotifyConnected,
    NotifyEarlyMedia,
    NotifyError,
    NotifyRinging,
    SendWebAnswer,
    SipBye,
    SipCancel,
    SipInvite,
)
from gateway.calls.boundary.events import (
    GatewayStopping,
    MediaConnected,
    MediaFailed,
    MediaInactive,
    MediaSipOfferReady,
    MediaWebAnswerReady,
    SipAccepted,
    SipFailed,
    SipProvisional,
    TimerFired,
    WebDial,
    WebDisconnected,
    WebHangup,
)
from gateway.calls.reasons import EndReason, Reason, local_reason, reason_for_status
from gateway.calls.records import InviteProgress, WebSdp
from gateway.calls.setup.pbx_route import invite_identity, pbx_target
from gateway.calls.setup.redirects import follow_redirect
from gateway.calls.states import CallDirection, CallState, TimerName
from gateway.identity.address import SipAddress, dialed_sip_uri
from gateway.identity.errors import IdentityError
from gateway.identity.model import WebUser
from gateway.identity.policy import may_call

if TYPE_CHECKING:
    from gateway.calls.machine import CallMachine

logger = logging.getLogger(__name__)

_SEPARATORS: Final = re.compile(r"[\s().-]")
_NUMBER: Final = re.compile(r"\+?[0-9*#]+")


class BadDestination(Exception):
    """Internal: why a dialed string is not callable (becomes an `error` to the browser)."""


def dial_target(destination: str, pbx_domain: str | None) -> tuple[str, str]:
    """(Request-URI, what the policy checks) for a dialed number or SIP URI; raises BadDestination.

    Numbers lose visual separators (`030 123-45`), keep a leading `+`, `*` and `#` (escaped as
    %23 in the URI: RFC 3261 §25.1 does not allow `#` in a user part).
    """
    text = destination.strip()
    if not text:
        raise BadDestination("nothing was dialed")
    uri = dialed_sip_uri(text)
    if uri is not None:
        try:
            address = SipAddress.parse_dialed(uri)
        except IdentityError as exc:
            raise BadDestination(f"not a SIP address: {exc}") from None
        if address.user is None:
            raise BadDestination(f"SIP address {text!r} names no user")
        return uri, uri
    number = _SEPARATORS.sub("", text)
    if not _NUMBER.fullmatch(number):
        raise BadDestination(f"{text!r} is neither a number nor a SIP address")
    if pbx_domain is None:
        raise BadDestination("no PBX is configured to dial numbers; dial a SIP address")
    return f"sip:{number.replace('#', '%23')}@{pbx_domain}", number


def allowed_target(user: WebUser, destination: str, pbx_domain: str | None) -> str | tuple[EndReason, str]:
    """The Request-URI for ``destination`` when ``user`` may reach it (a call, a transfer, a MESSAGE);
    else why not (BAD_DESTINATION or DESTINATION_NOT_ALLOWED, and a message for the user)."""
    try:
        target, checked = dial_target(destination, pbx_domain)
    except BadDestination as exc:
        return EndReason.BAD_DESTINATION, str(exc)
    if not may_call(user, checked, pbx_domain):
        return EndReason.DESTINATION_NOT_ALLOWED, f"You may not call {destination.strip()}"
    return target


def dial(call: CallMachine, event: WebDial) -> None:
    # direct: a web user of this gateway, to its own SIP listener
    call.start_outbound(
        event.session_id, event.user, event.headers, direct=event.route is not None, grace=event.grace
    )
    if event.route is not None:
        call.dial_to(event.route)
    else:
        choice = pbx_target(call.settings, event.user, event.destination)  # setup/pbx_route.py
        if isinstance(choice, tuple):
            _refuse(call, *choice)
            return
        several = call.settings.pbx_plan.several
        call.dial_to(choice.target, choice.pbx if several else None, choice.caller_id)
    call.emit(CreateBridge(call.call_id, CallDirection.OUTBOUND), MediaOfferToSip(call.call_id, event.sdp))
    call.start_timer(TimerName.SETUP, call.settings.setup_timeout)
    call.enter(CallState.INVITING)


def _refuse(call: CallMachine, code: EndReason, message: str) -> None:
    """Policy says no: an `error` for the dial request, `ended` for the call; no SIP at all."""
    assert call.session_id is not None
    call.emit(NotifyError(call.session_id, call.call_id, code.value, message, "destination"))
    call.tell_ended(local_reason(code, message=message))
    call.close()


def sip_offer_ready(call: CallMachine, event: MediaSipOfferReady) -> None:
    if call.invite_sent:
        raise call.illegal(event, "the INVITE is already out")
    assert call.user is not None and call.target is not None
    user = call.user
    call.invite_to(InviteProgress.SENT)
    call.gave_sip(event.sdp)
    identity, asserted = invite_identity(call, user)  # setup/pbx_route.py
    headers = (*asserted, *call.sip_headers)
    call.emit(
        SipInvite(call.call_id, call.target, identity, event.sdp, headers, direct=call.direct, pbx=call.pbx)
    )


def _require_invite(call: CallMachine, event: object) -> None:
    if not call.invite_sent:
        raise call.illegal(event, "no INVITE was sent yet")


def provisional(call: CallMachine, event: SipProvisional) -> None:
    _require_invite(call, event)
    assert call.session_id is not None
    if not call.provisional_seen:  # the PBX is there: from now on it is the callee we wait for
        call.invite_to(InviteProgress.PROVISIONAL)
        call.cancel_timer(TimerName.SETUP)
        call.start_timer(TimerName.RING, call.settings.outbound_ring_timeout)
    if event.status == 100 or call.state is not CallState.INVITING:
        return  # RFC 3264: one answer per offer; later 18x in the early dialog change nothing
    if event.sdp is not None:
        call.early_answer_from_sip(event.sdp)
        call.emit(MediaAnswerFromSip(call.call_id, event.sdp))
        call.enter(CallState.EARLY)
    elif event.status == 180 and not call.rang:  # only a 180 rings: a 181-183 without SDP is no ringing
        call.mark_rang()
        call.emit(NotifyRinging(call.session_id, call.call_id))


def accepted(call: CallMachine, event: SipAccepted) -> None:
    _require_invite(call, event)
    assert call.session_id is not None
    call.cancel_timer(TimerName.SETUP)
    call.cancel_timer(TimerName.RING)
    if event.sdp is None and call.early_sip_sdp is None:
        # A 2xx must answer the INVITE's offer (RFC 3264 §4): take the call down.
        call.emit(SipBye(call.call_id), CloseBridge(call.call_id))
        call.tell_ended(local_reason(EndReason.INCOMPATIBLE_MEDIA, 488, "The PBX answered without audio"))
        call.begin_closing()
        return
    call.mark_connected()
    if event.sdp is not None:
        call.emit(MediaAnswerFromSip(call.call_id, event.sdp))
    call.emit(NotifyConnected(call.session_id, call.call_id))
    # held during early media (an UPDATE either way, early_update.py): answered while held
    call.settle()


def failed(call: CallMachine, event: SipFailed) -> None:
    _require_invite(call, event)
    reason = reason_for_status(event.status, event.phrase)
    if 300 <= event.status < 400:
        refusal = follow_redirect(call, event)  # RFC 3261 §8.1.3.4, as calls.follow_redirects allows
        if refusal is None:
            return
        reason = refusal
    call.emit(CloseBridge(call.call_id))
    call.tell_ended(reason)
    call.close()


def web_answer_ready(call: CallMachine, event: MediaWebAnswerReady) -> None:
    """The browser's answer: first time only (later ones follow re-INVITE answers and change nothing)."""
    if call.direction is not CallDirection.OUTBOUND or call.web_answer_sent:
        return
    assert call.session_id is not None
    call.web_sdp_to(WebSdp.ANSWER_SENT)
    call.emit(SendWebAnswer(call.session_id, call.call_id, event.sdp))
    if call.state is CallState.EARLY:
        call.emit(NotifyEarlyMedia(call.session_id, call.call_id))


def web_media_before_answer(call: CallMachine, event: MediaConnected | MediaInactive) -> None:
    """The web leg comes up (or idles) while our INVITE is out: a browser answered early (the HTTP
    offer API's early answer) connects before the SIP side does. Nothing to do until the SIP answer
    (accepted connects the call; early media is silent when it likes)."""
    logger.debug("call=%s %s before the SIP answer", call.call_id, type(event).__name__)


def abandon(call: CallMachine, reason: Reason) -> None:
    """End an outbound call before its answer: CANCEL if the INVITE is out."""
    call.emit(CloseBridge(call.call_id))
    call.tell_ended(reason)
    if call.invite_sent:
        call.emit(SipCancel(call.call_id))
        call.begin_closing()
    else:
        call.close()


def hangup(call: CallMachine, event: WebHangup) -> None:
    call.require_session(event.session_id)
    abandon(call, local_reason(EndReason.CANCELLED, message="You cancelled the call"))


def disconnected(call: CallMachine, event: WebDisconnected) -> None:
    call.require_session(event.session_id)
    call.web_left()
    abandon(call, local_reason(EndReason.DISCONNECTED))


def stopping(call: CallMachine, event: GatewayStopping) -> None:
    """The gateway stops before the answer: CANCEL (if the INVITE is out), `ended` (shutdown)."""
    abandon(call, local_reason(event.reason))


def media_failed(call: CallMachine, event: MediaFailed) -> None:
    code = EndReason.INCOMPATIBLE_MEDIA if event.sip_status == 488 else EndReason.MEDIA_FAILED
    abandon(call, local_reason(code, event.sip_status, f"The audio could not be set up: {event.reason}"))


def setup_expired(call: CallMachine, event: TimerFired) -> None:
    if call.invite_sent:
        abandon(call, local_reason(EndReason.PBX_UNREACHABLE, 408))
    else:
        abandon(call, local_reason(EndReason.MEDIA_FAILED, message="The audio could not be set up in time"))


def no_answer(call: CallMachine, event: TimerFired) -> None:
    abandon(call, local_reason(EndReason.NO_ANSWER))
