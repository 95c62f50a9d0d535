"""Every (state, event) pair: allowed ones emit the listed commands and reach the listed state;
every other pair raises IllegalEvent naming both. The walk covers each state from each direction
that can reach it."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from gateway.calls import (
    EVENT_TYPES,
    CallDirection,
    CallMachine,
    CallState,
    CancelTimer,
    CloseBridge,
    CreateBridge,
    Event,
    GatewayStopping,
    IllegalEvent,
    MediaAnswerFromSip,
    MediaAnswerFromWeb,
    MediaConnected,
    MediaDtmfUnsent,
    MediaFailed,
    MediaInactive,
    MediaOfferToSip,
    MediaOfferToWeb,
    MediaPickupReady,
    MediaSendDtmf,
    MediaSipAnswerReady,
    MediaSipOfferReady,
    MediaSipPickup,
    MediaSipReoffer,
    MediaSipUpdate,
    MediaWebAnswerReady,
    MediaWebDtmf,
    MediaWebOfferReady,
    MediaWebReofferReady,
    NotifyConnected,
    NotifyDtmf,
    NotifyEarlyMedia,
    NotifyEnded,
    NotifyHeld,
    NotifyIncoming,
    NotifyInfo,
    NotifyInfoResult,
    NotifyResumed,
    NotifyRinging,
    RejectKind,
    RemoteDtmf,
    ReplacedByTransfer,
    SendWebAnswer,
    SendWebOffer,
    SipAccepted,
    SipAckReceived,
    SipBye,
    SipByeReceived,
    SipCancel,
    SipCancelled,
    SipFailed,
    SipIncomingInvite,
    SipInfo,
    SipInfoDtmf,
    SipInfoReceived,
    SipInfoResult,
    SipInvite,
    SipLegClosed,
    SipProvisional,
    SipReinvite,
    SipReinviteReceived,
    SipReinviteResult,
    SipRespond,
    SipRespondReinvite,
    StartTimer,
    StopRinging,
    TimerFired,
    TimerName,
    WebAccept,
    WebDial,
    WebDisconnected,
    WebDtmf,
    WebHangup,
    WebHold,
    WebInfo,
    WebOfferWanted,
    WebReject,
    WebResume,
    WebSdpAnswer,
)
from gateway.calls.boundary.commands import (
    MediaCancelWebReoffer,
    MediaDetachWeb,
    MediaRenewWeb,
    MediaSendText,
    MediaSipReofferFromWeb,
    MediaWebAnswerFromSip,
    MediaWebReanswer,
    NotifyError,
    NotifyMessage,
    NotifyMessageResult,
    NotifyReplaced,
    NotifyTransfer,
    NotifyTransferRequested,
    SendWebReofferAnswer,
    SipAnswerRefer,
    SipMessage,
    SipNotifyRefer,
    SipRefer,
    SipRefuseReplacing,
    SipTakeOver,
)
from gateway.calls.boundary.events import (
    MediaWebLost,
    MediaWebRenewed,
    MediaWebReofferAnswered,
    MediaWebReofferRefused,
    SipMessageReceived,
    SipMessageResult,
    SipReferReceived,
    SipReferResult,
    SipReplacingInvite,
    SipTransferProgress,
    TakenOver,
    TransferOutcome,
    WebDetached,
    WebMessage,
    WebReattach,
    WebReoffer,
    WebTransfer,
)
from gateway.calls.table import TRANSITIONS
from tests.calls import flows as f

S = CallState
Expect = dict[type, tuple[CallState, list[type]]]


def sample(kind: type, session: str, timer: TimerName) -> Event:
    """One typical event of each kind, from `session`."""
    samples: dict[type, Callable[[], Event]] = {
        WebDial: lambda: f.dial(session=session),
        WebAccept: lambda: WebAccept(session),
        WebReject: lambda: WebReject(session, RejectKind.BUSY),
        WebOfferWanted: lambda: WebOfferWanted(session),
        WebSdpAnswer: lambda: WebSdpAnswer(session, f.WEB_ANSWER),
        WebHangup: lambda: WebHangup(session),
        WebHold: lambda: WebHold(session),
        WebResume: lambda: WebResume(session),
        WebDtmf: lambda: WebDtmf(session, "1"),
        WebInfo: lambda: WebInfo(session, "application/json", '{"a": 1}'),
        WebMessage: lambda: WebMessage("hello", session),
        SipMessageReceived: lambda: SipMessageReceived("hi there"),
        SipMessageResult: lambda: SipMessageResult(200),
        WebDisconnected: lambda: WebDisconnected(session),
        SipIncomingInvite: lambda: f.invite(),
        SipProvisional: lambda: SipProvisional(180),
        SipAccepted: lambda: SipAccepted(f.SIP_ANSWER),
        SipFailed: lambda: SipFailed(486, "Busy Here"),
        SipCancelled: SipCancelled,
        SipByeReceived: SipByeReceived,
        SipReinviteReceived: lambda: SipReinviteReceived(f.SIP_HOLD),
        SipReinviteResult: lambda: SipReinviteResult(200, f.SIP_ANSWER),
        SipLegClosed: SipLegClosed,
        SipAckReceived: lambda: SipAckReceived(f.SIP_ANSWER),
        RemoteDtmf: lambda: RemoteDtmf("5", 120),
        SipInfoReceived: lambda: SipInfoReceived("application/json", '{"b": 2}'),
        SipInfoResult: lambda: SipInfoResult(200),
        MediaSipOfferReady: lambda: MediaSipOfferReady(f.GW_SIP_OFFER),
        MediaWebAnswerReady: lambda: MediaWebAnswerReady(f.WEB_ANSWER),
        MediaWebOfferReady: lambda: MediaWebOfferReady(f.WEB_OFFER),
        MediaSipAnswerReady: lambda: MediaSipAnswerReady(f.GW_SIP_ANSWER),
        MediaPickupReady: lambda: MediaPickupReady(f.GW_SIP_ANSWER, f.WEB_ANSWER),
        MediaConnected: MediaConnected,
        MediaFailed: lambda: MediaFailed("ICE failed"),
        MediaInactive: lambda: MediaInactive(10.0),
        TimerFired: lambda: TimerFired(timer),
        WebTransfer: lambda: WebTransfer(session, f.ALICE, "1003"),
        SipReferResult: lambda: SipReferResult(202, "Accepted"),
        SipTransferProgress: lambda: SipTransferProgress(200, "OK", terminated=True),
        SipReferReceived: lambda: SipReferReceived(f"sip:1003@{f.DOMAIN}", f.ALICE),
        TransferOutcome: lambda: TransferOutcome(180, "Ringing"),
        SipReplacingInvite: lambda: SipReplacingInvite("sip:2001@pbx.example.org", "B", f.SIP_OFFER),
        WebDetached: lambda: WebDetached(session),
        WebReattach: lambda: WebReattach(session, f.WEB_OFFER),
        MediaWebLost: lambda: MediaWebLost("ICE failed"),
        MediaWebRenewed: lambda: MediaWebRenewed(f.WEB_ANSWER),
        MediaWebReofferReady: lambda: MediaWebReofferReady(f.WEB_OFFER),
        WebReoffer: lambda: WebReoffer(session, f.WEB_OFFER),
        MediaWebReofferAnswered: lambda: MediaWebReofferAnswered(f.WEB_ANSWER),
        MediaWebReofferRefused: lambda: MediaWebReofferRefused("no video change"),
        MediaWebDtmf: lambda: MediaWebDtmf("4", 120),
        MediaDtmfUnsent: lambda: MediaDtmfUnsent("4", 120),
        ReplacedByTransfer: ReplacedByTransfer,
        GatewayStopping: GatewayStopping,
        TakenOver: lambda: TakenOver("gw-dead"),
    }
    return samples[kind]()


def invited_wanting_offer(*, ready: bool) -> CallMachine:
    """Ringing s1 and s2; s1 (a SIP library) asked for the offer; with `ready`, it has it."""
    call = f.invited()
    f.run(call, WebOfferWanted("s1"), *([MediaWebOfferReady(f.WEB_OFFER)] if ready else []))
    return call


CANCELLING = [CloseBridge, NotifyEnded, SipCancel, CancelTimer, StartTimer]
BYEING = [SipBye, CloseBridge, NotifyEnded, StartTimer]


def connected_expect(state: CallState, hold: list[type], resume: list[type]) -> Expect:
    # the browser's own new offer (escalation.py) only while no re-INVITE is under way (hold and resume
    # both empty: one is); its answer, once the bridge has it, goes to the browser whatever happens next
    idle = bool(hold or resume)
    return {
        **({WebReoffer: (state, [MediaSipReofferFromWeb])} if idle else {}),
        MediaWebReofferAnswered: (state, [SendWebReofferAnswer]),
        WebHangup: (S.CLOSING, BYEING),
        WebDisconnected: (S.CLOSING, [SipBye, CloseBridge, StartTimer]),
        WebHold: (state, hold),
        WebResume: (state, resume),
        WebDtmf: (state, [MediaSendDtmf]),
        SipByeReceived: (S.CLOSED, [CloseBridge, NotifyEnded]),
        SipLegClosed: (S.CLOSED, [CloseBridge, NotifyEnded]),
        SipCancelled: (state, []),
        SipReinviteReceived: (state, [MediaSipUpdate]),
        SipAckReceived: (state, []),  # the ACK of a 2xx that carried an answer
        RemoteDtmf: (state, [NotifyDtmf]),
        WebInfo: (state, [SipInfo]),
        SipInfoReceived: (state, [NotifyInfo]),
        SipInfoResult: (state, [NotifyInfoResult]),
        WebMessage: (state, [SipMessage]),
        SipMessageReceived: (state, [MediaSendText, NotifyMessage]),
        SipMessageResult: (state, [NotifyMessageResult]),
        MediaWebAnswerReady: (state, []),
        MediaConnected: (state, []),
        MediaFailed: (S.CLOSING, BYEING),
        MediaInactive: (S.CLOSING, BYEING) if state is S.CONNECTED else (state, []),
        TimerFired: (state, []),  # REINVITE_RETRY is not running: a stale timer
        WebTransfer: (state, [SipRefer, NotifyTransfer]),
        SipTransferProgress: (state, []),  # no transfer of ours: a late NOTIFY is dropped
        SipReferReceived: (state, [SipAnswerRefer, SipNotifyRefer, NotifyTransferRequested, StartTimer]),
        # reconnect grace (gateway/calls/connected/reconnect.py): the call waits for the browser; a lost
        # socket leaves the web leg up (away), a lost web leg goes
        WebDetached: (state, [StartTimer]),
        MediaWebLost: (state, [MediaDetachWeb, StartTimer]),
        WebReattach: (state, [MediaRenewWeb]),  # the carrying session renews its media
        MediaWebRenewed: (state, []),  # no reattach under way: stale
    }


# A transfer of ours is out (REFER sent): its answer and NOTIFYs, and no second transfer.
TRANSFERRING: Expect = {
    SipReferResult: (S.CONNECTED, [NotifyTransfer]),
    SipTransferProgress: (S.CLOSING, [NotifyTransfer, *BYEING]),
}
# The SIP party's REFER was accepted: the call placed for it is reported.
REFERRED: Expect = {
    TransferOutcome: (S.CONNECTED, [CancelTimer, SipNotifyRefer]),  # REFER_WAIT: the browser dialled
    SipReferReceived: (S.CONNECTED, [SipAnswerRefer]),  # 491 while one is reported on
}


def referred(expect: Expect) -> Expect:
    """While REFER_WAIT runs (a REFER accepted, no call placed yet), ending the call cancels it too."""
    changed: Expect = {}
    for kind, (state, commands) in expect.items():
        if state is S.CLOSING and StartTimer in commands:
            at = len(commands) - 1 - commands[::-1].index(StartTimer)
            commands = [*commands[:at], CancelTimer, *commands[at:]]
        elif state is S.CLOSED:
            commands = [*commands, CancelTimer]
        changed[kind] = (state, commands)
    return changed


# Ending while a re-INVITE of the SIP party waits for its answer: it gets 487 first.
def asking_web_expect(state: CallState) -> Expect:
    """The browser was offered again for the SIP party's re-INVITE (escalation): its answer, the timer."""
    pending = [SipRespondReinvite, SipBye, CloseBridge]
    return {
        **connected_expect(state, hold=[], resume=[]),
        WebSdpAnswer: (state, [CancelTimer, MediaWebReanswer]),
        TimerFired: (state, [MediaCancelWebReoffer, SipRespondReinvite]),  # 488, the session as it was
        SipReinviteReceived: (state, [SipRespondReinvite]),  # 500 Retry-After
        WebHangup: (S.CLOSING, [*pending, NotifyEnded, CancelTimer, StartTimer]),
        WebDisconnected: (S.CLOSING, [*pending, CancelTimer, StartTimer]),
        SipByeReceived: (S.CLOSED, [SipRespondReinvite, CloseBridge, NotifyEnded, CancelTimer]),
        SipLegClosed: (S.CLOSED, [CloseBridge, NotifyEnded, CancelTimer]),
        MediaFailed: (S.CLOSING, [*pending, NotifyEnded, CancelTimer, StartTimer]),
        MediaInactive: (S.CLOSING, [*pending, NotifyEnded, CancelTimer, StartTimer])
        if state is S.CONNECTED
        else (state, []),
    }


PENDING_487: Expect = {
    WebHangup: (S.CLOSING, [SipRespondReinvite, *BYEING]),
    WebDisconnected: (S.CLOSING, [SipRespondReinvite, SipBye, CloseBridge, StartTimer]),
    SipByeReceived: (S.CLOSED, [SipRespondReinvite, CloseBridge, NotifyEnded]),
    MediaFailed: (S.CLOSING, [SipRespondReinvite, *BYEING]),
}

# The web leg up (or idle) while our INVITE is out: a browser answered early (HTTP offer API); nothing yet.
WEB_MEDIA_EARLY: Expect = {MediaConnected: (S.INVITING, []), MediaInactive: (S.INVITING, [])}

# Call pickup (RFC 3891 §3, gateway/calls/setup/pickup.py): an INVITE with Replaces naming our early dialog.
PICKUP = SipReplacingInvite("sip:2001@pbx.example.org", "B", f.SIP_OFFER)
PICKING_UP = [CancelTimer, SipTakeOver, MediaSipPickup]  # RING off; the bridge takes its offer
# ...while the bridge answers it: the old leg's responses change nothing, leaving refuses it first.
PICKED_UP: Expect = {
    MediaPickupReady: (S.CONNECTED, [SipRespondReinvite, SendWebAnswer, NotifyConnected, NotifyReplaced]),
    **{k: (S.INVITING, []) for k in (SipProvisional, SipAccepted, SipFailed, TimerFired)},
    **WEB_MEDIA_EARLY,
    WebHangup: (S.CLOSING, [SipRefuseReplacing, CloseBridge, NotifyEnded, SipCancel, StartTimer]),
    WebDisconnected: (S.CLOSING, [SipRefuseReplacing, CloseBridge, SipCancel, StartTimer]),
    MediaFailed: (S.CLOSING, [SipRefuseReplacing, CloseBridge, NotifyEnded, SipCancel, StartTimer]),
    SipReplacingInvite: (S.INVITING, [SipRefuseReplacing]),  # 491: one pickup at a time
}

# The web user's outbound call with early media (an 18x answered our offer).
EARLY_OUT: Expect = {
    SipProvisional: (S.EARLY, []),
    SipAccepted: (S.CONNECTED, [CancelTimer, MediaAnswerFromSip, NotifyConnected]),
    SipFailed: (S.CLOSED, [CloseBridge, NotifyEnded, CancelTimer]),
    MediaWebAnswerReady: (S.EARLY, [SendWebAnswer, NotifyEarlyMedia]),
    WebHangup: (S.CLOSING, CANCELLING),
    WebDisconnected: (S.CLOSING, [CloseBridge, SipCancel, CancelTimer, StartTimer]),
    MediaFailed: (S.CLOSING, CANCELLING),
    MediaConnected: (S.EARLY, []),
    MediaInactive: (S.EARLY, []),
    WebDtmf: (S.EARLY, [MediaSendDtmf]),
    RemoteDtmf: (S.EARLY, [NotifyDtmf]),
    TimerFired: (S.CLOSING, [CloseBridge, NotifyEnded, SipCancel, StartTimer]),
    SipReplacingInvite: (S.EARLY, PICKING_UP),
    SipReinviteReceived: (S.EARLY, [MediaSipUpdate]),  # an UPDATE's offer (RFC 3311 §5.1)
    WebHold: (S.EARLY, [MediaSipReoffer]),  # our UPDATE (RFC 3311 §5.1; early_update.web_hold)
    WebResume: (S.EARLY, []),  # not held: nothing to do
}

CLOSING_EXPECT: Expect = {
    WebHangup: (S.CLOSING, []),
    WebDisconnected: (S.CLOSING, []),
    SipProvisional: (S.CLOSING, []),
    SipAccepted: (S.CLOSING, [SipBye]),
    SipFailed: (S.CLOSED, [CancelTimer]),
    SipLegClosed: (S.CLOSED, [CancelTimer]),
    SipByeReceived: (S.CLOSED, [CancelTimer]),
    SipCancelled: (S.CLOSING, []),
    SipReinviteReceived: (S.CLOSING, [SipRespondReinvite]),
    SipReinviteResult: (S.CLOSING, []),
    SipAckReceived: (S.CLOSING, []),
    RemoteDtmf: (S.CLOSING, []),
    WebInfo: (S.CLOSING, []),
    SipInfoReceived: (S.CLOSING, []),
    SipInfoResult: (S.CLOSING, []),
    WebMessage: (S.CLOSING, []),
    SipMessageReceived: (S.CLOSING, []),
    SipMessageResult: (S.CLOSING, []),
    MediaSipOfferReady: (S.CLOSING, []),
    MediaWebAnswerReady: (S.CLOSING, []),
    MediaWebOfferReady: (S.CLOSING, []),
    MediaSipAnswerReady: (S.CLOSING, []),
    MediaPickupReady: (S.CLOSING, []),
    MediaConnected: (S.CLOSING, []),
    MediaFailed: (S.CLOSING, []),
    MediaInactive: (S.CLOSING, []),
    TimerFired: (S.CLOSED, []),
    SipReferResult: (S.CLOSING, []),
    SipTransferProgress: (S.CLOSING, []),
    SipReferReceived: (S.CLOSING, [SipAnswerRefer]),  # 481
    TransferOutcome: (S.CLOSING, []),
    WebDetached: (S.CLOSING, []),
    MediaWebLost: (S.CLOSING, []),
    MediaWebRenewed: (S.CLOSING, []),
    MediaWebReofferReady: (S.CLOSING, []),
    WebSdpAnswer: (S.CLOSING, []),
    WebReoffer: (S.CLOSING, []),
    MediaWebReofferAnswered: (S.CLOSING, []),
    MediaWebReofferRefused: (S.CLOSING, []),
}

# situation -> (state it is in, builder, timer of its TimerFired sample, allowed pairs)
SITUATIONS: dict[str, tuple[CallState, Callable[[], CallMachine], TimerName, Expect]] = {
    "idle": (
        S.IDLE,
        f.machine,
        TimerName.SETUP,
        {
            WebDial: (S.INVITING, [CreateBridge, MediaOfferToSip, StartTimer]),
            SipIncomingInvite: (S.INVITED, [NotifyIncoming, NotifyIncoming, SipRespond, StartTimer]),
        },
    ),
    "inviting, offer not ready": (
        S.INVITING,
        f.inviting_prep,
        TimerName.SETUP,
        {
            MediaSipOfferReady: (S.INVITING, [SipInvite]),
            **WEB_MEDIA_EARLY,
            WebHangup: (S.CLOSED, [CloseBridge, NotifyEnded, CancelTimer]),
            WebDisconnected: (S.CLOSED, [CloseBridge, CancelTimer]),
            MediaFailed: (S.CLOSED, [CloseBridge, NotifyEnded, CancelTimer]),
            TimerFired: (S.CLOSED, [CloseBridge, NotifyEnded]),
        },
    ),
    "inviting, INVITE out": (
        S.INVITING,
        f.inviting,
        TimerName.SETUP,
        {
            SipProvisional: (S.INVITING, [CancelTimer, StartTimer, NotifyRinging]),
            **WEB_MEDIA_EARLY,
            SipAccepted: (S.CONNECTED, [CancelTimer, MediaAnswerFromSip, NotifyConnected]),
            SipFailed: (S.CLOSED, [CloseBridge, NotifyEnded, CancelTimer]),
            WebHangup: (S.CLOSING, CANCELLING),
            WebDisconnected: (S.CLOSING, [CloseBridge, SipCancel, CancelTimer, StartTimer]),
            MediaFailed: (S.CLOSING, CANCELLING),
            TimerFired: (S.CLOSING, [CloseBridge, NotifyEnded, SipCancel, StartTimer]),
            SipReplacingInvite: (S.INVITING, PICKING_UP),
        },
    ),
    "inviting, ringing": (
        S.INVITING,
        f.inviting_ringing,
        TimerName.RING,
        {
            SipProvisional: (S.INVITING, []),
            **WEB_MEDIA_EARLY,
            SipAccepted: (S.CONNECTED, [CancelTimer, MediaAnswerFromSip, NotifyConnected]),
            SipFailed: (S.CLOSED, [CloseBridge, NotifyEnded, CancelTimer]),
            WebHangup: (S.CLOSING, CANCELLING),
            WebDisconnected: (S.CLOSING, [CloseBridge, SipCancel, CancelTimer, StartTimer]),
            MediaFailed: (S.CLOSING, CANCELLING),
            TimerFired: (S.CLOSING, [CloseBridge, NotifyEnded, SipCancel, StartTimer]),
            SipReplacingInvite: (S.INVITING, PICKING_UP),
        },
    ),
    "inviting, picked up": (S.INVITING, f.after(f.inviting_ringing, PICKUP), TimerName.RING, PICKED_UP),
    "early, picked up": (
        S.EARLY,
        f.after(f.early_out, PICKUP),
        TimerName.RING,
        {
            **PICKED_UP,
            MediaWebAnswerReady: (S.EARLY, [SendWebAnswer, NotifyEarlyMedia]),
            MediaConnected: (S.EARLY, []),
            MediaInactive: (S.EARLY, []),
            WebDtmf: (S.EARLY, [MediaSendDtmf]),
            RemoteDtmf: (S.EARLY, [NotifyDtmf]),
            **{k: (S.EARLY, []) for k in (SipProvisional, SipAccepted, SipFailed, TimerFired)},
            SipReplacingInvite: (S.EARLY, [SipRefuseReplacing]),  # 491
            SipReinviteReceived: (S.EARLY, []),  # the picked-up leg's UPDATE: it is about to be CANCELled
        },
    ),
    "invited, two sessions": (
        S.INVITED,
        f.invited,
        TimerName.RING,
        {
            WebAccept: (
                S.EARLY,
                [CancelTimer, StopRinging, CreateBridge, MediaOfferToWeb, StartTimer],
            ),
            WebReject: (S.INVITED, [StopRinging]),  # busy: the other session rings on (issue 16)
            WebHangup: (S.CLOSED, [StopRinging, StopRinging, SipRespond, CancelTimer]),
            WebDisconnected: (S.INVITED, []),
            SipCancelled: (S.CLOSED, [StopRinging, StopRinging, CancelTimer]),
            SipByeReceived: (S.CLOSED, [StopRinging, StopRinging, SipRespond, CancelTimer]),
            WebOfferWanted: (S.INVITED, [CreateBridge, MediaOfferToWeb]),
            MediaFailed: (S.CLOSED, [StopRinging, StopRinging, CloseBridge, SipRespond, CancelTimer]),
            TimerFired: (S.CLOSED, [StopRinging, StopRinging, SipRespond]),
        },
    ),
    "invited, s1 wants the offer": (
        S.INVITED,
        lambda: invited_wanting_offer(ready=False),
        TimerName.RING,
        {
            WebAccept: (S.EARLY, [CancelTimer, StopRinging, StartTimer]),  # the offer on its way goes to s1
            WebOfferWanted: (S.INVITED, []),  # asked already: it comes with MediaWebOfferReady
            MediaWebOfferReady: (S.INVITED, [SendWebOffer]),
            WebReject: (S.INVITED, [StopRinging]),  # busy: the other session rings on (issue 16)
            WebHangup: (S.CLOSED, [StopRinging, StopRinging, SipRespond, CancelTimer]),
            WebDisconnected: (S.INVITED, []),
            SipCancelled: (S.CLOSED, [StopRinging, StopRinging, CancelTimer]),
            SipByeReceived: (S.CLOSED, [StopRinging, StopRinging, SipRespond, CancelTimer]),
            MediaFailed: (S.CLOSED, [StopRinging, StopRinging, CloseBridge, SipRespond, CancelTimer]),
            TimerFired: (S.CLOSED, [StopRinging, StopRinging, SipRespond]),
        },
    ),
    "invited, s1 has the offer": (
        S.INVITED,
        lambda: invited_wanting_offer(ready=True),
        TimerName.RING,
        {
            WebAccept: (S.EARLY, [CancelTimer, StopRinging, SendWebOffer, StartTimer]),
            WebOfferWanted: (S.INVITED, [SendWebOffer]),
            WebSdpAnswer: (S.EARLY, [CancelTimer, StopRinging, StartTimer, MediaAnswerFromWeb]),
            WebReject: (S.INVITED, [StopRinging]),  # busy: the other session rings on (issue 16)
            WebHangup: (S.CLOSED, [StopRinging, StopRinging, SipRespond, CancelTimer]),
            WebDisconnected: (S.INVITED, []),
            SipCancelled: (S.CLOSED, [StopRinging, StopRinging, CancelTimer]),
            SipByeReceived: (S.CLOSED, [StopRinging, StopRinging, SipRespond, CancelTimer]),
            MediaFailed: (S.CLOSED, [StopRinging, StopRinging, CloseBridge, SipRespond, CancelTimer]),
            TimerFired: (S.CLOSED, [StopRinging, StopRinging, SipRespond]),
        },
    ),
    "early, outbound early media": (S.EARLY, f.early_out, TimerName.RING, EARLY_OUT),
    "early, outbound, answering an UPDATE offer": (
        S.EARLY,
        f.after(f.early_out, SipReinviteReceived(f.SIP_HOLD)),
        TimerName.RING,
        {
            **EARLY_OUT,
            MediaSipAnswerReady: (S.EARLY, [SipRespondReinvite, NotifyHeld]),  # 200, held by remote
            WebHold: (S.EARLY, []),  # after the answer (early_update.answered)
            SipReinviteReceived: (S.EARLY, [SipRespondReinvite]),  # 500 Retry-After (RFC 3311 §5.2)
            SipReplacingInvite: (S.EARLY, [SipRefuseReplacing]),  # 491
            WebHangup: (S.CLOSING, [SipRespondReinvite, *CANCELLING]),  # 487 first
            WebDisconnected: (
                S.CLOSING,
                [SipRespondReinvite, CloseBridge, SipCancel, CancelTimer, StartTimer],
            ),
            MediaFailed: (S.CLOSING, [SipRespondReinvite, *CANCELLING]),
        },
    ),
    "early, outbound, our hold UPDATE being prepared": (
        S.EARLY,
        f.after(f.early_out, WebHold("s1")),
        TimerName.RING,
        {
            **EARLY_OUT,
            WebHold: (S.EARLY, []),
            MediaSipOfferReady: (S.EARLY, [SipReinvite]),  # the UA sends it as UPDATE
            SipReinviteReceived: (S.EARLY, [SipRespondReinvite]),  # 491: ours first
            SipReplacingInvite: (S.EARLY, [SipRefuseReplacing]),  # no pickup while ours is out
        },
    ),
    "early, outbound, our hold UPDATE out": (
        S.EARLY,
        f.after(f.early_out, WebHold("s1"), MediaSipOfferReady(f.GW_SIP_OFFER)),
        TimerName.RING,
        {
            **EARLY_OUT,
            WebHold: (S.EARLY, []),
            SipReinviteResult: (S.EARLY, [MediaAnswerFromSip, NotifyHeld]),
            SipReinviteReceived: (S.EARLY, [SipRespondReinvite]),  # 491
            SipReplacingInvite: (S.EARLY, [SipRefuseReplacing]),
        },
    ),
    "early, outbound, held by our UPDATE": (
        S.EARLY,
        f.after(
            f.early_out,
            WebHold("s1"),
            MediaSipOfferReady(f.GW_SIP_OFFER),
            SipReinviteResult(200, f.SIP_ANSWER),
        ),
        TimerName.RING,
        {
            **EARLY_OUT,
            WebHold: (S.EARLY, []),
            WebResume: (S.EARLY, [MediaSipReoffer]),
            SipAccepted: (S.HOLDING, [CancelTimer, NotifyConnected]),  # the 2xx's old answer not applied
        },
    ),
    "early, inbound answering": (
        S.EARLY,
        f.early_in,
        TimerName.ANSWER,
        {
            MediaWebOfferReady: (S.EARLY, [SendWebOffer]),
            SipCancelled: (S.CLOSED, [CloseBridge, NotifyEnded, CancelTimer]),
            SipByeReceived: (S.CLOSED, [CloseBridge, NotifyEnded, SipRespond, CancelTimer]),
            WebHangup: (S.CLOSED, [CloseBridge, NotifyEnded, SipRespond, CancelTimer]),
            WebDisconnected: (S.CLOSED, [CloseBridge, SipRespond, CancelTimer]),
            MediaFailed: (S.CLOSED, [CloseBridge, NotifyEnded, SipRespond, CancelTimer]),
            MediaConnected: (S.EARLY, []),
            MediaInactive: (S.EARLY, []),
            RemoteDtmf: (S.EARLY, [NotifyDtmf]),
            TimerFired: (S.CLOSED, [CloseBridge, NotifyEnded, SipRespond]),
        },
    ),
    "early, inbound offer with the browser": (
        S.EARLY,
        f.early_in_offered,
        TimerName.ANSWER,
        {
            WebSdpAnswer: (S.EARLY, [MediaAnswerFromWeb]),
            SipCancelled: (S.CLOSED, [CloseBridge, NotifyEnded, CancelTimer]),
            SipByeReceived: (S.CLOSED, [CloseBridge, NotifyEnded, SipRespond, CancelTimer]),
            WebHangup: (S.CLOSED, [CloseBridge, NotifyEnded, SipRespond, CancelTimer]),
            WebDisconnected: (S.CLOSED, [CloseBridge, SipRespond, CancelTimer]),
            MediaFailed: (S.CLOSED, [CloseBridge, NotifyEnded, SipRespond, CancelTimer]),
            MediaConnected: (S.EARLY, []),
            MediaInactive: (S.EARLY, []),
            RemoteDtmf: (S.EARLY, [NotifyDtmf]),
            TimerFired: (S.CLOSED, [CloseBridge, NotifyEnded, SipRespond]),
        },
    ),
    "connected, outbound": (
        S.CONNECTED,
        f.connected_out,
        TimerName.REINVITE_RETRY,
        connected_expect(S.CONNECTED, hold=[MediaSipReoffer], resume=[]),
    ),
    "connected, inbound": (
        S.CONNECTED,
        f.connected_in,
        TimerName.REINVITE_RETRY,
        connected_expect(S.CONNECTED, hold=[MediaSipReoffer], resume=[]),
    ),
    "holding, held by the web user": (
        S.HOLDING,
        f.holding_local,
        TimerName.REINVITE_RETRY,
        connected_expect(S.HOLDING, hold=[], resume=[MediaSipReoffer]),
    ),
    "holding, held by the SIP party": (
        S.HOLDING,
        f.holding_remote,
        TimerName.REINVITE_RETRY,
        connected_expect(S.HOLDING, hold=[MediaSipReoffer], resume=[]),
    ),
    "early, inbound WebRTC up": (
        S.EARLY,
        f.early_in_media_up,
        TimerName.ANSWER,
        {
            MediaSipAnswerReady: (S.CONNECTED, [CancelTimer, SipRespond, NotifyConnected]),
            SipCancelled: (S.CLOSED, [CloseBridge, NotifyEnded, CancelTimer]),
            SipByeReceived: (S.CLOSED, [CloseBridge, NotifyEnded, SipRespond, CancelTimer]),
            WebHangup: (S.CLOSED, [CloseBridge, NotifyEnded, SipRespond, CancelTimer]),
            WebDisconnected: (S.CLOSED, [CloseBridge, SipRespond, CancelTimer]),
            MediaFailed: (S.CLOSED, [CloseBridge, NotifyEnded, SipRespond, CancelTimer]),
            MediaConnected: (S.EARLY, []),
            MediaInactive: (S.EARLY, []),
            RemoteDtmf: (S.EARLY, [NotifyDtmf]),
            TimerFired: (S.CLOSED, [CloseBridge, NotifyEnded, SipRespond]),
        },
    ),
    "connected, hold being prepared": (
        S.CONNECTED,
        f.after(f.connected_out, WebHold("s1")),
        TimerName.REINVITE_RETRY,
        {
            **connected_expect(S.CONNECTED, hold=[], resume=[]),
            MediaSipOfferReady: (S.CONNECTED, [SipReinvite]),
            SipReinviteReceived: (S.CONNECTED, [SipRespondReinvite]),
        },
    ),
    "connected, hold re-INVITE out": (
        S.CONNECTED,
        f.after(f.connected_out, WebHold("s1"), MediaSipOfferReady(f.GW_SIP_OFFER)),
        TimerName.REINVITE_RETRY,
        {
            **connected_expect(S.CONNECTED, hold=[], resume=[]),
            SipReinviteResult: (S.HOLDING, [MediaAnswerFromSip, NotifyHeld]),
            SipReinviteReceived: (S.CONNECTED, [SipRespondReinvite]),
        },
    ),
    "connected, answering a hold re-INVITE": (
        S.CONNECTED,
        f.after(f.connected_in, SipReinviteReceived(f.SIP_HOLD)),
        TimerName.REINVITE_RETRY,
        {
            **connected_expect(S.CONNECTED, hold=[], resume=[]),
            MediaSipAnswerReady: (S.HOLDING, [SipRespondReinvite, NotifyHeld]),
            SipReinviteReceived: (S.CONNECTED, [SipRespondReinvite]),
            MediaWebReofferReady: (S.CONNECTED, [SendWebOffer, StartTimer]),  # it adds or drops video
            **PENDING_487,
            MediaInactive: (S.CLOSING, [SipRespondReinvite, *BYEING]),
        },
    ),
    "holding, resume being prepared": (
        S.HOLDING,
        f.after(f.holding_local, WebResume("s1")),
        TimerName.REINVITE_RETRY,
        {
            **connected_expect(S.HOLDING, hold=[], resume=[]),
            MediaSipOfferReady: (S.HOLDING, [SipReinvite]),
            SipReinviteReceived: (S.HOLDING, [SipRespondReinvite]),
        },
    ),
    "holding, resume re-INVITE out": (
        S.HOLDING,
        f.after(f.holding_local, WebResume("s1"), MediaSipOfferReady(f.GW_SIP_OFFER)),
        TimerName.REINVITE_RETRY,
        {
            **connected_expect(S.HOLDING, hold=[], resume=[]),
            SipReinviteResult: (S.CONNECTED, [MediaAnswerFromSip, NotifyResumed]),
            SipReinviteReceived: (S.HOLDING, [SipRespondReinvite]),
        },
    ),
    "holding, answering a resume re-INVITE": (
        S.HOLDING,
        f.after(f.holding_remote, SipReinviteReceived(f.SIP_RESUME)),
        TimerName.REINVITE_RETRY,
        {
            **connected_expect(S.HOLDING, hold=[], resume=[]),
            MediaSipAnswerReady: (S.CONNECTED, [SipRespondReinvite, NotifyResumed]),
            SipReinviteReceived: (S.HOLDING, [SipRespondReinvite]),
            MediaWebReofferReady: (S.HOLDING, [SendWebOffer, StartTimer]),
            **PENDING_487,
        },
    ),
    # escalation (gateway/calls/connected/escalation.py): their re-INVITE adds video, the browser was offered again
    **{
        f"{name}, the browser re-offered for their re-INVITE": (
            state,
            f.after(build, SipReinviteReceived(f.SIP_OFFER), MediaWebReofferReady(f.WEB_OFFER)),
            TimerName.WEB_REOFFER,
            asking_web_expect(state),
        )
        for name, state, build in (
            ("connected", S.CONNECTED, f.connected_in),
            ("holding", S.HOLDING, f.holding_local),
        )
    },
    # escalation from the browser: its own new offer goes to the SIP side first (our re-INVITE)
    **{
        f"{name}, the browser's own offer being prepared": (
            state,
            f.after(build, WebReoffer("s1", f.WEB_OFFER)),
            TimerName.REINVITE_RETRY,
            {
                **connected_expect(state, hold=[], resume=[]),
                MediaSipOfferReady: (state, [SipReinvite]),
                MediaWebReofferRefused: (state, [NotifyError]),  # the call goes on as it was
                SipReinviteReceived: (state, [SipRespondReinvite]),  # 491
            },
        )
        for name, state, build in (
            ("connected", S.CONNECTED, f.connected_out),
            ("holding", S.HOLDING, f.holding_local),
        )
    },
    **{
        f"{name}, the browser's own offer out as our re-INVITE": (
            state,
            f.after(build, WebReoffer("s1", f.WEB_OFFER), MediaSipOfferReady(f.GW_SIP_OFFER)),
            TimerName.REINVITE_RETRY,
            {
                **connected_expect(state, hold=[], resume=[]),
                SipReinviteResult: (state, [MediaWebAnswerFromSip]),  # the browser's answer next
                SipReinviteReceived: (state, [SipRespondReinvite]),  # 491
            },
        )
        for name, state, build in (
            ("connected", S.CONNECTED, f.connected_in),
            ("holding", S.HOLDING, f.holding_remote),
        )
    },
    "connected, late offer in the 200, waiting for the ACK": (
        S.CONNECTED,
        f.connected_late_offer,
        TimerName.REINVITE_RETRY,
        {
            **connected_expect(S.CONNECTED, hold=[], resume=[]),
            SipAckReceived: (S.CONNECTED, [MediaAnswerFromSip]),
            SipReinviteReceived: (S.CONNECTED, [SipRespondReinvite]),  # 491
        },
    ),
    "connected, making the offer for an offerless re-INVITE": (
        S.CONNECTED,
        f.after(f.connected_in, SipReinviteReceived(None)),
        TimerName.REINVITE_RETRY,
        {
            **connected_expect(S.CONNECTED, hold=[], resume=[]),
            MediaSipOfferReady: (S.CONNECTED, [SipRespondReinvite]),
            SipReinviteReceived: (S.CONNECTED, [SipRespondReinvite]),  # 500 Retry-After
            **PENDING_487,
            MediaInactive: (S.CLOSING, [SipRespondReinvite, *BYEING]),
        },
    ),
    "holding, our offer in the 200 to an offerless re-INVITE": (
        S.HOLDING,
        f.after(f.holding_remote, SipReinviteReceived(None), MediaSipOfferReady(f.GW_SIP_OFFER)),
        TimerName.REINVITE_RETRY,
        {
            **connected_expect(S.HOLDING, hold=[], resume=[]),
            SipAckReceived: (S.CONNECTED, [MediaAnswerFromSip, NotifyResumed]),
            SipReinviteReceived: (S.HOLDING, [SipRespondReinvite]),  # 491
        },
    ),
    "connected, transferring": (
        S.CONNECTED,
        f.after(f.connected_out, WebTransfer("s1", f.ALICE, "1003")),
        TimerName.REINVITE_RETRY,
        {  # a second WebTransfer is refused: one transfer at a time
            **{
                k: v
                for k, v in connected_expect(S.CONNECTED, hold=[MediaSipReoffer], resume=[]).items()
                if k is not WebTransfer
            },
            **TRANSFERRING,
        },
    ),
    "connected, reporting a REFER": (
        S.CONNECTED,
        f.after(f.connected_in, SipReferReceived(f"sip:1003@{f.DOMAIN}", f.ALICE)),
        TimerName.REINVITE_RETRY,
        {**referred(connected_expect(S.CONNECTED, hold=[MediaSipReoffer], resume=[])), **REFERRED},
    ),
    "holding, transferring the held call": (
        S.HOLDING,
        f.after(f.holding_local, WebTransfer("s1", f.ALICE, "1003")),
        TimerName.REINVITE_RETRY,
        {
            **{
                k: v
                for k, v in connected_expect(S.HOLDING, hold=[], resume=[MediaSipReoffer]).items()
                if k is not WebTransfer
            },
            SipReferResult: (S.HOLDING, [NotifyTransfer]),
            SipTransferProgress: (S.CLOSING, [NotifyTransfer, *BYEING]),
        },
    ),
    "holding, reporting a REFER": (
        S.HOLDING,
        f.after(f.holding_remote, SipReferReceived(f"sip:1003@{f.DOMAIN}", f.ALICE)),
        TimerName.REINVITE_RETRY,
        {
            **referred(connected_expect(S.HOLDING, hold=[MediaSipReoffer], resume=[])),
            TransferOutcome: (S.HOLDING, [CancelTimer, SipNotifyRefer]),
            SipReferReceived: (S.HOLDING, [SipAnswerRefer]),
        },
    ),
    "closing, CANCEL out": (S.CLOSING, f.closing_cancel, TimerName.CLOSING, CLOSING_EXPECT),
    "closing, BYE out": (S.CLOSING, f.closing_bye, TimerName.CLOSING, CLOSING_EXPECT),
    "closed": (S.CLOSED, f.closed, TimerName.CLOSING, {}),
}


def _replacing(state: CallState, expect: Expect) -> tuple[CallState, list[type]]:
    """An INVITE with Replaces: connected or holding, it is handled as their re-INVITE on the new leg
    (taken over and the browser told, or refused 491 while a re-INVITE is under way); elsewhere 481."""
    if state not in (S.CONNECTED, S.HOLDING):
        return state, [SipRefuseReplacing]
    reinvite_state, reinvite = expect[SipReinviteReceived]
    if SipRespondReinvite in reinvite:
        return state, [SipRefuseReplacing]
    return reinvite_state, [SipTakeOver, NotifyReplaced, *reinvite]


for _state, _build, _timer, _expect in SITUATIONS.values():
    if _state not in (S.IDLE, S.CLOSED) and SipReplacingInvite not in _expect:
        _expect[SipReplacingInvite] = _replacing(_state, _expect)
    # DTMF the media reports wherever a web leg may be up (midcall.web_media_dtmf: nothing with rfc4733,
    # the bridge forwarded it), and a digit the bridge could not send, wherever one was asked of it
    if _state in (S.INVITING, S.EARLY, S.CONNECTED, S.HOLDING, S.CLOSING):
        _expect[MediaWebDtmf] = (_state, [])
    if _state in (S.EARLY, S.CONNECTED, S.HOLDING, S.CLOSING):
        _expect[MediaDtmfUnsent] = (_state, [SipInfoDtmf])
    # the UA's failure on an inbound call after our 2xx (no ACK): the leg is lost, as SipLegClosed says
    if _state in (S.CONNECTED, S.HOLDING) and _build().direction is CallDirection.INBOUND:
        _expect[SipFailed] = _expect[SipLegClosed]
    # the attended transfer that named this call succeeded (transfer.replaced): REPLACED starts
    if _state in (S.CONNECTED, S.HOLDING):
        _expect[ReplacedByTransfer] = (_state, [StartTimer])
    elif _state is S.CLOSING:
        _expect[ReplacedByTransfer] = (_state, [])
    # the gateway stopping ends a call as its own media failure does (pickup refused, UPDATE answered,
    # ringing stopped, CANCEL, 480 or BYE; `ended` with `shutdown`), wherever that is allowed
    if MediaFailed in _expect:
        _expect[GatewayStopping] = _expect[MediaFailed]
    # an instance carries on a connected call of one that died: it waits for its browser (reconnect.py)
    if _state in (S.CONNECTED, S.HOLDING):
        _expect[TakenOver] = (_state, [StartTimer])

PAIRS = [(name, kind) for name in SITUATIONS for kind in EVENT_TYPES]


def test_every_state_is_walked() -> None:
    assert {state for state, *_ in SITUATIONS.values()} == set(CallState)


def test_table_names_only_known_states_and_events() -> None:
    for state, kind in TRANSITIONS:
        assert state in CallState
        assert kind in EVENT_TYPES


def test_every_table_entry_is_allowed_somewhere() -> None:
    """No dead entry: each (state, event) in the table is exercised as allowed by some situation."""
    allowed = {(state, kind) for state, _, _, expect in SITUATIONS.values() for kind in expect}
    assert set(TRANSITIONS) - allowed == set()


@pytest.mark.parametrize(("situation", "kind"), PAIRS, ids=[f"{s}-{k.__name__}" for s, k in PAIRS])
def test_pair(situation: str, kind: type, caplog: pytest.LogCaptureFixture) -> None:
    state, build, timer, expect = SITUATIONS[situation]
    call = build()
    assert call.state is state
    event = sample(kind, "s1", timer)
    if kind not in expect:
        with pytest.raises(IllegalEvent) as info:
            call.handle(event)
        assert kind.__name__ in str(info.value) and state.value in str(info.value)
        assert call.state is state, "a refused event must not change the state"
        return
    new_state, commands = expect[kind]
    with caplog.at_level(logging.INFO, logger="gateway.calls.machine"):
        out = call.handle(event)
    assert f.kinds(out) == commands
    assert call.state is new_state
    if new_state is not state:
        assert f"call=c1 {state.value} -> {new_state.value}" in caplog.text
    assert all(c.call_id == "c1" for c in out)
