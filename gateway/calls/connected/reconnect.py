"""Reconnect grace: a connected call outlives its browser for `reconnect_grace` seconds.

How it works: while connected (or holding), the web side can go away in two ways without the user
meaning to end the call. The WebSocket closes (a page reload, a laptop moving from Wi-Fi to wired):
the driver sends `WebDetached` instead of `WebDisconnected` when the session can come back (a login
with a session token); the call is then *away* while its web leg is still up (the socket went, the
media did not: both sides go on hearing each other, and a reattach without an offer takes it back as
it is). Or the web leg fails (ICE or DTLS lost, no RTP; the WebSocket there or not): the runtime sends
`MediaWebLost` instead of `MediaFailed`. Then the web leg is closed (`MediaDetachWeb`), the SIP leg is
left as it is (its dialog, its RTP: the SIP party hears silence). The RECONNECT timer starts at the
first of these (once: the grace counts from the first loss).

`WebReattach` (a session of the same login, or the carrying session itself) with a new WebRTC offer
takes the call back: the timer stops, the bridge builds a new web leg bridged to the same SIP leg
(`MediaRenewWeb`), and its answer goes to the browser with the call's hold state (`SendReattached`).
A pass-through call's media is the far end's (`WebReattach.passthrough`): the new offer goes to it in our
re-INVITE (escalation.py's path for the browser's own offer, `MediaSipReofferFromWeb`), and its 2xx
answer is the one sent back; a 491 (the far end's re-INVITE crossed it) sends the same offer again after
RFC 3261 §14.1's wait, the far end's meanwhile answered 491; another refusal ends the call (`media_failed`:
nothing else brings media back).
When the timer fires first, the call ends as it would have at once: BYE, reason `disconnected` (the
browser went) or `media_failed` (its media did not come back).

Flags, not states: the call stays connected or holding throughout (the SIP side sees no change, and
every SIP event keeps its meaning); `detached` (no browser to tell), `web_lost` (no web leg) and
`reattaching` (a new web leg is being made) qualify it. With `reconnect_grace` 0 both losses end the
call at once, as before.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from gateway.calls.boundary.commands import (
    MediaDetachWeb,
    MediaRenewWeb,
    MediaSipReofferFromWeb,
    SendReattached,
)
from gateway.calls.boundary.events import MediaFailed
from gateway.calls.connected import midcall
from gateway.calls.reasons import EndReason, local_reason
from gateway.calls.records import Attachment
from gateway.calls.states import Reinvite, TimerName

if TYPE_CHECKING:
    from gateway.calls.boundary.events import (
        MediaWebLost,
        MediaWebRenewed,
        TakenOver,
        TimerFired,
        WebDetached,
        WebDisconnected,
        WebReattach,
    )
    from gateway.calls.machine import CallMachine

logger = logging.getLogger(__name__)


def _hold_on(call: CallMachine, lost: Attachment) -> None:
    """Close the web leg (once) and start the grace (once). A take-back's offer waiting to go again after
    a 491 (escalation.sip_answered) is given up with the browser that made it."""
    if call.reinvite is Reinvite.RETRY_WAIT and call.reinvite_for_web:
        midcall.drop_web_offer(call)
    had_leg = not call.web_lost
    call.attach_to(lost)
    if had_leg:
        call.emit(MediaDetachWeb(call.call_id))
    if TimerName.RECONNECT not in call.timers:
        call.start_timer(TimerName.RECONNECT, call.reconnect_grace)


def detached(call: CallMachine, event: WebDetached) -> None:
    """The carrying session's WebSocket closed; it may come back."""
    call.require_session(event.session_id)
    if call.reconnect_grace <= 0:
        call.web_left()
        midcall.end_connected(call, local_reason(EndReason.DISCONNECTED))
        return
    call.web_left()  # nothing can be told to it: a reattach brings a session again
    if not call.web_lost and not call.reattaching:  # its web leg still up: the audio goes on meanwhile
        call.attach_to(Attachment.AWAY)
        if TimerName.RECONNECT not in call.timers:
            call.start_timer(TimerName.RECONNECT, call.reconnect_grace)
        logger.info(
            "call=%s session %s gone, its media not: the call waits %g s for it to come back",
            call.call_id, event.session_id, call.reconnect_grace,
        )  # fmt: skip
        return
    _hold_on(call, Attachment.DETACHED)
    logger.info(
        "call=%s session %s gone: the call waits %g s for it to come back",
        call.call_id,
        event.session_id,
        call.reconnect_grace,
    )


def taken_over(call: CallMachine, event: TakenOver) -> None:
    """This instance carries on the call of an instance that died (runtime/continuity/takeover.py): its SIP
    leg is ours now; its browser's socket and web leg died with that instance, and its login may take it
    back here, within a whole grace from now (the dead instance's timers died with it). An HTTP API
    session or a JSON-RPC peer made again here (`session_kept`) renews the media itself, as after a lost
    web leg, unless that media outlived the instance (`media_intact`: a pass-through call's flows end to
    end): then the call goes on as it was, its session here (a JSON-RPC peer that never comes back ends
    its calls when its own grace runs out: gateway/signaling/jsonrpc/resume.py)."""
    call.timers_lost()
    if event.session_kept:
        if call.attachment is Attachment.ATTACHED and event.media_intact:
            logger.info(
                "call=%s taken over from instance %s: its media goes on", call.call_id, event.from_instance
            )
            return
        if call.attachment is Attachment.ATTACHED:
            call.attach_to(Attachment.WEB_LOST)
    else:
        call.web_left()
        if call.attachment is not Attachment.DETACHED:
            call.attach_to(Attachment.DETACHED)
    call.start_timer(TimerName.RECONNECT, call.reconnect_grace)
    logger.info(
        "call=%s taken over from instance %s: waiting %g s for its browser",
        call.call_id,
        event.from_instance,
        call.reconnect_grace,
    )


def web_lost(call: CallMachine, event: MediaWebLost) -> None:
    """The web leg failed while the browser may reattach (its page renews the RTCPeerConnection)."""
    if call.reconnect_grace <= 0:
        midcall.media_failed(call, MediaFailed(event.reason))
        return
    if call.web_lost:
        return  # the leg was closed already: a late report of it
    _hold_on(call, Attachment.DETACHED if call.away else Attachment.WEB_LOST)  # (away: no session either)
    logger.info(
        "call=%s web media lost (%s): waiting for the browser to renew it", call.call_id, event.reason
    )


def reattach(call: CallMachine, event: WebReattach) -> None:
    """A browser takes the call back with a new offer: a new web leg on the same SIP leg."""
    if call.reattaching:
        raise call.illegal(event, "a reattach is already under way")
    if not call.detached:
        call.require_session(event.session_id)  # the carrying session renews its own media
    if event.sdp is None:
        _kept(call, event)
        return
    if event.passthrough and call.reinvite is not None:
        raise call.illegal(event, "a renegotiation is under way: take the call back once it is over")
    call.reattach_by(event.session_id, relayed=event.passthrough)
    call.cancel_timer(TimerName.RECONNECT)
    if event.passthrough:  # the far end's media: the new offer goes to it, its answer is `reattached`
        call.reinvite_to(Reinvite.PREPARING, for_web=True, hold=call.local_hold)
        call.emit(MediaSipReofferFromWeb(call.call_id, event.sdp))
    else:
        call.emit(MediaRenewWeb(call.call_id, event.sdp))
    logger.info("call=%s reattached by session %s", call.call_id, event.session_id)


def _kept(call: CallMachine, event: WebReattach) -> None:
    """A reattach without an offer: the browser kept its media, which flows end to end (a pass-through
    or peer-to-peer call's) or still through its web leg here (away: only its socket went), so only its
    session is back; nothing is asked of the far end."""
    if not event.passthrough and not call.away:
        raise call.illegal(event, "this call's media goes through the gateway: a reattach needs an offer")
    if call.reinvite is not None:  # (the browser may have been asked something its page never saw)
        raise call.illegal(event, "a renegotiation is under way: take the call back once it is over")
    call.reattach_by(event.session_id, relayed=True)
    call.cancel_timer(TimerName.RECONNECT)
    call.attach_to(Attachment.ATTACHED)
    call.emit(SendReattached(event.session_id, call.call_id, None, call.local_hold, call.remote_hold))
    logger.info(
        "call=%s reattached by session %s: its media went on end to end", call.call_id, event.session_id
    )


def renewed(call: CallMachine, event: MediaWebRenewed) -> None:
    """The new web leg's answer: the browser has the call back, with its hold state."""
    if not call.reattaching:
        return  # the browser went again meanwhile (a WebDetached reset it): its answer is stale
    call.attach_to(Attachment.ATTACHED)
    if call.session_id is not None and not call.web_gone:
        call.emit(SendReattached(call.session_id, call.call_id, event.sdp, call.local_hold, call.remote_hold))


def passthrough_refused(call: CallMachine, why: str) -> None:
    """A pass-through call's far end did not take the browser's new offer (escalation.py): the browser
    has no media with it, and no other way back: the call ends as a lost web leg's does."""
    midcall.end_connected(
        call, local_reason(EndReason.MEDIA_FAILED, message=f"The call could not be taken back: {why}")
    )


def disconnected(call: CallMachine, event: WebDisconnected) -> None:
    """WebDisconnected on a connected call: as before, or (a detached call at shutdown) BYE now."""
    if call.detached and event.session_id == call.session_id:
        midcall.end_connected(call, local_reason(EndReason.DISCONNECTED))
        return
    midcall.disconnected(call, event)


def grace_expired(call: CallMachine, event: TimerFired) -> None:
    """Nobody took the call back in time: it ends as it would have without the grace."""
    if call.detached:
        logger.info("call=%s the browser did not come back in time", call.call_id)
        midcall.end_connected(call, local_reason(EndReason.DISCONNECTED))
        return
    seconds = call.reconnect_grace
    message = f"The browser's audio was lost and did not come back within {seconds:g} seconds"
    midcall.end_connected(call, local_reason(EndReason.MEDIA_FAILED, message=message))
