"""`MediaSide`: one call's media as the runtime sees it: its `CallMedia`, the media commands, its events.

`CreateBridge` makes the call's media (a `BridgedMedia` from the driver, or `PassthroughMedia` on a
pass-through route; a pickup of a ringing pass-through call swaps in a `BridgedMedia`); each other media command is one handler of a dispatch table, awaited, and its
result fed back as the call's next event (`MediaSipOfferReady`...; an SDP or media error becomes
`MediaFailed`, with the SIP status an `SdpError` or a `MediaError` names). The media's own events
(ICE, DTLS, DTMF, inactivity) become call events here too, and the browser's trickled candidates wait
until the web leg has a description. This module owns a call's media side; it imports the call layer's
commands and events, the media package's events and errors, and the runtime's `CallMedia`,
`PassthroughMedia`, `SipSide` and dispatch table, never the driver.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Final

import sdp
from gateway.calls import CallError
from gateway.calls.boundary import commands as cmd
from gateway.calls.boundary import events as ev
from gateway.calls.states import CallDirection, CallState
from gateway.calls.view import CallView
from gateway.media.errors import DtmfError, MediaError
from gateway.media.events import (
    DtlsFailed,
    IceFailed,
    KeyframeWanted,
    Leg,
    MediaEvent,
    MediaInactive,
    WebMediaLost,
)
from gateway.media.video.keyframe import MEDIA_CONTROL, picture_fast_update
from gateway.runtime.call_media import CallMedia
from gateway.runtime.dispatch import Table
from gateway.runtime.host import RuntimeHost
from gateway.runtime.offers import HttpSession
from gateway.runtime.passthrough import InfoSender, PassthroughMedia
from gateway.runtime.sip_side import SipSide
from gateway.runtime.translate import media_to_call_event

logger = logging.getLogger(__name__)


class MediaSide:
    def __init__(
        self,
        call_id: str,
        direction: CallDirection,
        host: RuntimeHost,
        sip: SipSide,
        feed: Callable[[ev.Event], None],
        view: Callable[[], CallView | None],
        send_trickle: InfoSender,
    ) -> None:
        self.call_id = call_id
        self.direction = direction
        self._host = host
        self.sip = sip
        self._feed = feed
        self._view = view
        self._send_trickle = send_trickle
        self.bridge: CallMedia | None = None  # the call's media: a MediaBridge, or pass-through
        self._candidates: list[sdp.IceCandidateInit | None] = []
        self._web_ready = False

    def on_event(self, event: MediaEvent) -> None:
        if isinstance(
            event, KeyframeWanted
        ):  # RFC 5168 §3: a keyframe asked of a phone without RTCP feedback
            self.sip.send_info(MEDIA_CONTROL, picture_fast_update())
            return
        if isinstance(event, WebMediaLost):  # reported (event, metric); the call goes on meanwhile
            self._host.media_lost(self.call_id, event)
            return
        lost = self._web_lost(event)
        if lost is not None:
            self._feed(ev.MediaWebLost(lost))
            return
        translated = media_to_call_event(event)
        if translated is not None:
            self._feed(translated)
        else:
            logger.debug("call=%s media %r", self.call_id, event)

    def _web_lost(self, event: MediaEvent) -> str | None:
        """Why the web leg of a connected call is lost, when its browser may renew it; else None (the
        event means what it always did)."""
        closed = False  # the browser closed its RTCPeerConnection itself
        match event:
            case IceFailed(reason=reason):
                why = reason
            case DtlsFailed(reason=reason, leg=Leg.WEB, closed_by_peer=closed):
                why = reason
            case MediaInactive(leg=Leg.WEB, seconds=seconds, held=False):
                why = f"no audio from the browser for {seconds:g} s"
            case _:
                return None
        call = self._view()
        if call is None or not call.may_renew_web or not self._host.resumable(self.call_id, closed):
            return None
        return why

    async def execute(self, command: cmd.MediaCommand) -> None:
        """Carry out a media command; its result (or failure) is fed back as the call's next event."""
        if isinstance(command, cmd.CreateBridge | cmd.CloseBridge):
            await (self._create if isinstance(command, cmd.CreateBridge) else self._close)()
            return
        handler = _REPLIES.get(type(command))
        if handler is None:
            raise CallError(f"call {self.call_id}: unknown command {command!r}")
        try:
            reply = await handler(self, command)
        except (sdp.SdpError, MediaError) as exc:
            status = exc.sip_status  # sdp's, a pass-through's, no port pair's (503)...
            logger.info("call=%s %s failed: %s", self.call_id, type(command).__name__, exc)
            self._feed(ev.MediaFailed(str(exc) or type(exc).__name__, _failure_status(status)))
            return
        if reply is not None:
            self._feed(reply)

    def _media(self, command: cmd.MediaCommand) -> CallMedia:
        if self.bridge is None:
            raise CallError(f"call {self.call_id}: {type(command).__name__} without a bridge")
        return self.bridge

    async def _create(self) -> None:
        if self.bridge is None and self._host.passthrough(self.call_id):
            self.bridge = PassthroughMedia(self.call_id, self._send_trickle)
        elif self.bridge is None:
            self.bridge = self._host.new_bridge(self.call_id, self.on_event)

    def passthrough_media(self) -> PassthroughMedia:
        """The call's pass-through media, made for a call taken over from a dead instance (its SIP side's
        state comes from the handover: runtime/continuity/takeover.py)."""
        media = PassthroughMedia(self.call_id, self._send_trickle)
        self.bridge = media
        self._web_ready = True  # the dialog is confirmed: the browser's trickled candidates go as INFO
        return media

    async def _close(self) -> None:
        if self.bridge is not None:
            await self.bridge.close()

    async def _offer_to_sip(self, command: cmd.MediaOfferToSip) -> ev.Event | None:
        media = self._media(command)
        deliver = None if media.passes_through else self._host.early_answer(self.call_id)
        if deliver is not None:
            return await self._answer_web_early(media, command.web_sdp, deliver)
        return ev.MediaSipOfferReady(await media.offer_to_sip(command.web_sdp))

    async def _answer_from_sip(self, command: cmd.MediaAnswerFromSip) -> ev.Event | None:
        media = self._media(command)
        if media.awaiting_reanswer:  # the answer to our hold/resume re-INVITE
            await media.answer_to_reoffer(command.sip_sdp)
            return None
        if self.direction is CallDirection.INBOUND:
            logger.warning("call=%s SIP answer with no re-offer out: ignored", self.call_id)
            return None
        answer = await media.answer_from_sip(command.sip_sdp)
        await self._web_became_ready(media)
        return ev.MediaWebAnswerReady(answer)

    async def _offer_to_web(self, command: cmd.MediaOfferToWeb) -> ev.Event | None:
        media = self._media(command)
        offer = await media.offer_to_web(command.sip_sdp, self.sip.family())
        await self._web_became_ready(media)
        return ev.MediaWebOfferReady(offer)

    async def _answer_from_web(self, command: cmd.MediaAnswerFromWeb) -> ev.Event | None:
        return ev.MediaSipAnswerReady(await self._media(command).answer_from_web(command.web_sdp))

    async def _sip_update(self, command: cmd.MediaSipUpdate) -> ev.Event | None:
        media = self._media(command)
        web_offer = await self._reoffer_web(media, command.sip_sdp)
        if web_offer is not None:  # video added or dropped: the browser answers first
            return ev.MediaWebReofferReady(web_offer)
        return ev.MediaSipAnswerReady(await media.update_from_sip(command.sip_sdp))

    async def _web_reanswer(self, command: cmd.MediaWebReanswer) -> ev.Event | None:
        reanswer = await self._media(command).reanswer_from_web(command.web_sdp)
        return ev.MediaSipAnswerReady(reanswer) if reanswer is not None else None

    async def _cancel_web_reoffer(self, command: cmd.MediaCancelWebReoffer) -> ev.Event | None:
        await self._media(command).cancel_web_reoffer()
        return None

    async def _sip_reoffer_from_web(self, command: cmd.MediaSipReofferFromWeb) -> ev.Event | None:
        media = self._media(command)  # the browser adds or drops video itself
        try:
            return ev.MediaSipOfferReady(await media.reoffer_sip_for_web(command.web_sdp))
        except (sdp.SdpError, MediaError) as exc:
            logger.info("call=%s the browser's new offer cannot go to the SIP side: %s", self.call_id, exc)
            return ev.MediaWebReofferRefused(str(exc) or type(exc).__name__)

    async def _web_answer_from_sip(self, command: cmd.MediaWebAnswerFromSip) -> ev.Event | None:
        answered = await self._media(command).answer_web_reoffer(command.sip_sdp)
        return ev.MediaWebReofferAnswered(answered) if answered is not None else None

    async def _cancel_sip_reoffer(self, command: cmd.MediaCancelSipReoffer) -> ev.Event | None:
        self._media(command).cancel_sip_reoffer()
        return None

    async def _sip_pickup(self, command: cmd.MediaSipPickup) -> ev.Event | None:
        media = self._media(command)
        web_offer = media.offer_for_pickup()
        if web_offer is not None:  # passed through so far: the media comes back to the gateway
            return await self._pickup_bridged(media, web_offer, command.sip_sdp)
        sip_answer, web_answer = await media.pickup_from_sip(command.sip_sdp)  # call pickup, RFC 3891
        await self._web_became_ready(media)
        return ev.MediaPickupReady(sip_answer, web_answer)

    async def _pickup_bridged(self, passed: CallMedia, web_offer: str, sip_sdp: str | None) -> ev.Event:
        """A pass-through call picked up while it rings (RFC 3891 §3): the picking phone speaks plain RTP
        as often as not and cannot take the browser's offer, so the media comes back into a bridge of the
        gateway's, as FreeSWITCH's `bypass_media` and Asterisk's `direct_media` bring it back for a pickup
        or a transfer. The bridge takes the browser's still unanswered offer, answers the picking phone's
        offer (an offerless pickup's 200 carries the bridge's plain RTP offer) and the browser; from then
        on the call is bridged. Refused (488...), the call rings on, passed through as before."""
        bridge = self._host.new_bridge(self.call_id, self.on_event)
        try:
            await bridge.offer_to_sip(web_offer)
            sip_answer, web_answer = await bridge.pickup_from_sip(sip_sdp)
        except BaseException:
            await bridge.close()
            raise
        self.bridge = bridge
        await passed.close()
        logger.info("call=%s pass-through call picked up: its media comes through the gateway", self.call_id)
        await self._web_became_ready(bridge)  # the browser's candidates held while it rang go to the bridge
        return ev.MediaPickupReady(sip_answer, web_answer)

    async def _sip_reoffer(self, command: cmd.MediaSipReoffer) -> ev.Event | None:
        # Our last SIP SDP (or every codec: full), sendonly or sendrecv (RFC 3264 §8.4); the media
        # gates forwarding once the answer comes (_answer_from_sip).
        offer = await self._media(command).reoffer_to_sip(command.hold, full=command.full)
        return ev.MediaSipOfferReady(offer)

    async def _detach_web(self, command: cmd.MediaDetachWeb) -> ev.Event | None:
        await self._media(command).detach_web()
        return None

    async def _renew_web(self, command: cmd.MediaRenewWeb) -> ev.Event | None:
        media = self._media(command)
        answer = await media.renew_web(command.web_sdp)
        await self._web_became_ready(media)
        return ev.MediaWebRenewed(answer)

    async def _drop_reoffer(self, command: cmd.MediaDropReoffer) -> ev.Event | None:
        self._media(command).drop_reoffer()
        return None

    async def _send_text(self, command: cmd.MediaSendText) -> ev.Event | None:
        if not self._media(command).send_text(command.body):
            logger.debug("call=%s no open data channel: the text goes to the session only", self.call_id)
        return None

    async def _send_dtmf(self, command: cmd.MediaSendDtmf) -> ev.Event | None:
        digit, duration = command.digit, command.duration_ms
        try:
            self._media(command).send_dtmf(digit, Leg.SIP, duration_ms=duration)
        except DtmfError:
            return ev.MediaDtmfUnsent(digit, duration)  # no telephone-event: the call says what then
        return None

    async def _answer_web_early(
        self, bridge: CallMedia, web_sdp: str, deliver: Callable[[str], None]
    ) -> ev.Event:
        """The browser's answer as soon as it exists (before the INVITE: no SIP event can race it), then
        our SIP offer. The SIP leg's sockets are opened and its offer written after the answer went out
        (the API's response is written in the loop iteration ``sleep(0)`` gives way to), unless the
        browser's video codec must be our SIP offer's first; its ports are leased before, so a gateway
        out of ports still fails the offer itself. The worker takes no other input of this call in
        between: what comes meanwhile (a trickled candidate, a hang-up before the INVITE went out) is
        queued ahead of MediaSipOfferReady and handled as it was while the INVITE was being built."""
        offer = None if bridge.take_web_offer(web_sdp) else await bridge.sip_offer()
        deliver(await bridge.answer_web_first())
        await self._web_became_ready(bridge)
        await asyncio.sleep(0)
        return ev.MediaSipOfferReady(offer if offer is not None else await bridge.sip_offer())

    async def _reoffer_web(self, bridge: CallMedia, sip_sdp: str) -> str | None:
        """The browser's new offer when the SIP re-offer adds or drops video (escalation), or, passed
        through, changes the ICE session; None: answer at once (no change, or a browser that cannot be
        offered again: the video is turned down). An HTTP API or WHIP client only ever offers: it is not
        asked (the SIP party would wait `web_reoffer_timeout` for a 488)."""
        view = self._view()
        if view is None or view.state not in (CallState.CONNECTED, CallState.HOLDING):
            return None  # an early dialog's UPDATE: nobody may be asked before the answer
        session = self._host.session(view.session_id) if view.session_id else None
        if isinstance(session, HttpSession):
            return None
        try:
            return await bridge.reoffer_web_for_sip(sip_sdp)
        except (sdp.SdpError, MediaError) as exc:
            logger.info("call=%s the browser cannot be offered the new video: %s", self.call_id, exc)
            await bridge.cancel_web_reoffer()
            return None

    async def _web_became_ready(self, bridge: CallMedia) -> None:
        self._web_ready = True
        pending, self._candidates = self._candidates, []
        for candidate in pending:
            await self._add_candidate(bridge, candidate)

    async def candidate(self, candidate: sdp.IceCandidateInit | None) -> None:
        if self.bridge is None or not self._web_ready:
            self._candidates.append(candidate)  # the web leg has no description yet
            return
        await self._add_candidate(self.bridge, candidate)

    async def _add_candidate(self, bridge: CallMedia, candidate: sdp.IceCandidateInit | None) -> None:
        try:
            await bridge.add_web_candidate(
                candidate if candidate is not None else sdp.IceCandidateInit(None, sdp_mline_index=0)
            )
        except (MediaError, sdp.SdpError, ValueError) as exc:
            logger.info("call=%s browser candidate refused: %s", self.call_id, exc)


# The media commands whose result (or failure) is fed back as the call's next event.
_REPLIES: Final = Table[MediaSide, Coroutine[Any, Any, ev.Event | None]]()
_REPLIES.add(cmd.MediaOfferToSip, MediaSide._offer_to_sip)
_REPLIES.add(cmd.MediaAnswerFromSip, MediaSide._answer_from_sip)
_REPLIES.add(cmd.MediaOfferToWeb, MediaSide._offer_to_web)
_REPLIES.add(cmd.MediaAnswerFromWeb, MediaSide._answer_from_web)
_REPLIES.add(cmd.MediaSipUpdate, MediaSide._sip_update)
_REPLIES.add(cmd.MediaWebReanswer, MediaSide._web_reanswer)
_REPLIES.add(cmd.MediaCancelWebReoffer, MediaSide._cancel_web_reoffer)
_REPLIES.add(cmd.MediaSipReofferFromWeb, MediaSide._sip_reoffer_from_web)
_REPLIES.add(cmd.MediaWebAnswerFromSip, MediaSide._web_answer_from_sip)
_REPLIES.add(cmd.MediaCancelSipReoffer, MediaSide._cancel_sip_reoffer)
_REPLIES.add(cmd.MediaSipPickup, MediaSide._sip_pickup)
_REPLIES.add(cmd.MediaSipReoffer, MediaSide._sip_reoffer)
_REPLIES.add(cmd.MediaDetachWeb, MediaSide._detach_web)
_REPLIES.add(cmd.MediaRenewWeb, MediaSide._renew_web)
_REPLIES.add(cmd.MediaDropReoffer, MediaSide._drop_reoffer)
_REPLIES.add(cmd.MediaSendText, MediaSide._send_text)
_REPLIES.add(cmd.MediaSendDtmf, MediaSide._send_dtmf)


def _failure_status(status: int | None) -> int | None:
    return status if status is not None and 400 <= status <= 699 else None
