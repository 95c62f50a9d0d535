"""End-to-end helpers: a whole gateway in this process, and a web client speaking its WebSocket protocol.

    async with running_gateway(gateway_config(pbx=phone.address)) as gateway:
        async with WsClient(gateway.http_url, "alice", ALICE_SECRET) as alice:
            peer = WebPeer(freq=1000)
            call_id = await alice.call("2000", await peer.offer())
            connected = await alice.wait_for("connected", call_id=call_id)
            await peer.accept(connected["sdp"])

`WsClient` keeps every event it receives; `wait_for(type, **match)` returns the first one not yet
taken that matches, so events that arrive before a test waits for them are never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import aiohttp

from gateway.app import Gateway
from gateway.config import Config
from gateway.config.loader import config_from_mapping
from tests.conftest import free_port

ALICE_SECRET = "alice-demo"
BOB_SECRET = "bob-demo"
ALICE_HASH = "scrypt$16384$8$1$3NC6hA5nutew8BgmMtbYGw==$HcvwtRnaZ2T6ULpMGMVb4QufY1XJj5LG1OAvmW9nQdA="
BOB_HASH = "scrypt$16384$8$1$HwafWmrvldoS4lVbF1Oy5w==$LopM4K2fyTJmyfFUAG6Pe9UwsXcXGKEFM1ap1LuN+ds="
Message = dict[str, Any]


def gateway_config(pbx: str | None, *, register: bool = False, alice_auth: tuple[str, str] | None = None,
                   domain: str = "127.0.0.1", **sections: Any) -> Config:  # fmt: skip
    """A gateway on loopback with free ports; users alice (1001) and bob (1002) as in gateway.yaml."""
    alice: dict[str, Any] = {
        "id": "alice",
        "display_name": "Alice",
        "sip": "1001",
        "allow_outbound": ["."],
        "web_secret_hash": ALICE_HASH,
    }
    if alice_auth is not None:
        alice["pbx_auth"] = {"username": alice_auth[0], "password": alice_auth[1]}
    mapping: dict[str, Any] = {
        "sip": {
            "listen": [{"transport": "udp", "host": "127.0.0.1", "port": free_port(socket.SOCK_DGRAM)}],
            "trusted_sources": ["127.0.0.1/32"],
        },
        "media": {"rtp_ports": {"start": 30000 + 2 * (free_port() % 5000), "end": 0}},
        "pbx": {"address": pbx, "register": register, "domain": domain} if pbx else {"domain": domain},
        "http": {"host": "127.0.0.1", "port": free_port()},
        "users": [
            alice,
            {
                "id": "bob",
                "display_name": "Bob",
                "sip": "1002",
                "allow_outbound": ["."],
                "web_secret_hash": BOB_HASH,
            },
        ],
        **sections,
    }
    rtp = mapping["media"]["rtp_ports"]
    rtp["end"] = rtp["start"] + 199
    return config_from_mapping(mapping, {})


@contextlib.asynccontextmanager
async def running_gateway(config: Config) -> AsyncIterator[Gateway]:
    gateway = Gateway(config)
    try:
        await gateway.start()
        yield gateway
    finally:
        await gateway.close()


class WsClient:
    """A web user on the gateway's `/ws`: login, requests with replies, and the events pushed."""

    def __init__(self, base_url: str, user: str, secret: str) -> None:
        self.url = base_url.replace("http://", "ws://") + "/ws"
        self.user = user
        self.secret = secret
        self.session_id = ""
        self.events: list[Message] = []
        self._taken: set[int] = set()
        self._changed = asyncio.Event()
        self._replies: dict[int, asyncio.Future[Message]] = {}
        self._ids = itertools.count(1)
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> WsClient:
        self._http = aiohttp.ClientSession()
        self._ws = await self._http.ws_connect(self.url)
        self._reader = asyncio.create_task(self._read())
        registered = await self.request({"type": "login", "user": self.user, "secret": self.secret})
        self.session_id = registered["session_id"]
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
        self._ws = self._http = self._reader = None

    async def _read(self) -> None:
        assert self._ws is not None
        async for message in self._ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            data: Message = json.loads(message.data)
            reply = self._replies.pop(data["id"], None) if isinstance(data.get("id"), int) else None
            if reply is not None and not reply.done():
                reply.set_result(data)
                continue
            self.events.append(data)
            self._changed.set()

    async def request(self, message: Message, timeout: float = 15) -> Message:
        """Send a request; its reply (an `error` reply raises AssertionError)."""
        assert self._ws is not None
        request_id = next(self._ids)
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._replies[request_id] = future
        await self._ws.send_str(json.dumps({**message, "id": request_id}))
        reply = await asyncio.wait_for(future, timeout)
        if reply["type"] == "error":
            raise AssertionError(f"{message['type']} refused: {reply}")
        return reply

    async def call(self, to: str, sdp: str) -> str:
        ack = await self.request({"type": "call", "to": to, "sdp": sdp})
        return str(ack["call_id"])

    async def wait_for(self, kind: str, timeout: float = 15, **match: Any) -> Message:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for index, event in enumerate(self.events):
                if index in self._taken or event.get("type") != kind:
                    continue
                if all(event.get(key) == value for key, value in match.items()):
                    self._taken.add(index)
                    return event
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no {kind} {match} within {timeout} s; events: {self.events}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)


async def wait_until(predicate: Any, timeout: float = 10, interval: float = 0.05) -> None:
    """Poll `predicate()` until it is true (AssertionError after `timeout`)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)
