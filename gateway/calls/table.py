"""The transition table of a call: (state, event type) -> handler. Pairs not listed are illegal.

Where one state serves both directions (early), `_by_direction` picks the outbound or inbound
handler; a direction without one refuses the event. TimerFired goes through `_timer`, a second
table keyed by (state, timer name); a timer the call does not consider running is ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from gateway.calls.boundary.events import (
    Event,
    GatewayStopping,
    MediaConnected,
    MediaDtmfUnsent,
    MediaFailed,
    MediaInactive,
    MediaPickupReady,
    MediaSipAnswerReady,
    MediaSipOfferReady,
    MediaWebAnswerReady,
    MediaWebDtmf,
    MediaWebLost,
    MediaWebOfferReady,
    MediaWebRenewed,
    MediaWebReofferAnswered,
    MediaWebReofferReady,
    MediaWebReofferRefused,
    RemoteDtmf,
    ReplacedByTransfer,
    SipAccepted,
    SipAckReceived,
    SipByeReceived,
    SipCancelled,
    SipFailed,
    SipIncomingInvite,
    SipInfoReceived,
    SipInfoResult,
    SipLegClosed,
    SipMessageReceived,
    SipMessageResult,
    SipProvisional,
    SipReferReceived,
    SipReferResult,
    SipReinviteReceived,
    SipReinviteResult,
    SipReplacingInvite,
    SipTransferProgress,
    TakenOver,
    TimerFired,
    TransferOutcome,
    WebAccept,
    WebDetached,
    WebDial,
    WebDisconnected,
    WebDtmf,
    WebHangup,
    WebHold,
    WebInfo,
    WebMessage,
    WebOfferWanted,
    WebReattach,
    WebReject,
    WebReoffer,
    WebResume,
    WebSdpAnswer,
    WebTransfer,
)
from gateway.calls.connected import chat, escalation, info, midcall, reconnect, replaces, transfer
from gateway.calls.setup import early_update, inbound, outbound, pickup
from gateway.calls.states import CallDirection, CallState, TimerName

if TYPE_CHECKING:
    from gateway.calls.machine import CallMachine

Handler = Callable[["CallMachine", Any], None]

S = CallState
_ignore = midcall.ignore


def _by_direction(out: Handler | None, into: Handler | None) -> Handler:
    def handler(call: CallMachine, event: Any) -> None:
        chosen = out if call.direction is CallDirection.OUTBOUND else into
        if chosen is None:
            raise call.illegal(event, f"not on an {call.direction} call")
        chosen(call, event)

    return handler


TIMERS: Final[Mapping[tuple[CallState, TimerName], Handler]] = MappingProxyType(
    {
        (S.INVITING, TimerName.SETUP): outbound.setup_expired,
        (S.INVITING, TimerName.RING): outbound.no_answer,
        (S.EARLY, TimerName.RING): outbound.no_answer,
        (S.INVITED, TimerName.RING): inbound.ring_expired,
        (S.EARLY, TimerName.ANSWER): inbound.answer_expired,
        (S.EARLY, TimerName.REINVITE_RETRY): midcall.retry_reinvite,
        (S.CONNECTED, TimerName.REINVITE_RETRY): midcall.retry_reinvite,
        (S.HOLDING, TimerName.REINVITE_RETRY): midcall.retry_reinvite,
        (S.CONNECTED, TimerName.WEB_REOFFER): escalation.web_reoffer_expired,
        (S.HOLDING, TimerName.WEB_REOFFER): escalation.web_reoffer_expired,
        (S.CONNECTED, TimerName.REFER_WAIT): transfer.refer_expired,
        (S.HOLDING, TimerName.REFER_WAIT): transfer.refer_expired,
        (S.CLOSING, TimerName.CLOSING): midcall.closing_expired,
        (S.CONNECTED, TimerName.RECONNECT): reconnect.grace_expired,
        (S.HOLDING, TimerName.RECONNECT): reconnect.grace_expired,
        (S.CONNECTED, TimerName.REPLACED): transfer.replaced_expired,
        (S.HOLDING, TimerName.REPLACED): transfer.replaced_expired,
    }
)


def _timer(call: CallMachine, event: TimerFired) -> None:
    if event.timer not in call.timers:
        return  # cancelled (or never started): the cancel raced the firing
    handler = TIMERS.get((call.state, event.timer))
    if handler is None:
        raise call.illegal(event, f"timer {event.timer.value} has no meaning here")
    call.timer_fired(event.timer)
    handler(call, event)


_CONNECTED: Final[Mapping[type[Event], Handler]] = {
    WebHangup: midcall.hangup,
    WebDisconnected: reconnect.disconnected,
    WebDetached: reconnect.detached,
    TakenOver: reconnect.taken_over,
    WebReattach: reconnect.reattach,
    MediaWebLost: reconnect.web_lost,
    MediaWebRenewed: reconnect.renewed,
    WebHold: midcall.web_hold,
    WebResume: midcall.web_resume,
    WebDtmf: midcall.web_dtmf,
    SipByeReceived: midcall.remote_bye,
    SipLegClosed: midcall.leg_lost,
    SipFailed: _by_direction(None, midcall.leg_lost),  # inbound: our 2xx never ACKed (RFC 3261 §13.3.1.4)
    SipCancelled: _ignore,  # crossed our 200 OK; the UA answered it (RFC 3261 §9.2)
    SipReinviteReceived: midcall.remote_reinvite,
    SipReinviteResult: escalation.reinvite_result,  # midcall's, or the browser's own offer's
    SipAckReceived: midcall.ack_received,
    RemoteDtmf: midcall.remote_dtmf,
    MediaWebDtmf: midcall.web_media_dtmf,
    MediaDtmfUnsent: midcall.dtmf_unsent,
    WebInfo: info.web_info,
    SipInfoReceived: info.sip_info,
    SipInfoResult: info.info_result,
    WebMessage: chat.web_message,
    SipMessageReceived: chat.sip_message,
    SipMessageResult: chat.message_result,
    MediaSipOfferReady: midcall.reoffer_ready,
    MediaSipAnswerReady: replaces.answer_ready,
    MediaWebReofferReady: escalation.web_reoffer_ready,  # the SIP party's re-offer adds or drops video
    WebSdpAnswer: escalation.web_reanswer,
    WebReoffer: escalation.web_reoffer,  # the browser's own new offer: video added or dropped
    MediaWebReofferRefused: escalation.web_reoffer_refused,
    MediaWebReofferAnswered: escalation.web_reoffer_answered,
    MediaWebAnswerReady: outbound.web_answer_ready,
    MediaConnected: _ignore,
    MediaFailed: replaces.media_failed,
    MediaInactive: midcall.media_inactive,
    GatewayStopping: midcall.stopping,
    TimerFired: _timer,
    WebTransfer: transfer.web_transfer,
    SipReferResult: transfer.refer_result,
    SipTransferProgress: transfer.transfer_progress,
    SipReferReceived: transfer.refer_received,
    TransferOutcome: transfer.transfer_outcome,
    ReplacedByTransfer: transfer.replaced,
    SipReplacingInvite: replaces.replacing_invite,
}

_BY_STATE: Final[Mapping[CallState, Mapping[type[Event], Handler]]] = {
    S.IDLE: {
        WebDial: outbound.dial,
        SipIncomingInvite: inbound.incoming,
    },
    S.INVITING: {
        SipReplacingInvite: pickup.replacing_invite,  # call pickup (RFC 3891 §3)
        MediaPickupReady: pickup.ready,
        MediaSipOfferReady: outbound.sip_offer_ready,
        SipProvisional: pickup.old_leg_ignored(outbound.provisional),
        SipAccepted: pickup.old_leg_ignored(outbound.accepted),
        SipFailed: pickup.old_leg_ignored(outbound.failed),
        WebHangup: pickup.refusing_first(outbound.hangup),
        WebDisconnected: pickup.refusing_first(outbound.disconnected),
        MediaFailed: pickup.media_failed,
        GatewayStopping: pickup.stopping,
        MediaConnected: outbound.web_media_before_answer,  # a web leg answered early (HTTP offer API)
        MediaInactive: outbound.web_media_before_answer,
        MediaWebDtmf: midcall.web_media_dtmf,  # a web leg answered early
        TimerFired: _timer,
    },
    S.INVITED: {
        SipReplacingInvite: replaces.replacing_elsewhere,
        WebAccept: inbound.accept,
        WebOfferWanted: inbound.offer_wanted,
        MediaWebOfferReady: inbound.early_offer_ready,
        WebSdpAnswer: inbound.early_answer,
        MediaFailed: inbound.ringing_media_failed,
        GatewayStopping: inbound.ringing_stopping,
        WebReject: inbound.reject,
        WebHangup: inbound.hangup_ringing,
        WebDisconnected: inbound.ringing_disconnected,
        SipCancelled: inbound.ringing_cancelled,
        SipByeReceived: inbound.ringing_bye,
        TimerFired: _timer,
    },
    S.EARLY: {
        SipReplacingInvite: pickup.replacing_invite,  # outbound: call pickup; inbound: 481 (RFC 3891 §3)
        # outbound: early media
        SipProvisional: _by_direction(pickup.old_leg_ignored(outbound.provisional), None),
        SipAccepted: _by_direction(early_update.accepted(pickup.old_leg_ignored(outbound.accepted)), None),
        SipFailed: _by_direction(pickup.old_leg_ignored(outbound.failed), None),
        MediaWebAnswerReady: _by_direction(outbound.web_answer_ready, None),
        MediaPickupReady: _by_direction(pickup.ready, None),
        SipReinviteReceived: _by_direction(early_update.received, None),  # UPDATE offer (RFC 3311 §5.1)
        WebHold: _by_direction(early_update.web_hold, None),  # our UPDATE (RFC 3311 §5.1)
        WebResume: _by_direction(early_update.web_resume, None),
        MediaSipOfferReady: _by_direction(midcall.reoffer_ready, None),
        SipReinviteResult: _by_direction(midcall.reinvite_result, None),
        # inbound: a session answered, media is being set up
        MediaWebOfferReady: _by_direction(None, inbound.web_offer_ready),
        WebSdpAnswer: _by_direction(None, inbound.web_sdp_answer),
        MediaSipAnswerReady: _by_direction(early_update.answered, inbound.sip_answer_ready),
        SipCancelled: _by_direction(None, inbound.answering_cancelled),
        SipByeReceived: _by_direction(None, inbound.answering_bye),
        # both
        WebHangup: _by_direction(
            early_update.leaving(pickup.refusing_first(outbound.hangup)), inbound.answering_hangup
        ),
        WebDisconnected: _by_direction(
            early_update.leaving(pickup.refusing_first(outbound.disconnected)), inbound.answering_disconnected
        ),
        MediaFailed: _by_direction(early_update.media_failed, inbound.answering_media_failed),
        GatewayStopping: _by_direction(early_update.stopping, inbound.answering_stopping),
        MediaConnected: inbound.media_connected,
        MediaInactive: _ignore,  # early media may be silent
        WebDtmf: midcall.web_dtmf,
        RemoteDtmf: midcall.remote_dtmf,
        MediaWebDtmf: midcall.web_media_dtmf,
        MediaDtmfUnsent: midcall.dtmf_unsent,
        TimerFired: _timer,
    },
    S.CONNECTED: _CONNECTED,
    S.HOLDING: _CONNECTED,
    S.CLOSING: {
        SipReplacingInvite: replaces.replacing_elsewhere,
        WebHangup: _ignore,
        WebDisconnected: _ignore,
        WebDetached: _ignore,
        MediaWebLost: _ignore,
        MediaWebRenewed: _ignore,
        SipProvisional: _ignore,
        SipAccepted: midcall.closing_accepted,
        SipFailed: midcall.closing_done,
        SipLegClosed: midcall.closing_done,
        SipByeReceived: midcall.closing_bye,
        SipCancelled: _ignore,
        SipReinviteReceived: midcall.closing_reinvite,
        SipReinviteResult: _ignore,
        SipAckReceived: _ignore,
        RemoteDtmf: _ignore,
        MediaWebDtmf: midcall.web_media_dtmf,
        MediaDtmfUnsent: midcall.dtmf_unsent,
        WebInfo: _ignore,
        SipInfoReceived: _ignore,
        SipInfoResult: _ignore,
        WebMessage: _ignore,
        SipMessageReceived: _ignore,
        SipMessageResult: _ignore,
        MediaSipOfferReady: _ignore,
        MediaWebAnswerReady: _ignore,
        MediaWebOfferReady: _ignore,
        MediaWebReofferReady: _ignore,
        MediaWebReofferRefused: _ignore,
        MediaWebReofferAnswered: _ignore,
        WebReoffer: _ignore,
        MediaSipAnswerReady: _ignore,
        WebSdpAnswer: _ignore,
        MediaPickupReady: _ignore,
        MediaConnected: _ignore,
        MediaFailed: _ignore,
        MediaInactive: _ignore,
        GatewayStopping: _ignore,
        TimerFired: _timer,
        SipReferResult: _ignore,
        SipTransferProgress: _ignore,
        SipReferReceived: transfer.refer_while_closing,
        TransferOutcome: _ignore,
        ReplacedByTransfer: _ignore,
    },
    S.CLOSED: {},
}

TRANSITIONS: Final[Mapping[tuple[CallState, type[Event]], Handler]] = MappingProxyType(
    {(state, kind): handler for state, row in _BY_STATE.items() for kind, handler in row.items()}
)
