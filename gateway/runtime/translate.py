"""Pure translations between the parts the driver joins (no I/O, no event loop).

- what the SIP user agent reports about a call -> call events (`sip_to_call_events`);
- what the media bridge reports -> call events (`media_to_call_event`);
- the call layer's browser commands -> signaling events (`SignalMapper`, one per call: the WebRTC
  answer travels in `early_media` or `connected`, whichever comes first, see docs/signaling.md).
"""

from __future__ import annotations

import logging

from gateway.calls.boundary import commands as cmd
from gateway.calls.boundary import events as ev
from gateway.calls.states import CallDirection
from gateway.media import events as media
from gateway.media.codecs.dtmf import INFO_PARSERS, parse_info_body
from gateway.media.errors import DtmfError
from gateway.signaling import events as sig
from gateway.sip.useragent import ua_events as sip
from sipcore.syntax.reason import answered_elsewhere

logger = logging.getLogger(__name__)


def sip_to_call_events(event: sip.CallEvent, direction: CallDirection) -> list[ev.Event]:
    """The call events for one event of a UA call (often one, sometimes none).

    Outgoing calls: every 1xx (100 too) -> SipProvisional; an 18x with SDP also -> SipProvisional with
    the SDP (early media); 2xx -> SipAccepted (the UA has ACKed it); a final failure -> SipFailed.
    Both: BYE from them -> SipByeReceived; our BYE answered -> SipLegClosed; INFO dtmf-relay ->
    RemoteDtmf; a MESSAGE (text) -> SipMessageReceived; re-INVITE -> SipReinviteReceived; the ACK of our 2xx to it -> SipAckReceived. Incoming calls:
    the ACK of our 200 -> SipAckReceived; CANCEL -> SipCancelled (the UA has
    answered 487); `Failed` after our answer (no ACK) -> SipLegClosed.
    """
    match event:
        case sip.Provisional(status=status):
            return [ev.SipProvisional(status)] if direction is CallDirection.OUTBOUND else []
        case sip.EarlyMedia(sdp=sdp):
            return [ev.SipProvisional(183, sdp or None)]
        case sip.Answered(sdp=sdp):
            return [ev.SipAccepted(sdp or None)]
        case sip.Failed(status=status, reason=reason, contacts=contacts):
            if direction is CallDirection.OUTBOUND and 300 <= status <= 699:
                return [ev.SipFailed(status, reason, contacts)]
            return [ev.SipLegClosed()]
        case sip.Cancelled(reasons=reasons):
            causes = [r.cause for r in sorted(reasons, key=lambda r: not r.is_sip) if r.cause is not None]
            return [ev.SipCancelled(answered_elsewhere(reasons), causes[0] if causes else None)]
        case sip.Bye(by_remote=True):
            return [ev.SipByeReceived()]
        case sip.Bye():
            return [ev.SipLegClosed()]
        case sip.ReinviteReceived(sdp=sdp):
            return [ev.SipReinviteReceived(sdp or None)]
        case sip.InfoReceived(content_type=content_type, body=body):
            mime = content_type.split(";", 1)[0].strip().lower()
            if mime not in INFO_PARSERS:  # not DTMF: the UA let it through sip.info_content_types
                return [ev.SipInfoReceived(mime, body.decode("utf-8", "replace"))] if mime else []
            try:
                digit = parse_info_body(content_type, body)
            except DtmfError:
                logger.debug("INFO DTMF body %r not understood: ignored", body[:40])
                return []
            return [ev.RemoteDtmf(digit.digit, max(40, min(digit.duration_ms, 5000)))]
        case sip.MessageReceived(text=text):
            return [ev.SipMessageReceived(text)]
        case sip.Confirmed(sdp=sdp) | sip.ReinviteAcked(sdp=sdp):
            return [ev.SipAckReceived(sdp or None)]
        case sip.ReferProgress(status=status, reason=reason, terminated=terminated):
            return [ev.SipTransferProgress(status, reason, terminated)]
        case sip.ReferReceived(target=target, replaces=replaces):
            return [ev.SipReferReceived(target, None, bool(replaces))]  # the runtime adds the web user
    return []


def media_to_call_event(event: media.MediaEvent) -> ev.Event | None:
    """The call event for one bridge event; None for what only the driver cares about."""
    match event:
        case media.MediaConnected():
            return ev.MediaConnected()
        case media.IceFailed(reason=reason):
            return ev.MediaFailed(f"ICE failed: {reason}" if reason else "ICE failed")
        case media.DtlsFailed(reason=reason):
            return ev.MediaFailed(f"DTLS failed: {reason}" if reason else "DTLS failed")
        case media.DtmfReceived(leg=media.Leg.SIP, digit=digit, duration_ms=duration):
            return ev.RemoteDtmf(digit, max(40, min(duration, 5000)))
        case media.MediaInactive(seconds=seconds, held=held):
            return ev.MediaInactive(max(0.0, seconds), held)
        case media.TextReceived(text=text):
            return ev.WebMessage(text)  # the call's data channel: no session named
    return None


class SignalMapper:
    """Browser commands of one call -> signaling events, holding the WebRTC answer until it can go.

    The machine emits `NotifyConnected` before `SendWebAnswer` when a 2xx carries the answer; the
    browser must get `connected` with the answer, so `connected` waits for it (outbound calls only:
    inbound calls never send an answer to the browser).
    """

    def __init__(self, direction: CallDirection) -> None:
        self.direction = direction
        self._answer: str | None = None
        self._delivered = False
        self._connected_waiting: str | None = None  # the session waiting for `connected`

    def events(self, command: cmd.SignalCommand) -> list[sig.Event]:
        call_id = command.call_id
        match command:
            case cmd.NotifyIncoming(from_uri=from_uri, from_display=display, details=details):
                return [sig.Incoming(call_id, from_uri, display, None, details)]
            case cmd.SendWebOffer(sdp=sdp):
                return [sig.Offer(call_id, sdp)]
            case cmd.NotifyRinging():
                return [sig.Ringing(call_id)]
            case cmd.NotifyRedirected(target=target, status=status):
                return [sig.Redirected(call_id, target, status)]
            case cmd.SendWebAnswer(sdp=sdp):
                self._answer = sdp
                if self._connected_waiting is not None:
                    self._connected_waiting = None
                    self._delivered = True
                    return [sig.Connected(call_id, sdp)]
                return []
            case cmd.NotifyEarlyMedia():
                sdp_text, self._delivered = self._answer, self._answer is not None
                return [sig.EarlyMedia(call_id, sdp_text)]
            case cmd.NotifyConnected(session_id=session_id):
                if self._delivered or self.direction is CallDirection.INBOUND:
                    return [sig.Connected(call_id, None)]
                if self._answer is not None:
                    self._delivered = True
                    return [sig.Connected(call_id, self._answer)]
                self._connected_waiting = session_id
                return []
            case cmd.NotifyHeld(by=by):
                return [sig.Held(call_id, "local" if by.value == "local" else "remote")]
            case cmd.NotifyResumed(by=by):
                return [sig.Resumed(call_id, "local" if by.value == "local" else "remote")]
            case cmd.NotifyDtmf(digit=digit, duration_ms=duration):
                return [sig.DtmfReceived(call_id, digit, duration)]
            case cmd.NotifyInfo(content_type=content_type, body=body):
                return [sig.InfoReceived(call_id, content_type, body)]
            case cmd.NotifyInfoResult(status=status):
                return [sig.InfoResult(call_id, status)]
            case cmd.NotifyMessage(body=body):
                return [sig.CallMessage(call_id, body)]
            case cmd.NotifyMessageResult(status=status):
                return [sig.MessageResult(call_id, status)]
            case cmd.NotifyEnded(reason=reason, message=message, sip_status=status):
                return [sig.Ended(call_id, reason.value, message, status)]
            case cmd.StopRinging(reason=message, code=code):
                return [sig.Ended(call_id, code.value, message, None)]
            case cmd.NotifyError(code=code, message=message, field=field, sip_status=status):
                return [sig.ErrorMessage(code, message, field, None, call_id, status)]
            case cmd.NotifyTransfer(state=state, sip_status=status, message=message):
                return [sig.Transfer(call_id, state.value, status, message)]
            case cmd.NotifyTransferRequested(target=target):
                return [sig.TransferRequested(call_id, target)]
            case cmd.NotifyReplaced(from_uri=from_uri, from_display=display):
                return [sig.Replaced(call_id, from_uri, display)]
            case cmd.SendWebReofferAnswer(sdp=sdp):
                return [sig.Answer(call_id, sdp)]
            case cmd.SendReattached(sdp=sdp, local_hold=local, remote_hold=remote):
                return [sig.Reattached(call_id, sdp, local, remote)]
        return []
