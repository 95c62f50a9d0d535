"""The SIP party's re-INVITE that adds video to a connected call or drops it (escalation, issue 19).

Such a re-offer cannot be answered by the gateway alone: the browser must take (or turn down) the video
in a new offer/answer of its own (RFC 8829 §5.2.2, a subsequent offer on the same ICE/DTLS). The bridge
says so by replying to ``MediaSipUpdate`` with ``MediaWebReofferReady`` instead of an answer:

    SipReinviteReceived -> MediaSipUpdate -> MediaWebReofferReady -> SendWebOffer (`offer` event),
    WEB_REOFFER timer (reinvite ASKING_WEB) -> WebSdpAnswer (`answer {call_id, sdp}`) -> MediaWebReanswer
    -> MediaSipAnswerReady -> 200 with the answer (midcall.reanswer_ready)

The re-INVITE's final response waits for the browser (RFC 3261 §14.2 lets the UAS take its time; the
SIP party's transaction keeps it alive with its retransmissions). WEB_REOFFER's expiry, or a browser the
call cannot reach (detached, gone), refuses the re-INVITE with 488 and puts the web leg back
(``MediaCancelWebReoffer``): the session stays as it was (RFC 3261 §14.2), audio only. Another re-INVITE
of theirs meanwhile gets 500 with Retry-After, ours waits (``midcall.advance``), as while answering.

The browser's own new offer (`offer {call_id, sdp}` mid-call: its camera added or stopped) goes the
other way round: the SIP side is asked first, with our re-INVITE, and the browser is answered once its
2xx says what the video became (RFC 3264 §8: the SIP side may take the new video or turn it down):

    WebReoffer -> MediaSipReofferFromWeb -> MediaSipOfferReady -> SipReinvite (reinvite SENT, for_web)
    -> SipReinviteResult 2xx -> MediaWebAnswerFromSip -> MediaWebReofferAnswered -> SendWebReofferAnswer

Nothing reaches the web leg before that 2xx: a refusal (491, 488, any failure; MediaWebReofferRefused
when the bridge cannot make a SIP offer of it) leaves the session as it was (RFC 3261 §14.1) and the
browser gets `error {code: renegotiation_failed}` (it rolls its offer back). Unlike the web user's
hold, a 491 is not retried: the browser decides whether to offer again. 408 and 481 end the call as
for any re-INVITE of ours. While any re-INVITE is under way (or the call holds a wish of the user's
queued), the browser's offer is refused as an illegal event (`conflict`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from gateway.calls.boundary.commands import (
    MediaCancelSipReoffer,
    MediaCancelWebReoffer,
    MediaSipReofferFromWeb,
    MediaWebAnswerFromSip,
    MediaWebReanswer,
    NotifyError,
    SendWebOffer,
    SendWebReofferAnswer,
    SipRespondReinvite,
)
from gateway.calls.boundary.events import (
    MediaWebRenewed,
    MediaWebReofferAnswered,
    MediaWebReofferReady,
    MediaWebReofferRefused,
    SipReinviteResult,
    TimerFired,
    WebReoffer,
    WebSdpAnswer,
)
from gateway.calls.connected import midcall, reconnect
from gateway.calls.reasons import EndReason, local_reason, phrase
from gateway.calls.states import Reinvite, TimerName

if TYPE_CHECKING:
    from gateway.calls.machine import CallMachine

RELAY_RETRIES: Final = 3  # a pass-through call's take-back offer sent again after 491s, at most


def web_reoffer_ready(call: CallMachine, event: MediaWebReofferReady) -> None:
    """The bridge's new offer for the browser: sent as `offer`, its answer awaited (WEB_REOFFER)."""
    if call.reinvite is not Reinvite.ANSWERING:
        raise call.illegal(event, "no re-INVITE of the SIP party is being answered")
    if call.session_id is None or call.web_gone or call.detached:
        _refuse(call, "no browser to take the new media")
        return
    call.reinvite_to(Reinvite.ASKING_WEB)
    call.emit(SendWebOffer(call.session_id, call.call_id, event.sdp))
    call.start_timer(TimerName.WEB_REOFFER, call.settings.web_reoffer_timeout)


def web_reanswer(call: CallMachine, event: WebSdpAnswer) -> None:
    """The browser's answer to that offer: the bridge makes the re-INVITE's answer from it."""
    call.require_session(event.session_id)
    if call.reinvite is not Reinvite.ASKING_WEB:
        raise call.illegal(event, "no offer of the gateway awaits the browser's answer")
    call.cancel_timer(TimerName.WEB_REOFFER)
    call.reinvite_to(Reinvite.ANSWERING)
    call.emit(MediaWebReanswer(call.call_id, event.sdp))


def web_reoffer_expired(call: CallMachine, event: TimerFired) -> None:
    if call.reinvite is Reinvite.ASKING_WEB:
        _refuse(call, "the browser did not answer in time")


def _refuse(call: CallMachine, why: str) -> None:
    call.reinvite_to(None)
    call.emit(MediaCancelWebReoffer(call.call_id))
    call.emit(SipRespondReinvite(call.call_id, 488, phrase(488, why)))
    midcall.settle(call)


# --- the browser's own new offer ---------------------------------------------------------------------


def web_reoffer(call: CallMachine, event: WebReoffer) -> None:
    """The browser offers again mid-call (video added or dropped): the SIP side is re-offered first."""
    call.require_session(event.session_id)
    if call.reinvite is not None or call.want_local_hold != call.local_hold:
        raise call.illegal(event, "a renegotiation is under way: offer again once it is over")
    call.reinvite_to(Reinvite.PREPARING, for_web=True, hold=call.local_hold)  # the hold stays as it is
    call.emit(MediaSipReofferFromWeb(call.call_id, event.sdp))


def web_reoffer_refused(call: CallMachine, event: MediaWebReofferRefused) -> None:
    """The bridge could not make a SIP offer of the browser's: it is told, nothing changed."""
    if call.reinvite is not Reinvite.PREPARING or not call.reinvite_for_web:
        raise call.illegal(event, "no offer of the browser is being prepared")
    call.reinvite_to(None, for_web=False)
    if call.relaying:  # a pass-through call taken back (reconnect.reattach)
        reconnect.passthrough_refused(call, event.reason)
        return
    _tell_refused(call, f"The new media cannot be offered to the other side: {event.reason}")
    midcall.settle(call)


def reinvite_result(call: CallMachine, event: SipReinviteResult) -> None:
    """The final response to our re-INVITE: ``sip_answered`` when it carried the browser's offer."""
    if call.reinvite is Reinvite.SENT and call.reinvite_for_web:
        sip_answered(call, event)
    else:
        midcall.reinvite_result(call, event)


def sip_answered(call: CallMachine, event: SipReinviteResult) -> None:
    """Our re-INVITE with the browser's offer got its final response. A 491 (the far end's own re-INVITE
    crossed it) on a pass-through call being taken back: the same offer again after RFC 3261 §14.1's
    wait (midcall.retry_reinvite), RELAY_RETRIES times at most: nothing else brings its media back."""
    if event.status == 491 and call.relaying and call.renegotiation.tries < RELAY_RETRIES:
        call.reinvite_to(Reinvite.RETRY_WAIT, tries=call.renegotiation.tries + 1)
        call.start_timer(TimerName.REINVITE_RETRY, midcall.glare_wait(call))
        return
    call.reinvite_to(None, for_web=False)
    if 200 <= event.status < 300 and event.sdp is not None:
        call.gave_sip(call.reinvite_offer)
        call.emit(MediaWebAnswerFromSip(call.call_id, event.sdp))
        midcall.settle(call)
        return
    call.emit(MediaCancelSipReoffer(call.call_id))
    if event.status in (408, 481):  # the dialog is gone (RFC 3261 §14.1, §12.2.1.2)
        midcall.end_connected(call, local_reason(EndReason.CONNECTION_LOST, event.status))
        return
    if call.relaying:  # a pass-through call taken back (reconnect.reattach)
        reconnect.passthrough_refused(call, f"the other side refused the new media (SIP {event.status})")
        return
    what = "answered without SDP" if 200 <= event.status < 300 else f"refused it (SIP {event.status})"
    status = None if 200 <= event.status < 300 else event.status
    _tell_refused(call, f"The other side {what}: the call goes on as it was", status)
    midcall.settle(call)


def web_reoffer_answered(call: CallMachine, event: MediaWebReofferAnswered) -> None:
    """The browser's answer, now that the SIP side took (or turned down) its new media."""
    if call.relaying:  # a pass-through call taken back: the far end's answer is the browser's
        reconnect.renewed(call, MediaWebRenewed(event.sdp))
        return
    if call.session_id is not None and not call.web_gone:
        call.emit(SendWebReofferAnswer(call.session_id, call.call_id, event.sdp))


def _tell_refused(call: CallMachine, message: str, sip_status: int | None = None) -> None:
    if call.session_id is not None and not call.web_gone:
        code = EndReason.RENEGOTIATION_FAILED.value
        call.emit(NotifyError(call.session_id, call.call_id, code, message, sip_status=sip_status))
