"""Pure translations between the parts the driver joins (no I/O, no event loop).

- what the SIP user agent reports about a call -> call events (`sip_to_call_events`);
- what the media bridge reports -> call events (`media_to_call_event`);
- the call layer's browser commands -> signaling events (`SignalMapper`, one per call: the WebRTC
  answer travels in `early_media` or `connected`, whichever comes first, see docs/signaling.md); one dispatch table per command type.

This module owns these mappings; it imports the call layer's commands and events, the media's and
the UA's event types, the signaling's events and sipcore's Reason values, nothing with I/O.
"""

from __future__ import annotations

import logging
from typing import Final, Literal

import sdp
from gateway.calls.boundary import commands as cmd
from gateway.calls.boundary import events as ev
from gateway.calls.states import CallDirection, Side
from gateway.media import events as media
from gateway.media.codecs.dtmf import INFO_PARSERS, parse_info_body
from gateway.media.errors import DtmfError
from gateway.runtime.dispatch import Table
from gateway.signaling import events as sig
from gateway.sip.useragent import ua_events as sip
from sipcore.errors import SIPError
from sipcore.syntax.reason import ReasonValue, answered_elsewhere
from sipcore.syntax.uri import percent_decode

logger = logging.getLogger(__name__)


def sip_to_call_events(event: sip.CallEvent, direction: CallDirection) -> list[ev.Event]:
    """The call events for one event of a UA call (often one, sometimes none).

    Outgoing calls: every 1xx (100 too) -> SipProvisional; an 18x with SDP also -> SipProvisional with
    the SDP (early media); 2xx -> SipAccepted (the UA has ACKed it).
    Both: BYE from them -> SipByeReceived; our BYE answered -> SipLegClosed; INFO dtmf-relay ->
    RemoteDtmf; a MESSAGE (text) -> SipMessageReceived; re-INVITE -> SipReinviteReceived; the ACK of our 2xx to it -> SipAckReceived;
    `Failed` with a final failure status (300-699) -> SipFailed, which the call reads by its direction
    (outgoing: the INVITE failed; incoming: our answer was never ACKed, the leg is lost); else
    SipLegClosed. Incoming calls: the ACK of our 200 -> SipAckReceived; CANCEL -> SipCancelled (the UA
    has answered 487).
    """
    match event:
        case sip.Provisional(status=status):
            return [ev.SipProvisional(status)] if direction is CallDirection.OUTBOUND else []
        case sip.EarlyMedia(sdp=sdp):
            return [ev.SipProvisional(183, sdp or None)]
        case sip.Answered(sdp=sdp):
            return [ev.SipAccepted(sdp or None)]
        case sip.Failed(status=status, reason=reason, contacts=contacts):
            if 300 <= status <= 699:  # what it means depends on the call (an inbound call's: no ACK)
                return [ev.SipFailed(status, reason, contacts)]
            return [ev.SipLegClosed()]
        case sip.Cancelled(reasons=reasons):
            return [_cancelled(reasons)]
        case sip.Bye(by_remote=True):
            return [ev.SipByeReceived()]
        case sip.Bye():
            return [ev.SipLegClosed()]
        case sip.ReinviteReceived(sdp=sdp):
            return [ev.SipReinviteReceived(sdp or None)]
        case sip.InfoReceived(content_type=content_type, body=body):
            return _info(content_type, body)
        case sip.MessageReceived(text=text):
            return [ev.SipMessageReceived(text)]
        case sip.Confirmed(sdp=sdp) | sip.ReinviteAcked(sdp=sdp):
            return [ev.SipAckReceived(sdp or None)]
        case sip.ReferProgress(status=status, reason=reason, terminated=terminated):
            return [ev.SipTransferProgress(status, reason, terminated)]
        case sip.ReferReceived(target=target, replaces=replaces):
            # the runtime adds the web user, and whether the Replaces names a dialog of ours
            return [ev.SipReferReceived(target, None, _unescaped(replaces))]
    return []


def _unescaped(value: str) -> str:
    """A Refer-To's Replaces as a header value (RFC 3891 §5); badly escaped: as it came (refused later)."""
    try:
        return percent_decode(value, "Replaces")
    except SIPError:
        return value


def _cancelled(reasons: tuple[ReasonValue, ...]) -> ev.Event:
    """CANCEL: its Reason's cause, a SIP one first (RFC 3326), and whether answered elsewhere."""
    causes = [r.cause for r in sorted(reasons, key=lambda r: not r.is_sip) if r.cause is not None]
    return ev.SipCancelled(answered_elsewhere(reasons), causes[0] if causes else None)


def _info(content_type: str, body: bytes) -> list[ev.Event]:
    """An INFO in the dialog: DTMF (dtmf-relay and the like) or a body the browser is shown."""
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime not in INFO_PARSERS:  # not DTMF: the UA let it through sip.info_content_types
        return [ev.SipInfoReceived(mime, body.decode("utf-8", "replace"))] if mime else []
    try:
        digit = parse_info_body(content_type, body)
    except DtmfError:
        logger.debug("INFO DTMF body %r not understood: ignored", body[:40])
        return []
    return [ev.RemoteDtmf(digit.digit, max(40, min(digit.duration_ms, 5000)))]


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
        case media.DtmfReceived(leg=media.Leg.WEB, digit=digit, duration_ms=duration):
            return ev.MediaWebDtmf(digit, max(1, min(duration, 10_000)))  # the browser's, in its media
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
        handler = _EVENTS.get(type(command))
        return handler(self, command) if handler is not None else []

    def _web_answer(self, command: cmd.SendWebAnswer) -> list[sig.Event]:
        self._answer = command.sdp
        if self._connected_waiting is not None:
            self._connected_waiting = None
            self._delivered = True
            return [sig.Connected(command.call_id, command.sdp)]
        return []

    def _early_media(self, command: cmd.NotifyEarlyMedia) -> list[sig.Event]:
        sdp_text, self._delivered = self._answer, self._answer is not None
        return [sig.EarlyMedia(command.call_id, sdp_text)]

    def _connected(self, command: cmd.NotifyConnected) -> list[sig.Event]:
        if self._delivered or self.direction is CallDirection.INBOUND:
            return [sig.Connected(command.call_id, None)]
        if self._answer is not None:
            self._delivered = True
            return [sig.Connected(command.call_id, self._answer)]
        self._connected_waiting = command.session_id
        return []


def hold_direction(offer: str) -> Literal["sendonly", "inactive"]:
    """How the SIP party's hold offer holds (RFC 3264 §8.4): inactive when no active stream of it sends
    either, else sendonly (it sends music on hold); sendonly when the SDP cannot be read."""
    try:
        description = sdp.parse(offer)
    except sdp.SdpError:
        return "sendonly"
    active = [i for i, media in enumerate(description.media) if media.port != 0]
    sends = any(description.effective_direction(i).sends for i in active)
    return "sendonly" if sends or not active else "inactive"


def _side(by: Side) -> Literal["local", "remote"]:
    return "local" if by.value == "local" else "remote"


# Browser commands -> signaling events: those that hold the WebRTC answer back or send it (the
# mapper's state), then those that are one signaling event each, whatever came before.
_EVENTS: Final = Table[SignalMapper, list[sig.Event]]()
_EVENTS.add(cmd.SendWebAnswer, SignalMapper._web_answer)
_EVENTS.add(cmd.NotifyEarlyMedia, SignalMapper._early_media)
_EVENTS.add(cmd.NotifyConnected, SignalMapper._connected)
_EVENTS.add(
    cmd.NotifyIncoming, lambda _, c: [sig.Incoming(c.call_id, c.from_uri, c.from_display, None, c.details)]
)
_EVENTS.add(cmd.SendWebOffer, lambda _, c: [sig.Offer(c.call_id, c.sdp)])
_EVENTS.add(cmd.NotifyRinging, lambda _, c: [sig.Ringing(c.call_id)])
_EVENTS.add(cmd.NotifyRedirected, lambda _, c: [sig.Redirected(c.call_id, c.target, c.status)])
_EVENTS.add(cmd.NotifyHeld, lambda _, c: [sig.Held(c.call_id, _side(c.by))])
_EVENTS.add(cmd.NotifyResumed, lambda _, c: [sig.Resumed(c.call_id, _side(c.by))])
_EVENTS.add(cmd.NotifyDtmf, lambda _, c: [sig.DtmfReceived(c.call_id, c.digit, c.duration_ms)])
_EVENTS.add(cmd.NotifyInfo, lambda _, c: [sig.InfoReceived(c.call_id, c.content_type, c.body)])
_EVENTS.add(cmd.NotifyInfoResult, lambda _, c: [sig.InfoResult(c.call_id, c.status)])
_EVENTS.add(cmd.NotifyMessage, lambda _, c: [sig.CallMessage(c.call_id, c.body)])
_EVENTS.add(cmd.NotifyMessageResult, lambda _, c: [sig.MessageResult(c.call_id, c.status)])
_EVENTS.add(cmd.NotifyEnded, lambda _, c: [sig.Ended(c.call_id, c.reason.value, c.message, c.sip_status)])
_EVENTS.add(cmd.StopRinging, lambda _, c: [sig.Ended(c.call_id, c.code.value, c.reason, None)])
_EVENTS.add(
    cmd.NotifyError,
    lambda _, c: [sig.ErrorMessage(c.code, c.message, c.field, None, c.call_id, c.sip_status)],
)
_EVENTS.add(
    cmd.NotifyTransfer, lambda _, c: [sig.Transfer(c.call_id, c.state.value, c.sip_status, c.message)]
)
_EVENTS.add(cmd.NotifyTransferRequested, lambda _, c: [sig.TransferRequested(c.call_id, c.target)])
_EVENTS.add(cmd.NotifyReplaced, lambda _, c: [sig.Replaced(c.call_id, c.from_uri, c.from_display)])
_EVENTS.add(cmd.SendWebReofferAnswer, lambda _, c: [sig.Answer(c.call_id, c.sdp)])
_EVENTS.add(cmd.SendReattached, lambda _, c: [sig.Reattached(c.call_id, c.sdp, c.local_hold, c.remote_hold)])
