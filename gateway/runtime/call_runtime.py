"""`CallRuntime`: carries out one call's commands and feeds back what happens, in one task.

How it works: every input of the call (an event from the browser, the SIP UA, the media bridge or a
timer; a trickled browser candidate) goes onto the call's queue. One worker task takes them in order,
hands events to the `CallRegistry` and runs the commands that come back, one after the other:
SIP commands through the call's `SipSide` (sip_side.py: the UA's call object), media commands on its
`MediaSide` (media_side.py: the call's `CallMedia`; their results are queued as the next events:
`MediaSipOfferReady`...), browser commands through the session's `SessionSink.send_event`, timers
with `loop.call_later`; one dispatch table picks the side. Requests that wait on the network (BYE,
re-INVITE, INFO) run as background tasks and queue their outcome. A pass-through call's trickle ICE
INFOs (RFC 8840) are routed here, between the SIP side and the browser.

Supervision: an event the machine refuses (`CallError`) is logged and dropped (or reported to the
browser request that caused it); any other exception is logged with `call=<id>` and ends this call
only: the machine is asked to fail the call (`MediaFailed`), and if that fails too the call is
torn down directly (SIP CANCEL/BYE/500, bridge closed, browsers told `ended`).

This module owns one call's queue, worker, timers and supervision; it imports the call layer, the
runtime's sides (`SipSide`, `MediaSide`), translations and `RuntimeHost`, never the driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, get_args

import sdp
from gateway.calls import CallError, TimerName
from gateway.calls.boundary import commands as cmd
from gateway.calls.boundary import events as ev
from gateway.calls.connected.transfer import referrer_outcome
from gateway.calls.machine import CallMachine
from gateway.calls.states import CallDirection
from gateway.calls.view import CallView
from gateway.media.video.keyframe import is_picture_fast_update
from gateway.ops import logctx
from gateway.runtime.call_media import CallMedia
from gateway.runtime.dispatch import Table
from gateway.runtime.host import RuntimeHost
from gateway.runtime.media_side import MediaSide
from gateway.runtime.passthrough import INVITE_HEADERS, TRICKLE_PACKAGE
from gateway.runtime.sip_side import SipSide
from gateway.runtime.translate import SignalMapper, hold_direction
from gateway.signaling import events as sig
from gateway.signaling.service import SessionSink
from gateway.sip.useragent.ua_calls import Call as SipCall
from gateway.sip.useragent.ua_calls import CallState as SipCallState
from gateway.sip.useragent.ua_replaces import names_our_dialog

logger = logging.getLogger(__name__)


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
        self.sip.message_gate = self._admit_message
        self.transfer_of: str | None = None  # the call whose REFER this call carries out
        self.media = MediaSide(
            call_id, direction, host, self.sip, self.feed_nowait, self.view, self._send_trickle
        )
        self._signals = SignalMapper(direction)
        self._queue: asyncio.Queue[_Input] = asyncio.Queue()
        self._timers: dict[TimerName, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._trickle_held: list[tuple[str, str, tuple[tuple[str, str], ...]]] = []  # INFO before the ACK
        self._sip_trickle_early: list[str] = []  # the caller's trickle INFO while the web user is rung
        self._finished = False
        self.machine: CallMachine | None = None  # set by the driver: read after the end (call records)
        self.web_user: str | None = None  # the user carrying the call (dialed it, or answered it)
        # the media figures when the bridge closed (gateway/ops/records.py): per leg, transcoding, packets
        self.media_quality: dict[str, dict[str, object]] | None = None
        self.transcoding = False
        self.progress_told: set[str] = set()  # ringing, answered: told the host once each
        self.media_packets = (0, 0)  # (forwarded by the fast lane, forwarded in all)
        self.recording_files: tuple[str, ...] = ()  # its recordings (runtime/recordings.py), at the end
        # its record is not this instance's to write: a call handed to another instance, or one a takeover
        # gave up on (the survivor records it lost: runtime/continuity/takeover.py)
        self.unrecorded = False
        # the call's ids on its log lines: the context the driver bound, or one of its own
        self.log_context = logctx.current() or logctx.CallContext()
        if self.log_context.call_id is None:
            logctx.set_call_id(self.log_context, call_id)
        self._worker = asyncio.get_running_loop().create_task(self._run(), name=f"call-{call_id}")

    def __repr__(self) -> str:
        return f"<CallRuntime {self.call_id} {self.direction.value}>"

    @property
    def bridge(self) -> CallMedia | None:
        """The call's media (a MediaBridge, or pass-through), once CreateBridge made it."""
        return self.media.bridge

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
        if isinstance(event, ev.SipInfoReceived) and event.content_type == sdp.TRICKLE_MEDIA_TYPE:
            if media is not None and self._trickle_from_sip(media, event.body):
                return
            view = self.view() if media is None else None
            if view is not None and view.passthrough:  # RFC 8840 §4.1: the 180 let the caller trickle
                self._sip_trickle_early.append(event.body)  # (to the browser once it has the offer)
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
            own = bool(event.replaces) and names_our_dialog(self._host.ua.calls, event.replaces)
            event = ev.SipReferReceived(event.target, session.user if session else None, event.replaces, own)
        if isinstance(event, (ev.SipAckReceived, ev.SipAccepted, ev.SipProvisional)):
            self._release_trickle()  # the browser's candidates held until INFO could go
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
        (RFC 6086 §4.2.1: no INFO of a package the far end did not name). INFO goes in the early dialog
        once an 18x answered our INVITE's offer and named the package (RFC 8840 §4.1: the far end's
        ICE agent is checking already), else once the dialog is confirmed: on a call to the web user the
        browser trickles as soon as it answered, and its INFOs wait for the ACK of our 2xx (RFC 3261
        §13.3.1.4). Held ones go in the order they came."""
        call = self.sip.call
        early = call is not None and call.state is SipCallState.EARLY
        if call is not None and not early and TRICKLE_PACKAGE not in call.peer_info_packages:
            logger.info(
                "call=%s browser candidate dropped: the SIP side takes no trickle-ice INFO", self.call_id
            )
            return
        if not self._info_now() or self._trickle_held:
            self._trickle_held.append((content_type, body, tuple(headers)))
            return
        self.sip.send_info(content_type, body, headers)

    def _info_now(self) -> bool:
        """Whether the SIP side may be sent a trickle-ice INFO now (``_send_trickle``)."""
        call = self.sip.call
        if call is None or TRICKLE_PACKAGE not in call.peer_info_packages:
            return False
        return call.state is SipCallState.CONFIRMED or call.early_info_allowed

    def _release_trickle(self) -> None:
        call = self.sip.call
        if not self._trickle_held or call is None or not self._info_now():
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

    def _admit_message(self, sender: str) -> float | None:
        """A MESSAGE in the SIP leg's dialog from `sender`: None when the web user may be shown it, else
        the seconds to wait (the driver's limit, shared with MESSAGEs out of dialog: message_rate.py)."""
        return self._host.admit_message(self.call_id, sender, self.web_user)

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
            await self.media.candidate(item.candidate[0])
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
            if self._host.web_trace is not None and type(item.event).__name__.startswith("Web"):
                self._host.web_trace(self.call_id, "in", item.event, self._host_session(item.event))
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
        await _COMMANDS.handler(type(command))(self, command)

    async def _media_command(self, command: cmd.MediaCommand) -> None:
        await self.media.execute(command)
        media = self.bridge
        if isinstance(command, cmd.MediaOfferToWeb) and media is not None and self._sip_trickle_early:
            early, self._sip_trickle_early = self._sip_trickle_early, []
            for body in early:  # the caller's candidates trickled while the web user was rung
                self._trickle_from_sip(media, body)

    async def _sip_command(self, command: cmd.SipCommand) -> None:
        extra = self.bridge.invite_headers if self.bridge is not None else ()
        view = self.view() if self.bridge is None else None
        if view is not None and view.passthrough:  # ringing before the media exists: the 180 says it too
            extra = INVITE_HEADERS
        if extra and (
            isinstance(command, cmd.SipInvite)
            or (isinstance(command, cmd.SipRespond) and 180 <= command.status < 300)
        ):  # RFC 8840 §4.1: the INVITE, its 18x and 2xx say Recv-Info/Supported: trickle-ice
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
        progress = _PROGRESS.get(type(command))
        if progress is not None and progress not in self.progress_told:
            self.progress_told.add(progress)
            self._host.call_progress(self, progress)
        for event in self._signals.events(command):
            if isinstance(event, sig.Held) and event.by == "remote" and self.sip.call is not None:
                # how the SIP party holds: its re-offer's direction (a SIP library is re-INVITEd with it)
                event = dataclasses.replace(event, direction=hold_direction(self.sip.call.remote_sdp))
            await self._send(command.session_id, event)

    def _report_transfer(self, command: cmd.SignalCommand) -> None:
        """Transfers: a call placed for a REFER tells the referred call how it goes (RFC 3515 §2.4.5);
        a transferred call ends the consultation call its REFER replaced."""
        if isinstance(command, cmd.NotifyTransfer) and command.state is cmd.TransferState.SUCCEEDED:
            self._host.transfer_done(self, self.sip.consult_call_id)
        if self.transfer_of is None:
            return
        outcome = referrer_outcome(command)  # the call layer says what the referring call is told
        if outcome is not None:
            self._host.transfer_outcome(self.transfer_of, outcome)
            if outcome.status >= 200:  # final: the referring call hears no more
                self.transfer_of = None

    async def _send(self, session_id: str, event: sig.Event) -> None:
        session = self._host.session(session_id)
        if session is None:
            logger.debug(
                "call=%s session %s gone: %s dropped", self.call_id, session_id, type(event).__name__
            )
            return
        if self._host.web_trace is not None:
            self._host.web_trace(self.call_id, "out", event, session)
        await session.send_event(event)

    def _host_session(self, event: ev.Event) -> SessionSink | None:
        session_id = getattr(event, "session_id", None)
        return self._host.session(session_id) if isinstance(session_id, str) else None

    def _cancel_timer(self, name: TimerName) -> None:
        handle = self._timers.pop(name, None)
        if handle is not None:
            handle.cancel()

    def _timer_fired(self, name: TimerName) -> None:
        self._timers.pop(name, None)
        self.feed_nowait(ev.TimerFired(name))

    def view(self) -> CallView | None:
        """The call's state, read only (None once the registry forgot it)."""
        registry = self._host.registry
        return registry.get(self.call_id) if self.call_id in registry else None


_COMMANDS: Final = Table[CallRuntime, Coroutine[Any, Any, None]]()
_COMMANDS.add_all(get_args(cmd.SipCommand), CallRuntime._sip_command)
_COMMANDS.add_all(get_args(cmd.SignalCommand), CallRuntime._signal_command)
_COMMANDS.add_all(get_args(cmd.MediaCommand), CallRuntime._media_command)
_COMMANDS.add(cmd.StartTimer, CallRuntime._start_timer)
_COMMANDS.add(cmd.CancelTimer, CallRuntime._stop_timer)
# The commands that say a call rang or was answered (the first of each is told: call_progress)
_PROGRESS: Final[dict[type, str]] = {
    cmd.NotifyIncoming: "ringing",
    cmd.NotifyRinging: "ringing",
    cmd.NotifyConnected: "answered",
}
