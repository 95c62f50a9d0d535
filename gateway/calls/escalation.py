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
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.calls import midcall
from gateway.calls.commands import MediaCancelWebReoffer, MediaWebReanswer, SendWebOffer, SipRespondReinvite
from gateway.calls.events import MediaWebReofferReady, TimerFired, WebSdpAnswer
from gateway.calls.reasons import phrase
from gateway.calls.states import Reinvite, TimerName

if TYPE_CHECKING:
    from gateway.calls.machine import CallMachine


def web_reoffer_ready(call: CallMachine, event: MediaWebReofferReady) -> None:
    """The bridge's new offer for the browser: sent as `offer`, its answer awaited (WEB_REOFFER)."""
    if call.reinvite is not Reinvite.ANSWERING:
        raise call.illegal(event, "no re-INVITE of the SIP party is being answered")
    if call.session_id is None or call.web_gone or call.detached:
        _refuse(call, "no browser to take the new media")
        return
    call.reinvite = Reinvite.ASKING_WEB
    call.emit(SendWebOffer(call.session_id, call.call_id, event.sdp))
    call.start_timer(TimerName.WEB_REOFFER, call.settings.web_reoffer_timeout)


def web_reanswer(call: CallMachine, event: WebSdpAnswer) -> None:
    """The browser's answer to that offer: the bridge makes the re-INVITE's answer from it."""
    call.require_session(event.session_id)
    if call.reinvite is not Reinvite.ASKING_WEB:
        raise call.illegal(event, "no offer of the gateway awaits the browser's answer")
    call.cancel_timer(TimerName.WEB_REOFFER)
    call.reinvite = Reinvite.ANSWERING
    call.emit(MediaWebReanswer(call.call_id, event.sdp))


def web_reoffer_expired(call: CallMachine, event: TimerFired) -> None:
    if call.reinvite is Reinvite.ASKING_WEB:
        _refuse(call, "the browser did not answer in time")


def _refuse(call: CallMachine, why: str) -> None:
    call.reinvite = None
    call.emit(MediaCancelWebReoffer(call.call_id))
    call.emit(SipRespondReinvite(call.call_id, 488, phrase(488, why)))
    midcall.settle(call)
