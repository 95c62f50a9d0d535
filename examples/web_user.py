"""A web user for examples 07-09: the gateway's WebSocket protocol (docs/signaling.md) with aiohttp's
client, and an in-process gateway configured like gateway.yaml's demo on free loopback ports.

    config = demo_config(phone_port)                  # pbx.address = the desk phone
    gateway = Gateway(config); await gateway.start()
    async with WebUser(gateway.http_url, "alice", "alice-demo") as alice:
        call_id = await alice.request({"type": "call", "to": "2000", "sdp": offer})
        connected = await alice.next("connected")
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
from types import TracebackType
from typing import Any

import aiohttp

from gateway.config import Config
from gateway.config.loader import config_from_mapping

# gateway.yaml's demo users: alice / alice-demo (sip 1001), bob / bob-demo (sip 1002).
ALICE_HASH = "scrypt$16384$8$1$3NC6hA5nutew8BgmMtbYGw==$HcvwtRnaZ2T6ULpMGMVb4QufY1XJj5LG1OAvmW9nQdA="
Message = dict[str, Any]


def require_desk_phone() -> None:
    """Stop with a clear message when pjsua2 (the desk phone's SIP stack) is missing.

    It comes with the project's `test` and `demo` extras (`make test` or `make run` install it).
    """
    try:
        import pjsua2  # noqa: F401
    except ImportError:
        raise SystemExit(
            "this example needs pjsua2 for its desk phone: .venv/bin/pip install pjsua2-python"
        ) from None


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def demo_config(phone_port: int) -> Config:
    """The demo's gateway (alice = 1001, the desk phone as PBX) on free ports of 127.0.0.1."""
    rtp = 30000 + 2 * (free_port() % 5000)
    return config_from_mapping(
        {
            "sip": {
                "listen": [{"transport": "udp", "host": "127.0.0.1", "port": free_port(socket.SOCK_DGRAM)}],
                "trusted_sources": ["127.0.0.1/32"],
            },
            "media": {"rtp_ports": {"start": rtp, "end": rtp + 99}},
            "pbx": {"address": f"127.0.0.1:{phone_port}", "domain": "127.0.0.1"},
            "http": {"host": "127.0.0.1", "port": free_port()},
            "users": [
                {
                    "id": "alice",
                    "display_name": "Alice",
                    "sip": "1001",
                    "allow_outbound": ["."],
                    "web_secret_hash": ALICE_HASH,
                }
            ],
            "logging": {"level": "WARNING"},
        },
        {},
    )


class WebUser:
    """One logged-in WebSocket session: `request()` waits for the reply, `next(type)` for an event."""

    def __init__(self, base_url: str, user: str, secret: str) -> None:
        self.url = base_url.replace("http://", "ws://") + "/ws"
        self.user, self.secret = user, secret
        self._ids = itertools.count(1)
        self._replies: dict[int, asyncio.Future[Message]] = {}
        self._events: asyncio.Queue[Message] = asyncio.Queue()
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> WebUser:
        self._http = aiohttp.ClientSession()
        self._ws = await self._http.ws_connect(self.url)
        self._reader = asyncio.create_task(self._read())
        await self.request({"type": "login", "user": self.user, "secret": self.secret})
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._http is not None:
            await self._http.close()

    async def _read(self) -> None:
        assert self._ws is not None
        async for message in self._ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                data: Message = json.loads(message.data)
                future = self._replies.pop(data["id"], None) if isinstance(data.get("id"), int) else None
                if future is not None:
                    future.set_result(data)
                else:
                    await self._events.put(data)

    async def request(self, message: Message, timeout: float = 15) -> Message:
        assert self._ws is not None
        request_id = next(self._ids)
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._replies[request_id] = future
        await self._ws.send_str(json.dumps({**message, "id": request_id}))
        reply = await asyncio.wait_for(future, timeout)
        if reply["type"] == "error":
            raise RuntimeError(f"{message['type']} refused: {reply['code']}: {reply['message']}")
        return reply

    async def next(self, kind: str, timeout: float = 15) -> Message:
        """The next event of type `kind` (events of other types before it are skipped)."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self._events.get()
                if event["type"] == kind:
                    return event


async def hear(pcm_source: Any, freq: float, heard: Any, timeout: float = 10) -> bool:
    """Wait until the last second of `pcm_source.pcm` holds `freq` (per `heard`)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if len(pcm_source.pcm) >= 8000 and heard(pcm_source.pcm[-8000:], freq):
            return True
        await asyncio.sleep(0.1)
    return False
