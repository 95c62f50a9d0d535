"""`StreamSocket` (gateway/signaling/audio_stream/client.py) against a real aiohttp WebSocket server on
loopback: the start message first, the frames in order, the app's binary frames back, the stop message
last; a bounded queue that drops the oldest; a reconnect after the app closes (the start message again,
`resumed`), and giving up on an address that never answers, without raising into the caller; an
address outside audio_stream.allowed_targets is never connected to, also when a name resolves to it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web

from gateway.config.audio_stream import address_allowed, parse_target
from gateway.signaling.audio_stream.client import SocketSettings, StreamSocket
from peers.ports import free_port
from tests.e2e.harness import wait_until


class App:
    """A WebSocket receiver: every connection's messages (text as dicts, binary as bytes)."""

    def __init__(self, *, close_after_start: int = 0, reply: bytes = b"") -> None:
        self.connections: list[list[object]] = []
        self.headers: list[str | None] = []
        self._close_after_start = close_after_start
        self._reply = reply

    async def handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.headers.append(request.headers.get("Authorization"))
        messages: list[object] = []
        self.connections.append(messages)
        async for message in ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                messages.append(json.loads(message.data))
                if len(self.connections) <= self._close_after_start:
                    await ws.close()
                elif self._reply:
                    await ws.send_bytes(self._reply)
            elif message.type is aiohttp.WSMsgType.BINARY:
                messages.append(message.data)
        return ws


@asynccontextmanager
async def serving(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> AsyncIterator[str]:
    """A WebSocket receiver on loopback: its ws:// URL (also tests/e2e/media/test_audio_stream.py's)."""
    server = web.Application()
    server.router.add_get("/listen", handler)
    runner = web.AppRunner(server)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"ws://127.0.0.1:{port}/listen"
    finally:
        await runner.cleanup()


async def test_start_frames_reply_and_stop_in_order() -> None:
    app = App(reply=b"\x01\x00" * 160)
    heard: list[bytes] = []
    async with serving(app.handler) as url:
        socket = StreamSocket(SocketSettings(url, token="t0ken"), {"type": "start", "call_id": "c-1"},
                              on_audio=heard.append, call_id="c-1")  # fmt: skip
        await wait_until(lambda: socket.connected, timeout=5)
        for n in range(3):
            socket.send(bytes([n]) * 640)
        await wait_until(lambda: heard and len(app.connections[0]) == 4, timeout=5)
        await socket.close({"type": "stop", "call_id": "c-1"})
        await socket.close({"type": "stop"})  # idempotent
        await wait_until(lambda: len(app.connections[0]) == 5, timeout=5)
    (messages,) = app.connections
    assert messages[0] == {"type": "start", "call_id": "c-1"}
    assert messages[1:4] == [bytes([n]) * 640 for n in range(3)]
    assert messages[4] == {"type": "stop", "call_id": "c-1"}
    assert heard == [b"\x01\x00" * 160]
    assert app.headers == ["Bearer t0ken"]
    assert (socket.sent, socket.dropped, socket.error) == (3, 0, None)


async def test_a_full_queue_drops_the_oldest_frames() -> None:
    app = App()
    async with serving(app.handler) as url:
        socket = StreamSocket(SocketSettings(url, queue_frames=5), {"type": "start"}, on_audio=lambda d: None)
        for n in range(100):  # before the connection is up: only the newest five wait
            socket.send(bytes([n]))
        await wait_until(lambda: app.connections and len(app.connections[0]) == 6, timeout=5)
        await socket.close({"type": "stop"})
    assert app.connections[0][1:6] == [bytes([n]) for n in range(95, 100)]
    assert socket.dropped == 95


async def test_a_closed_stream_is_opened_again_with_the_start_message() -> None:
    app = App(close_after_start=1)
    async with serving(app.handler) as url:
        socket = StreamSocket(SocketSettings(url, backoff=0.05), {"type": "start"}, on_audio=lambda d: None)
        await wait_until(lambda: len(app.connections) == 2 and socket.connected, timeout=5)
        socket.send(b"\x00\x00")
        await wait_until(lambda: len(app.connections[1]) == 2, timeout=5)
        await socket.close({"type": "stop"})
    assert app.connections[0] == [{"type": "start"}]
    assert app.connections[1][0] == {"type": "start", "resumed": True}
    assert socket.connections == 2 and socket.error is None


async def test_a_receiver_that_never_answers_is_given_up() -> None:
    gone: list[str] = []
    url = f"ws://127.0.0.1:{free_port()}/listen"  # nobody listens
    socket = StreamSocket(SocketSettings(url, attempts=2, backoff=0.01, connect_timeout=1.0), {"type": "start"},
                          on_audio=lambda d: None, on_gone=gone.append)  # fmt: skip
    await wait_until(lambda: gone, timeout=5)
    assert socket.error is not None and "Connect" in socket.error
    assert gone == [socket.error]
    socket.send(b"\x00\x00")  # never raises, never waits
    await socket.close({"type": "stop"})
    assert not socket.connected and socket.connections == 0
    await asyncio.sleep(0)


def resolving_socket(port: int, allowed: str) -> StreamSocket:
    """A stream to ws://localhost:port/listen with `allowed` as audio_stream.allowed_targets."""
    patterns = (parse_target(allowed),)
    settings = SocketSettings(
        f"ws://localhost:{port}/listen", attempts=1, backoff=0.01, connect_timeout=2.0,
        address_allowed=lambda address: address_allowed("localhost", port, address, patterns),
    )  # fmt: skip
    return StreamSocket(settings, {"type": "start"}, on_audio=lambda d: None)


async def test_a_name_resolving_outside_the_allowed_targets_is_never_connected_to() -> None:
    """Issue 67 item 20: `localhost` resolves to loopback; with allowed_targets naming only 127.0.0.2/32
    the stream never connects to it (the attempt fails, the stream gives up naming the field); with
    127.0.0.1/32 listed it streams to the same app."""
    app = App()
    async with serving(app.handler) as url:
        port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
        refused = resolving_socket(port, "127.0.0.2/32")
        await wait_until(lambda: refused.error is not None, timeout=5)
        assert "audio_stream.allowed_targets" in str(refused.error), refused.error
        await refused.close({"type": "stop"})
        assert app.connections == []
        allowed = resolving_socket(port, "127.0.0.1/32")
        await wait_until(lambda: allowed.connected, timeout=5)
        allowed.send(b"\x00\x00")
        await wait_until(lambda: app.connections and len(app.connections[0]) == 2, timeout=5)
        await allowed.close({"type": "stop"})
    assert app.connections[0][:2] == [{"type": "start"}, b"\x00\x00"]
