"""``AudioStreams``: this instance's live audio streams, one per call at most (docs/operations.md "Live
audio streams").

A stream starts when its call is answered and `audio_stream.policy` (or an override for the call's user
or SIP party) is `always`, or when asked (``start``: the admin API, the web user's /ws or HTTP API), once
the call's media bridge is active. Starting it sets the bridge's ``audio_filter`` (a ``StreamTap``) and a
tap that keeps the fast lane unlinked: the call's audio goes the Python path while it streams, and back
to the fast lane when the stream stops. A clock task takes one tick's frames every 20 ms and queues them
on the stream's ``StreamSocket``, which never holds the call up. A stream stops when asked (``stop``),
when its call ends or its bridge closes, and when the gateway stops; the app gets the stop message.
Requests are checked field by field: an unknown field, a bad value, a call that is not up, a second
stream, a pass-through call are refused with an error naming the field.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final
from urllib.parse import urlsplit

from gateway.config.audio_stream import (
    ENCODINGS,
    INJECT,
    SAMPLE_RATES,
    AudioStreamSection,
    StreamPolicy,
    TargetPattern,
    address_allowed,
    stream_url,
    target_refusal,
)
from gateway.media.events import Leg
from gateway.media.streaming.frames import Encoding, Inject, StreamFrames
from gateway.media.streaming.tap import StreamTap
from gateway.ops.call_list import live_call
from gateway.runtime.call_media import CallMedia
from gateway.runtime.call_runtime import CallRuntime
from gateway.runtime.driver import CallDriver
from gateway.signaling.audio_stream.client import SocketSettings, StreamSocket
from gateway.signaling.errors import BadRequest, Conflict, Forbidden, NotFound
from gateway.signaling.service import SessionSink

logger = logging.getLogger(__name__)

TICK: Final = 0.02
FIELDS: Final = ("url", "sample_rate", "encoding", "inject")
_NUMBER: Final = re.compile(r"^(?:sips?:|tel:)?([^@;>]+)")


@dataclass(slots=True)
class _Stream:
    id: str
    runtime: CallRuntime
    bridge: CallMedia
    tap: StreamTap
    socket: StreamSocket
    started_by: str
    url: str
    clock: asyncio.Task[None] | None = None
    started: float = 0.0

    def status(self) -> dict[str, object]:
        frames = self.tap.frames
        return {
            "call_id": self.runtime.call_id,
            "stream_id": self.id,
            "url": self.url,
            "sample_rate": frames.rate,
            "encoding": frames.encoding.value,
            "inject": frames.inject_to.value,
            "started_by": self.started_by,
            "connected": self.socket.connected,
            "error": self.socket.error,
            "frames": frames.sent,
            "frames_dropped": self.socket.dropped,
            "injected_bytes": frames.injected_bytes,
        }


def _call_keys(call: Mapping[str, object]) -> tuple[str | None, str | None]:
    """What overrides match of a call as the admin API shows it: its web user, and the SIP party's
    number (outbound: of `to`, inbound: of `from`)."""
    user = call.get("user")
    party = call.get("to") if call.get("direction") == "outbound" else call.get("from")
    match = _NUMBER.match(party) if isinstance(party, str) else None
    return (user if isinstance(user, str) else None), (match.group(1) if match else None)


class AudioStreams:
    def __init__(
        self,
        settings: AudioStreamSection,
        driver: CallDriver,
        *,
        instance: str | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._driver = driver
        self._instance = instance
        self._wall = wall
        self._streams: dict[str, _Stream] = {}
        self._numbers = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    # --- wiring: the driver's call progress and ends ------------------------------------------------
    def attach(self) -> None:
        """Hear the driver's answered calls and ended calls, after whoever listened before (gateway/ops)."""
        progress, ended = self._driver.on_call_progress, self._driver.on_call_end

        def on_progress(runtime: CallRuntime, what: str) -> None:
            try:
                if progress is not None:
                    progress(runtime, what)
            finally:  # (a webhook that failed does not keep the stream from starting)
                self.call_progress(runtime, what)

        def on_end(runtime: CallRuntime) -> None:
            try:
                if ended is not None:
                    ended(runtime)
            finally:
                self.call_ended(runtime)

        self._driver.on_call_progress = on_progress
        self._driver.on_call_end = on_end
        self._driver.audio_stream = self.from_session  # /ws `audio_stream` (signaling/audio_stream/)

    def call_progress(self, runtime: CallRuntime, progress: str) -> None:
        if progress != "answered" or runtime.call_id in self._streams:
            return
        settings = self.settings.for_call(*_call_keys(self._summary(runtime)))
        if settings.policy is StreamPolicy.ALWAYS:
            self._spawn(self._policy_start(runtime, settings))

    async def _policy_start(self, runtime: CallRuntime, settings: AudioStreamSection) -> None:
        for _ in range(100):  # the bridge may apply the answer just after the call is told answered
            bridge = runtime.bridge
            if runtime.finished or bridge is None or bridge.passes_through or bridge.audio_up:
                break
            await asyncio.sleep(0.05)
        try:
            if not runtime.finished and runtime.call_id not in self._streams:
                self._start(runtime, settings, "policy")
        except (BadRequest, Conflict, NotFound) as exc:
            logger.warning("call=%s audio stream not started by policy: %s", runtime.call_id, exc)

    def call_ended(self, runtime: CallRuntime) -> None:
        if runtime.call_id in self._streams:
            self._spawn(self.stop(runtime.call_id, "ended"))

    # --- asked ---------------------------------------------------------------------------------------
    def start(
        self, call_id: str, request: Mapping[str, object], by: str, *, own_url: bool = True
    ) -> dict[str, object]:
        """Start the stream of live call ``call_id`` as ``request`` says (`url`, `sample_rate`, `encoding`,
        `inject`; the section's, or an override's, for what it leaves out). ``own_url``: whether the asker
        may name a url (the admin; a web user streams to the configured one only). The stream's status."""
        for key in request:
            if key not in FIELDS or (key == "url" and not own_url):
                allowed = [f for f in FIELDS if own_url or f != "url"]
                raise BadRequest(f"unknown field {key!r} (allowed: {', '.join(allowed)})", field=str(key))
        asked = _checked(request, self.settings.allowed_targets)  # a bad body is a 400 whatever the call
        runtime = self._runtime(call_id)
        settings = replace(self.settings.for_call(*_call_keys(self._summary(runtime))), **asked)
        return self._start(runtime, settings, by).status()

    async def from_session(
        self, session: SessionSink, call_id: str, action: str, options: Mapping[str, object]
    ) -> None:
        """A web user's `audio_stream` request on /ws: her own call's stream, to the configured url."""
        user = session.user.id
        call_id = self.call_of(user, call_id)
        if action == "start":
            self.start(call_id, options, f"user {user}", own_url=False)
        else:
            await self.stop(call_id, "api", by=f"user {user}")

    async def stop(self, call_id: str, reason: str = "api", *, by: str | None = None) -> dict[str, object]:
        """Stop the call's stream (NotFound: none); its last status. ``by``: only a stream it started
        (Forbidden otherwise: a web user stops her own, not the operator's)."""
        stream = self._streams.get(call_id)
        if stream is None:
            raise NotFound(f"call {call_id!r} has no audio stream", field="call_id")
        if by is not None and stream.started_by != by:
            raise Forbidden(
                f"the audio stream was started by {stream.started_by.split()[0]}", field="session_id"
            )
        del self._streams[call_id]
        if stream.clock is not None:
            stream.clock.cancel()
        if stream.bridge.audio_filter is stream.tap:
            stream.bridge.audio_filter = None
        stream.bridge.remove_tap(f"stream-{stream.id}")
        status = stream.status()
        stop = {"type": "stop", "call_id": call_id, "stream_id": stream.id, "reason": reason,
                "frames": stream.tap.frames.sent}  # fmt: skip
        await stream.socket.close(stop)
        stream.tap.close()
        logger.info(
            "call=%s audio stream %s stopped (%s): %d frames, %d dropped",
            call_id, stream.id, reason, stream.tap.frames.sent, stream.socket.dropped,
        )  # fmt: skip
        return {**status, "status": "stopped", "reason": reason}

    def status(self, call_id: str) -> dict[str, object]:
        stream = self._streams.get(call_id)
        if stream is None:
            self._runtime(call_id)  # 404 for a call that is not live
            return {"call_id": call_id, "status": "off"}
        return {**stream.status(), "status": "on"}

    def call_of(self, user_id: str, session_or_call: str) -> str:
        """The live call of web user ``user_id`` named by its session id or call id (NotFound: none of
        hers, whether it is someone else's or none at all)."""
        for runtime in self._driver.runtimes:
            machine = runtime.machine
            if runtime.finished or machine is None:
                continue
            owner = runtime.web_user or (machine.user.id if machine.user is not None else None)
            if owner != user_id:
                continue
            if session_or_call in (runtime.call_id, machine.session_id):
                return runtime.call_id
            sessions = self._driver.http_sessions_of(machine.user) if machine.user is not None else ()
            if any(s.public_id == session_or_call and s.call_id == runtime.call_id for s in sessions):
                return runtime.call_id  # the HTTP API's or WHIP's session id, as its user knows it
        raise NotFound(f"no live call of yours named {session_or_call!r}", field="session_id")

    def streaming(self, call_id: str) -> bool:
        return call_id in self._streams

    async def close(self) -> None:
        self._closing = True
        for call_id in list(self._streams):
            with contextlib.suppress(NotFound):
                await self.stop(call_id, "shutdown")
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --- inside ---------------------------------------------------------------------------------------
    def _start(self, runtime: CallRuntime, settings: AudioStreamSection, by: str) -> _Stream:
        call_id = runtime.call_id
        if self._closing:
            raise Conflict("the gateway is stopping", field="call_id")
        if call_id in self._streams:
            raise Conflict(f"call {call_id!r} streams already", field="call_id")
        if settings.url is None:
            raise Conflict("no audio_stream.url is configured (and none was given)", field="url")
        if len(self._streams) >= self.settings.max_streams:
            raise Conflict(f"at most {self.settings.max_streams} streams at once (audio_stream.max_streams)")
        bridge = runtime.bridge
        if bridge is not None and bridge.passes_through:
            raise Conflict(
                f"call {call_id!r} carries no media of the gateway's (pass-through)", field="call_id"
            )
        if bridge is None or not bridge.audio_up:
            raise Conflict(f"call {call_id!r} has no media up yet", field="call_id")
        if bridge.audio_filter is not None:
            raise Conflict(f"call {call_id!r}'s audio is taken by another feature", field="call_id")
        frames = StreamFrames(settings.sample_rate, Encoding(settings.encoding), Inject(settings.inject))
        tap = StreamTap(frames, call_id=call_id)
        stream_id = f"s{next(self._numbers)}"
        call = self._summary(runtime)
        start = {
            "type": "start", "call_id": call_id, "stream_id": stream_id, "direction": call.get("direction"),
            "from": call.get("from"), "to": call.get("to"), "user": call.get("user"),
            "instance": self._instance, "sample_rate": frames.rate, "encoding": frames.encoding.value,
            "channels": 2, "channel_map": [Leg.WEB.value, Leg.SIP.value], "frame_ms": 20,
            "inject": frames.inject_to.value, "started_by": by,
        }  # fmt: skip
        socket = StreamSocket(
            SocketSettings(
                settings.url, settings.token.reveal() if settings.token is not None else None,
                settings.queue_frames, settings.connect_timeout, settings.reconnect_attempts, settings.backoff,
                _address_check(settings.url, settings.allowed_targets),
            ),
            start, on_audio=lambda data: self._from_app(call_id, frames, data), call_id=call_id,
        )  # fmt: skip
        stream = _Stream(stream_id, runtime, bridge, tap, socket, by, settings.url, started=self._wall())
        self._streams[call_id] = stream
        bridge.audio_filter = tap
        bridge.add_tap(f"stream-{stream_id}", _ignore, lambda: self._closed(call_id))
        stream.clock = asyncio.get_running_loop().create_task(self._clock(stream))
        logger.info(
            "call=%s audio stream %s to %s started by %s (%d Hz %s, inject %s; the call's audio goes the "
            "Python path)", call_id, stream_id, settings.url, by, frames.rate, frames.encoding.value,
            frames.inject_to.value,
        )  # fmt: skip
        return stream

    async def _clock(self, stream: _Stream) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        frames, socket = stream.tap.frames, stream.socket
        while True:
            due += TICK
            late = loop.time() - due
            if late > 10 * TICK:  # the loop was held up: start again from now, no burst to catch up
                due = loop.time()
            elif late < 0:
                await asyncio.sleep(-late)
            for frame in frames.frames():
                socket.send(frame)

    def _from_app(self, call_id: str, frames: StreamFrames, data: bytes) -> None:
        if frames.inject_to is Inject.NONE:
            return
        try:
            frames.inject(data)
        except ValueError as exc:
            logger.warning("call=%s audio stream: %s (dropped)", call_id, exc)

    def _closed(self, call_id: str) -> None:
        """The bridge closed under the stream."""
        if call_id in self._streams:
            self._spawn(self.stop(call_id, "ended"))

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        async def run() -> None:
            with contextlib.suppress(NotFound):
                await coro

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _runtime(self, call_id: str) -> CallRuntime:
        for runtime in self._driver.runtimes:
            if runtime.call_id == call_id and not runtime.finished:
                return runtime
        raise NotFound(f"no live call {call_id!r}", field="call_id")

    def _summary(self, runtime: CallRuntime) -> dict[str, object]:
        return live_call(runtime, instance=self._instance, dialect=None, wall=self._wall) or {}


def _address_check(url: str, allowed: tuple[TargetPattern, ...]) -> Callable[[str], bool]:
    """Whether the stream to ``url`` may connect to an address its name resolves to (or its own)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "wss" else 80)
    return lambda address: address_allowed(host, port, address, allowed)


def _ignore(packet: object) -> None:
    """The stream's tap on the bridge: only there to keep the fast lane unlinked (``StreamTap`` hears)."""


def _checked(request: Mapping[str, object], allowed: tuple[TargetPattern, ...]) -> dict[str, Any]:
    """The request's fields as section values; BadRequest naming the first bad one (a url outside
    `allowed_targets`, or link-local without them, too)."""
    out: dict[str, Any] = {}
    if "url" in request:
        try:
            out["url"] = stream_url(request["url"])
        except (TypeError, ValueError) as exc:
            raise BadRequest(str(exc), field="url") from None
        why = target_refusal(out["url"], allowed)
        if why is not None:
            raise BadRequest(why, field="url")
    if "sample_rate" in request:
        rate = request["sample_rate"]
        if isinstance(rate, bool) or rate not in SAMPLE_RATES:
            raise BadRequest(
                f"sample_rate must be one of {list(SAMPLE_RATES)}, got {rate!r}", field="sample_rate"
            )
        out["sample_rate"] = rate
    for key, options in (("encoding", ENCODINGS), ("inject", INJECT)):
        if key in request:
            value = request[key]
            if not isinstance(value, str) or value.lower() not in options:
                raise BadRequest(f"{key} must be one of {', '.join(options)}, got {value!r}", field=key)
            out[key] = value.lower()
    return out
