"""`CallRuntime`: carries out one call's commands and feeds back what happens, in one task.

How it works: every input of the call (an event from the browser, the SIP UA, the media bridge or a
timer; a trickled browser candidate) goes onto the call's queue. One worker task takes them in order,
hands events to the `CallRegistry` and runs the commands that come back, one after the other:
SIP commands through the UA's call object, media commands on the call's `MediaBridge` (their
results are queued as the next events: `MediaSipOfferReady`...), browser commands through the
session's `SessionSink.send_event`, timers with `loop.call_later`. Requests that wait on the
network (BYE, re-INVITE, INFO) run as background tasks and queue their outcome.

Supervision: an event the machine refuses (`CallError`) is logged and dropped (or reported to the
browser request that caused it); any other exception is logged with `call=<id>` and ends this call
only: the machine is asked to fail the call (`MediaFailed`), and if that fails too the call is
torn down directly (SIP CANCEL/BYE/500, bridge closed, browsers told `ended`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, get_args

import sdp
from gateway.calls import CallError, CallRegistry, CallState, TimerName
from gateway.calls import commands as cmd
from gateway.calls import events as ev
from gateway.calls.machine import CallMachine
from gateway.calls.states import CallDirection
from gateway.config.values import DtmfMode
from gateway.media.bridge import MediaBridge
from gateway.media.dtmf import DTMF_RELAY, format_dtmf_relay
from gateway.media.errors import DtmfError, MediaError
from gateway.media.events import (
    DtlsFailed,
    DtmfReceived,
    IceFailed,
    KeyframeWanted,
    Leg,
    MediaEvent,
    MediaInactive,
)
from gateway.media.keyframe import MEDIA_CONTROL, is_picture_fast_update, picture_fast_update
from gateway.ops import logctx
from gateway.runtime.call_media import CallMedia
from gateway.runtime.dispatch import Table
from gateway.runtime.passthrough import TRICKLE_PACKAGE, PassthroughError, PassthroughMedia
from gateway.runtime.sip_side import SipSide
from gateway.runtime.translate import SignalMapper, media_to_call_event
from gateway.signaling import events as sig
from gateway.signaling.service import SessionSink
from gateway.sip import UserAgent
from gateway.sip.ua_calls import Call as SipCall
from gateway.sip.ua_calls import CallState as SipCallState

logger = logging.getLogger(__name__)


class RuntimeHost(Protocol):
    """What a call's runtime needs from the driver."""

    registry: CallRegistry
    dtmf_mode: DtmfMode

    @property
    def ua(self) -> UserAgent: ...

    def session(self, session_id: str) -> SessionSink | None: ...

    def new_bridge(self, call_id: str, on_event: Callable[[MediaEvent], None]) -> CallMedia: ...

    def passthrough(self, call_id: str) -> bool:
        """Whether the call's route passes the browser's media through (gateway/config/routes.py)."""
        ...

    def runtime_done(self, runtime: CallRuntime) -> None: ...

    def sip_call(self, call_id: str) -> SipCall | None:
        """The SIP leg of another call (an attended transfer's consultation call)."""
        ...

    def transfer_done(self, runtime: CallRuntime, consult_call_id: str | None) -> None:
        """This call was transferred: end the consultation call that was replaced, if any."""
        ...

    def transfer_outcome(self, call_id: str, status: int, phrase: str) -> None:
        """How the call placed for call `call_id`'s REFER goes (a 1xx, 200, or its failure)."""
        ...

    def resumable(self, call_id: str) -> bool:
        """Whether the browser carrying the call may come back for it (web_auth.reconnect_grace, a
        session of a login that can reconnect): a web-leg failure then waits for it (MediaWebLost)."""
        ...

    def early_answer(self, call_id: str) -> Callable[[str], None] | None:
        """Where the WebRTC answer of an outbound call goes as soon as it exists (before the SIP side
        answered): the HTTP offer API's sessions want it at once; None: the usual answer on 18x/2xx."""
        ...


@dataclass(slots=True)
class _Input:
    event: ev.Event | None = None
    commands: list[cmd.Command] = field(default_factory=list)
    candidate: tuple[sdp.IceCandidateInit | None] | None = None
    reply: asyncio.Future[None] | None = None


class CallRuntime:
    def __init__(self, call_id: str, direction: CallDirection, host: RuntimeHost) -> None:
        self.call_id = call_id
        self.direction = direction
        self._host = host
        self.sip = SipSide(call_id, direction, self._feed_sip, self._spawn, lambda: host.ua, host.sip_call)
        self.transfer_of: str | None = None  # the call whose REFER this call carries out
        self.bridge: CallMedia | None = None  # the call's media: a MediaBridge, or pass-through
        self._signals = SignalMapper(direction)
        self._queue: asyncio.Queue[_Input] = asyncio.Queue()
        self._timers: dict[TimerName, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._candidates: list[sdp.IceCandidateInit | None] = []
        self._trickle_held: list[tuple[str, str, tuple[tuple[str, str], ...]]] = []  # INFO before the ACK
        self._web_ready = False
        self._early_web = False  # the web leg was answered before the SIP side (early_answer)
        self._finished = False
        self.machine: CallMachine | None = None  # set by the driver: read after the end (call records)
        self.web_user: str | None = None  # the user carrying the call (dialed it, or answered it)
        # the media figures when the bridge closed (gateway/ops/records.py): per leg, transcoding, packets
        self.media_quality: dict[str, dict[str, object]] | None = None
        self.transcoding = False
        self.media_packets = (0, 0)  # (forwarded by the fast lane, forwarded in all)
        # the call's ids on its log lines: the context the driver bound, or one of its own
        self.log_context = logctx.current() or logctx.CallContext()
        if self.log_context.call_id is None:
            logctx.set_call_id(self.log_context, call_id)
        self._worker = asyncio.get_running_loop().create_task(self._run(), name=f"call-{call_id}")

    def __repr__(self) -> str:
        return f"<CallRuntime {self.call_id} {self.direction.value}>"

    @property
    def finished(self) -> bool:
        return self._finished

    # --- inputs ------------------------------------------------------------------------------------
    def feed_nowait(self, event: ev.Event) -> None:
        if not self._finished:
            self._queue.put_nowait(_Input(event=event))

    def _feed_sip(self, event: ev.Event) -> None:
        """An event of the SIP leg; a REFER is judged by the policy of the web user carrying the call."""
        media = self.bridge
        if (
            isinstance(event, ev.SipInfoReceived)
            and media is not None
            and event.content_type == sdp.TRICKLE_MEDIA_TYPE
            and self._trickle_from_sip(media, event.body)
        ):
            return
        if isinstance(event, ev.SipInfoReceived) and is_picture_fast_update(event.content_type, event.body):
            video = media.video if media is not None else None
            if video is not None:  # RFC 5168: the SIP side wants a keyframe of the browser's video
                video.keyframe_from_info()
            return
        if isinstance(event, ev.SipReferReceived) and event.user is None:
            registry = self._host.registry
            machine = registry.get(self.call_id) if self.call_id in registry else None
            session = self._host.session(machine.session_id) if machine and machine.session_id else None
            event = ev.SipReferReceived(event.target, session.user if session else None, event.replaces)
        if isinstance(event, (ev.SipAckReceived, ev.SipAccepted)):
            self._release_trickle()  # the browser's candidates held until the dialog was confirmed
        self.feed_nowait(event)

    def _trickle_from_sip(self, media: CallMedia, body: str) -> bool:
        """A trickle-ice INFO (RFC 8840 §5) the media takes: its candidates go to the browser. False:
        the media takes none (the machine hears the INFO as any other)."""
        try:
            candidates = media.sip_trickle(body)
        except sdp.SdpError as exc:
            logger.info("call=%s trickle INFO not readable: %s", self.call_id, exc)
            return True
        if candidates is None:
            return False
        self._spawn(self._trickle_to_browser(candidates))
        return True

    async def _trickle_to_browser(self, candidates: list[sdp.IceCandidateInit]) -> None:
        """The SIP side's trickled candidates as `ice` events to the carrying session."""
        registry = self._host.registry
        machine = registry.get(self.call_id) if self.call_id in registry else None
        if machine is None or machine.session_id is None:
            return
        for candidate in candidates:
            await self._send(machine.session_id, sig.IceCandidate(self.call_id, candidate))

    def _send_trickle(self, content_type: str, body: str, headers: Sequence[tuple[str, str]]) -> None:
        """A browser candidate in a trickle-ice INFO, if the SIP side's Recv-Info takes the package
        (RFC 6086 §4.2.1: no INFO of a package the far end did not name). On a call to the web user the
        browser trickles as soon as it answered: its INFOs wait for the ACK of our 2xx (the dialog is
        confirmed then, RFC 3261 §13.3.1.4), in the order they came."""
        call = self.sip.call
        if call is not None and TRICKLE_PACKAGE not in call.peer_info_packages:
            logger.info(
                "call=%s browser candidate dropped: the SIP side takes no trickle-ice INFO", self.call_id
            )
            return
        if call is None or call.state is not SipCallState.CONFIRMED or self._trickle_held:
            self._trickle_held.append((content_type, body, tuple(headers)))
            return
        self.sip.send_info(content_type, body, headers)

    def _release_trickle(self) -> None:
        call = self.sip.call
        if not self._trickle_held or call is None or call.state is not SipCallState.CONFIRMED:
            return
        held, self._trickle_held = self._trickle_held, []
        for content_type, body, headers in held:
            self.sip.send_info(content_type, body, headers)

    async def feed(self, event: ev.Event) -> None:
        """Hand `event` to the machine and wait until it was handled (its `CallError` is raised here)."""
        if self._finished:
            raise CallError(f"call {self.call_id} is over")
        reply: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Input(event=event, reply=reply))
        await reply

    def run_commands(self, commands: list[cmd.Command]) -> None:
        self._queue.put_nowait(_Input(commands=commands))

    def add_candidate(self, candidate: sdp.IceCandidateInit | None) -> None:
        if not self._finished:
            self._queue.put_nowait(_Input(candidate=(candidate,)))

    def attach_sip(self, call: SipCall) -> None:
        self.sip.attach(call)
        logctx.add_sip_call_id(self.log_context, call.call_id)

    # --- the worker --------------------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            while not self._finished:
                item = await self._queue.get()
                try:
                    await self._step(item)
                except Exception as exc:
                    logger.exception("call=%s failed; ending this call", self.call_id)
                    if item.reply is not None and not item.reply.done():
                        item.reply.set_exception(exc)
                    await self._fail(str(exc) or type(exc).__name__)
                if self.call_id not in self._host.registry:
                    self._finished = True
        finally:
            await self._cleanup()

    async def _step(self, item: _Input) -> None:
        if item.candidate is not None:
            await self._candidate(item.candidate[0])
            return
        commands = item.commands
        if item.event is not None:
            if self.call_id not in self._host.registry:
                if item.reply is not None:
                    item.reply.set_exception(CallError(f"call {self.call_id} is over"))
                return
            try:
                commands = self._host.registry.handle(self.call_id, item.event)
            except CallError as exc:
                if item.reply is not None:
                    item.reply.set_exception(exc)
                else:
                    logger.warning("call=%s %s refused: %s", self.call_id, type(item.event).__name__, exc)
                return
            if item.reply is not None:
                item.reply.set_result(None)
        for command in commands:
            await self._execute(command)
        call = self.sip.call
        if call is not None and call.call_id not in self.log_context.sip_call_ids:
            logctx.add_sip_call_id(self.log_context, call.call_id)  # our INVITE went out
        machine = self.machine
        if self.web_user is None and machine is not None and machine.session_id is not None:
            session = self._host.session(machine.session_id)
            self.web_user = session.user.id if session is not None else None

    async def _fail(self, reason: str) -> None:
        """End this call after an unexpected error, through the machine if it still can."""
        if self.call_id in self._host.registry:
            try:
                for command in self._host.registry.handle(
                    self.call_id, ev.MediaFailed(f"internal error: {reason}")
                ):
                    await self._execute(command)
                return
            except Exception:
                logger.exception("call=%s could not be ended by the machine; tearing it down", self.call_id)
        await self._teardown()

    async def _teardown(self) -> None:
        registry = self._host.registry
        sessions: frozenset[str] = frozenset()
        if self.call_id in registry:
            sessions = registry.get(self.call_id).sessions
            registry.discard(self.call_id)
        for session_id in sessions:
            with contextlib.suppress(Exception):
                await self._send(
                    session_id, sig.Ended(self.call_id, "media_failed", "The gateway failed", None)
                )
        self.sip.teardown()
        self._finished = True

    async def _cleanup(self) -> None:
        self._finished = True
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        if self.bridge is not None:
            with contextlib.suppress(Exception):  # figures for the call record and metrics
                stats = self.bridge.stats()
                if stats is not None:
                    self.transcoding = stats.transcoding
                    forwarded = stats.web_to_sip.forwarded + stats.sip_to_web.forwarded
                    self.media_packets = (stats.fast_lane_packets, forwarded)
                    self.media_quality = self.bridge.quality()
        if self.bridge is not None:
            with contextlib.suppress(Exception):
                await self.bridge.close()
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item.reply is not None and not item.reply.done():
                item.reply.set_exception(CallError(f"call {self.call_id} is over"))
        self._host.runtime_done(self)

    async def stop(self, timeout: float = 5.0) -> None:
        """Wait for the worker and the SIP requests still out (a BYE), then cancel what is left: all
        within `timeout` (the gateway's shutdown deadline bounds a BYE's retransmissions)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self._worker), timeout)
        if not self._worker.done():
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=max(0.0, deadline - loop.time()))
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def pending(self) -> list[asyncio.Task[None]]:
        """SIP requests still out (a BYE's retransmissions after the call ended)."""
        return [t for t in self._tasks if not t.done()]

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("call=%s background task failed", self.call_id, exc_info=task.exception())

    # --- commands out ------------------------------------------------------------------------------
    async def _execute(self, command: cmd.Command) -> None:
        logger.debug("call=%s command %s", self.call_id, type(command).__name__)
        await (_COMMANDS.get(type(command)) or CallRuntime._media_command)(self, command)

    async def _sip_command(self, command: cmd.SipCommand) -> None:
        extra = self.bridge.invite_headers if self.bridge is not None else ()
        if extra and (
            isinstance(command, cmd.SipInvite)
            or (isinstance(command, cmd.SipRespond) and 200 <= command.status < 300)
        ):  # RFC 8840 §4.1: the INVITE and its 2xx say Recv-Info/Supported: trickle-ice
            command = dataclasses.replace(command, headers=(*command.headers, *extra))
        await self.sip.execute(command)

    async def _start_timer(self, command: cmd.StartTimer) -> None:
        self._cancel_timer(command.name)
        loop = asyncio.get_running_loop()
        self._timers[command.name] = loop.call_later(command.seconds, self._timer_fired, command.name)

    async def _stop_timer(self, command: cmd.CancelTimer) -> None:
        self._cancel_timer(command.name)

    async def _signal_command(self, command: cmd.SignalCommand) -> None:
        self._report_transfer(command)
        for event in self._signals.events(command):
            await self._send(command.session_id, event)

    def _report_transfer(self, command: cmd.SignalCommand) -> None:
        """Transfers: a call placed for a REFER tells the referred call how it goes (RFC 3515 §2.4.5);
        a transferred call ends the consultation call its REFER replaced."""
        if isinstance(command, cmd.NotifyTransfer) and command.state is cmd.TransferState.SUCCEEDED:
            self._host.transfer_done(self, self.sip.consult_call_id)
        if self.transfer_of is None:
            return
        match command:
            case cmd.NotifyRinging():
                self._host.transfer_outcome(self.transfer_of, 180, "Ringing")
            case cmd.NotifyConnected():
                self._host.transfer_outcome(self.transfer_of, 200, "OK")
                self.transfer_of = None
            case cmd.NotifyEnded(sip_status=status, message=message):
                final = status if status is not None and status >= 300 else 487
                self._host.transfer_outcome(self.transfer_of, final, message[:60] or "Request Terminated")
                self.transfer_of = None

    async def _send(self, session_id: str, event: sig.Event) -> None:
        session = self._host.session(session_id)
        if session is None:
            logger.debug(
                "call=%s session %s gone: %s dropped", self.call_id, session_id, type(event).__name__
            )
            return
        await session.send_event(event)

    def _cancel_timer(self, name: TimerName) -> None:
        handle = self._timers.pop(name, None)
        if handle is not None:
            handle.cancel()

    def _timer_fired(self, name: TimerName) -> None:
        self._timers.pop(name, None)
        self.feed_nowait(ev.TimerFired(name))

    # --- media ---------------------------------------------------------------------------------------
    def _media_event(self, event: MediaEvent) -> None:
        if isinstance(
            event, KeyframeWanted
        ):  # RFC 5168 §3: a keyframe asked of a phone without RTCP feedback
            self.sip.send_info(MEDIA_CONTROL, picture_fast_update())
            return
        if isinstance(event, DtmfReceived) and event.leg is Leg.WEB:
            if self._host.dtmf_mode is DtmfMode.INFO:
                self.sip.send_info(*MediaBridge.info_body(event))
            return
        lost = self._web_lost(event)
        if lost is not None:
            self.feed_nowait(ev.MediaWebLost(lost))
            return
        translated = media_to_call_event(event)
        if (
            self._early_web
            and isinstance(translated, ev.MediaConnected | ev.MediaInactive)
            and self.state() in (CallState.INVITING, CallState.EARLY)
        ):
            # The web leg answered before the SIP side: its ICE comes up (or idles) while the INVITE is
            # out, which the machine only expects of inbound calls.
            logger.debug("call=%s %s before the SIP answer", self.call_id, type(translated).__name__)
            return
        if translated is not None:
            self.feed_nowait(translated)
        else:
            logger.debug("call=%s media %r", self.call_id, event)

    def _web_lost(self, event: MediaEvent) -> str | None:
        """Why the web leg of a connected call is lost, when its browser may renew it; else None (the
        event means what it always did)."""
        match event:
            case IceFailed(reason=reason) | DtlsFailed(reason=reason, leg=Leg.WEB):
                why = reason
            case MediaInactive(leg=Leg.WEB, seconds=seconds, held=False):
                why = f"no audio from the browser for {seconds:g} s"
            case _:
                return None
        if self.state() not in (CallState.CONNECTED, CallState.HOLDING) or not self._host.resumable(
            self.call_id
        ):
            return None
        return why

    async def _media_command(self, command: cmd.Command) -> None:
        handler = _MEDIA.get(type(command))
        if handler is None:
            raise CallError(f"call {self.call_id}: unknown command {command!r}")
        try:
            reply = await handler(self, command)
        except (sdp.SdpError, MediaError) as exc:
            status = exc.sip_status if isinstance(exc, sdp.SdpError | PassthroughError) else None
            logger.info("call=%s %s failed: %s", self.call_id, type(command).__name__, exc)
            self.feed_nowait(ev.MediaFailed(str(exc) or type(exc).__name__, _failure_status(status)))
            return
        if reply is not None:
            self.feed_nowait(reply)

    def _media(self, command: cmd.MediaCommand) -> CallMedia:
        if self.bridge is None:
            raise CallError(f"call {self.call_id}: {type(command).__name__} without a bridge")
        return self.bridge

    async def _create_media(self, command: cmd.CreateBridge) -> None:
        if self.bridge is None and self._host.passthrough(self.call_id):
            self.bridge = PassthroughMedia(self.call_id, self._send_trickle)
        elif self.bridge is None:
            self.bridge = self._host.new_bridge(self.call_id, self._media_event)

    async def _close_media(self, command: cmd.CloseBridge) -> None:
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
        media = self._media(command)
        answer = ev.MediaSipAnswerReady(await media.answer_from_web(command.web_sdp))
        if not media.passes_through:
            return answer
        # No web leg of ours to come up: the browser connects to the caller once the 200 is there.
        self.feed_nowait(answer)
        return ev.MediaConnected()

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
        sip_answer, web_answer = await media.pickup_from_sip(command.sip_sdp)  # call pickup, RFC 3891
        await self._web_became_ready(media)
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
            self.sip.send_info(DTMF_RELAY, format_dtmf_relay(digit, duration))  # no telephone-event
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
        self._early_web = True
        await self._web_became_ready(bridge)
        await asyncio.sleep(0)
        return ev.MediaSipOfferReady(offer if offer is not None else await bridge.sip_offer())

    async def _reoffer_web(self, bridge: CallMedia, sip_sdp: str) -> str | None:
        """The browser's new offer when the SIP re-offer adds or drops video (escalation); None: answer
        at once (no change, or a browser that cannot be offered again: the video is turned down)."""
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

    async def _candidate(self, candidate: sdp.IceCandidateInit | None) -> None:
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

    def state(self) -> CallState | None:
        registry = self._host.registry
        return registry.get(self.call_id).state if self.call_id in registry else None


_COMMANDS: Final = Table[CallRuntime, Coroutine[Any, Any, None]]()  # the rest: _media_command
_COMMANDS.add_all(get_args(cmd.SipCommand), CallRuntime._sip_command)
_COMMANDS.add_all(get_args(cmd.SignalCommand), CallRuntime._signal_command)
_COMMANDS.add(cmd.StartTimer, CallRuntime._start_timer)
_COMMANDS.add(cmd.CancelTimer, CallRuntime._stop_timer)
_COMMANDS.add(cmd.CreateBridge, CallRuntime._create_media)
_COMMANDS.add(cmd.CloseBridge, CallRuntime._close_media)

# The media commands whose result (or failure) is fed back as the call's next event.
_MEDIA: Final = Table[CallRuntime, Coroutine[Any, Any, ev.Event | None]]()
_MEDIA.add(cmd.MediaOfferToSip, CallRuntime._offer_to_sip)
_MEDIA.add(cmd.MediaAnswerFromSip, CallRuntime._answer_from_sip)
_MEDIA.add(cmd.MediaOfferToWeb, CallRuntime._offer_to_web)
_MEDIA.add(cmd.MediaAnswerFromWeb, CallRuntime._answer_from_web)
_MEDIA.add(cmd.MediaSipUpdate, CallRuntime._sip_update)
_MEDIA.add(cmd.MediaWebReanswer, CallRuntime._web_reanswer)
_MEDIA.add(cmd.MediaCancelWebReoffer, CallRuntime._cancel_web_reoffer)
_MEDIA.add(cmd.MediaSipReofferFromWeb, CallRuntime._sip_reoffer_from_web)
_MEDIA.add(cmd.MediaWebAnswerFromSip, CallRuntime._web_answer_from_sip)
_MEDIA.add(cmd.MediaCancelSipReoffer, CallRuntime._cancel_sip_reoffer)
_MEDIA.add(cmd.MediaSipPickup, CallRuntime._sip_pickup)
_MEDIA.add(cmd.MediaSipReoffer, CallRuntime._sip_reoffer)
_MEDIA.add(cmd.MediaDetachWeb, CallRuntime._detach_web)
_MEDIA.add(cmd.MediaRenewWeb, CallRuntime._renew_web)
_MEDIA.add(cmd.MediaDropReoffer, CallRuntime._drop_reoffer)
_MEDIA.add(cmd.MediaSendText, CallRuntime._send_text)
_MEDIA.add(cmd.MediaSendDtmf, CallRuntime._send_dtmf)


def _failure_status(status: int | None) -> int | None:
    return status if status is not None and 400 <= status <= 699 else None
