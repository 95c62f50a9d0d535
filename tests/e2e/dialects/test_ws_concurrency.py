"""One slow request no longer stalls a `/ws` session (issue 32 item 7), against a whole gateway whose PBX is a
UDP port nobody reads (every SIP transaction to it waits for Timer F / Timer B, 32 s).

alice places a call there (its INVITE pends) and sends `message` to the silent number, then `ping` and
`hangup` of the call: the pong, the hang-up's ack and the call's `ended` arrive while the message's ack
is still outstanding (it would come after 32 s: before, they all waited behind it). Then the bound:
16 `message`s in flight (`max_requests_in_flight`), 64 more waiting their turn (`max_requests_queued`),
and the 81st is refused with `too_many_requests` naming the limits, while a `ping` is still answered; closing the socket with them in flight leaves no
error in the gateway's log.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import aiohttp
import pytest

from peers.ports import free_port
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until

WAIT = 10.0  # generous on a loaded machine, and still far below Timer F's 32 s


class WsClient:
    """The softphone's JSON protocol on a raw WebSocket: every message kept in arrival order."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_json(message)

    async def until(self, predicate: Any, timeout: float = WAIT) -> dict[str, Any]:
        """The first message (already seen or arriving within `timeout`) for which `predicate` holds."""
        async with asyncio.timeout(timeout):
            while True:
                for message in self.seen:
                    if predicate(message):
                        return message
                self.seen.append(await self.ws.receive_json())

    def has(self, message_id: str) -> bool:
        return any(m.get("id") == message_id for m in self.seen)


async def test_a_pending_message_holds_neither_ping_nor_hangup(caplog: pytest.LogCaptureFixture) -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # the PBX: never answers
    silent.bind(("127.0.0.1", free_port(socket.SOCK_DGRAM)))
    peer = WebPeer()
    caplog.set_level(logging.INFO)
    try:
        config = gateway_config(f"127.0.0.1:{silent.getsockname()[1]}")
        async with running_gateway(config) as gateway, aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{gateway.http_url.replace('http', 'ws')}/ws") as ws:
                alice = WsClient(ws)
                await alice.send({"type": "login", "id": "l", "user": "alice", "secret": ALICE_SECRET})
                assert (await alice.until(lambda m: m.get("id") == "l"))["type"] == "registered"
                await alice.send({"type": "call", "id": "c", "to": "2000", "sdp": await peer.offer()})
                call = await alice.until(lambda m: m.get("id") == "c")
                assert call["type"] == "ack", call
                call_id = call["call_id"]

                await alice.send({"type": "message", "id": "m", "to": "2000", "body": "are you there?"})
                await alice.send({"type": "ping", "id": "p"})
                await alice.send({"type": "hangup", "id": "h", "call_id": call_id})
                pong = await alice.until(lambda m: m.get("id") == "p")
                assert pong["type"] == "pong", pong
                hung = await alice.until(lambda m: m.get("id") == "h")
                assert hung["type"] == "ack" and hung["request"] == "hangup", hung
                ended = await alice.until(lambda m: m.get("type") == "ended" and m.get("call_id") == call_id)
                assert ended["reason"], ended
                assert not alice.has("m"), alice.seen  # the MESSAGE still waits for its Timer F

                # with "m": 81 messages, one over the limit (16 in flight and 64 waiting their turn), sent
                # at 14 a second, under the socket's rate limit (20/s), so that none is refused for that
                for n in range(80):
                    await alice.send({"type": "message", "id": f"m{n}", "to": "2000", "body": f"#{n}"})
                    await asyncio.sleep(1 / 14)
                refused = await alice.until(lambda m: m.get("type") == "error")
                assert refused["code"] == "too_many_requests" and "16" in refused["message"], refused
                assert "64 more" in refused["message"], refused
                assert refused["id"] == "m79", refused  # the 81st
                await alice.send({"type": "ping", "id": "p2"})
                assert (await alice.until(lambda m: m.get("id") == "p2"))["type"] == "pong"
                assert not any(alice.has(f"m{n}") for n in range(79)), alice.seen
            # closed with 80 requests in flight or waiting: they are cancelled, the session closes cleanly
            await wait_until(
                lambda: any("closed (code" in r.getMessage() for r in caplog.records), timeout=WAIT
            )
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [
            r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR
        ]
    finally:
        await peer.close()
        silent.close()
