"""``StreamSocket``: one audio stream's WebSocket to its app (docs/operations.md "Live audio streams").

It connects to the stream's ws:// or wss:// URL (``Authorization: Bearer`` when a token is configured),
sends the start message (JSON text), then the binary frames queued by ``send`` in order; binary frames
from the app go to ``on_audio``, text frames are logged (an app may say what it likes; nothing is asked
of it). A lost receiver never touches the call: ``send`` never waits and never raises (the queue is
bounded, the oldest frame dropped and counted beyond it); a failed connection is tried again after
``backoff`` seconds, doubling, up to ``attempts`` times in a row, then the stream gives up (logged, and
``on_gone`` told). Each new connection starts with the start message again (``"resumed": true``).
``close(stop)`` sends the stop message (JSON) when connected and closes; idempotent.

``address_allowed`` (audio_stream.allowed_targets, gateway/config/audio_stream.py) is asked about each
address the url's name resolves to, at every connection: the ones it refuses are never connected to (a
name that resolves to a metadata service's link-local address, or re-resolves to one later), and when
none is left the attempt fails as an unreachable app does. (A url's own address was checked before the
stream started: gateway/runtime/audio_streams/service.py.)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SocketSettings:
    url: str
    token: str | None = None
    queue_frames: int = 50
    connect_timeout: float = 5.0
    attempts: int = 3
    backoff: float = 0.5
    address_allowed: Callable[[str], bool] = lambda address: True  # audio_stream.allowed_targets


class _CheckedResolver(AbstractResolver):
    """aiohttp's resolver, keeping only the addresses ``allowed`` accepts."""

    def __init__(self, allowed: Callable[[str], bool]) -> None:
        self._inner = DefaultResolver()
        self._allowed = allowed
        self.refusal: str | None = None  # why the last resolution left nothing (aiohttp hides it)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        kept = [r for r in found if self._allowed(r["host"])]
        if not kept:
            addresses = ", ".join(sorted({r["host"] for r in found}))
            self.refusal = f"{host} resolves to {addresses}: refused by audio_stream.allowed_targets"
            raise OSError(self.refusal)
        return kept

    async def close(self) -> None:
        await self._inner.close()


class StreamSocket:
    def __init__(
        self,
        settings: SocketSettings,
        start: Mapping[str, object],
        *,
        on_audio: Callable[[bytes], None],
        on_gone: Callable[[str], None] = lambda why: None,
        call_id: str = "-",
    ) -> None:
        self.settings = settings
        self._start = dict(start)
        self._on_audio = on_audio
        self._on_gone = on_gone
        self._call = call_id
        self._queue: collections.deque[bytes] = collections.deque(maxlen=settings.queue_frames)
        self._ready = asyncio.Event()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._closing = False
        self.connected = False
        self.connections = 0
        self.dropped = 0  # frames dropped: the queue was full (a slow or absent receiver)
        self.sent = 0
        self.error: str | None = None  # why the stream gave up
        self._task = asyncio.get_running_loop().create_task(self._run())

    def send(self, frame: bytes) -> None:
        """Queue one binary frame (never waits; the oldest is dropped when the queue is full)."""
        if self._closing or self.error is not None:
            return
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append(frame)
        self._ready.set()

    async def _run(self) -> None:
        failures = 0
        resolver = _CheckedResolver(self.settings.address_allowed)
        connector = aiohttp.TCPConnector(resolver=resolver)
        async with aiohttp.ClientSession(connector=connector) as http:
            while not self._closing:
                try:
                    await self._connection(http)  # returns when we close
                except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                    why, resolver.refusal = resolver.refusal or f"{type(exc).__name__}: {exc}", None
                    failures = 1 if self.connected else failures + 1  # in a row
                    if self._closing:
                        break
                    if failures > self.settings.attempts:
                        self.error = why
                        logger.warning(
                            "call=%s audio stream to %s given up: %s", self._call, self.settings.url, why
                        )
                        self._on_gone(why)
                        return
                    delay = self.settings.backoff * 2 ** (failures - 1)
                    logger.info(
                        "call=%s audio stream to %s lost (%s): again in %.1f s",
                        self._call, self.settings.url, why, delay,
                    )  # fmt: skip
                    self._queue.clear()  # stale audio is no use to a speech app
                    await asyncio.sleep(delay)
                finally:
                    self.connected = False
                    self._ws = None

    async def _connection(self, http: aiohttp.ClientSession) -> None:
        headers = {"Authorization": f"Bearer {self.settings.token}"} if self.settings.token else {}
        timeout = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0)
        async with asyncio.timeout(self.settings.connect_timeout):
            ws = await http.ws_connect(self.settings.url, headers=headers, timeout=timeout, heartbeat=20.0)
        self._ws = ws
        start = {**self._start, "resumed": True} if self.connections else self._start
        await ws.send_str(json.dumps(start))
        self.connections += 1
        self.connected = True
        logger.info("call=%s audio stream connected to %s", self._call, self.settings.url)
        reader = asyncio.get_running_loop().create_task(self._read(ws))
        try:
            while not ws.closed and not reader.done():
                if not self._queue:
                    self._ready.clear()
                    waiter = asyncio.ensure_future(self._ready.wait())
                    await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                    continue
                await ws.send_bytes(self._queue.popleft())
                self.sent += 1
        finally:
            if not reader.done():
                reader.cancel()
        if not self._closing:
            raise ConnectionResetError(f"the app closed the stream ({ws.close_code})")

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type is aiohttp.WSMsgType.BINARY:
                self._on_audio(message.data)
            elif message.type is aiohttp.WSMsgType.TEXT:
                logger.debug("call=%s audio stream app says %.200s", self._call, message.data)

    async def close(self, stop: Mapping[str, object]) -> None:
        """Send ``stop`` (when connected) and close the connection; idempotent."""
        if self._closing:
            return
        self._closing = True
        self._ready.set()
        ws = self._ws
        if ws is not None and not ws.closed:
            try:
                while self._queue:  # what the clock made before the end
                    await ws.send_bytes(self._queue.popleft())
                await ws.send_str(json.dumps(dict(stop)))
                await ws.close()
            except (aiohttp.ClientError, OSError, ConnectionError):
                pass
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
