"""A /ws session's requests in flight (issue 32 item 7), through a real aiohttp server and WebSocket client
with a call service whose `hold` and `message` block until the test lets them go (a SIP transaction
that waits): a call's later requests wait for its pending one and keep their order, while `ping`,
`hangup`, another call's requests and messages to other destinations are answered at once; the limit
holds the requests past `max_requests_in_flight` in order (not started) and refuses the one past
`max_requests_queued` more with `too_many_requests`, `hangup` is still taken, and closing the socket
cancels what is in flight before the session closes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse, web
from aiohttp.test_utils import TestClient, TestServer

from gateway.signaling.limits import SignalingLimits
from gateway.signaling.service import SessionSink
from tests.signaling.harness import ALICE_SECRET, OFFER_SDP, FakeCallService, Harness, make_harness

Client = TestClient[web.Request, web.Application]
WAIT = 10.0
LIMIT = 6
QUEUED = 3


class SlowCalls(FakeCallService):
    """`hold` and `message` wait for `release` (a pending SIP transaction); the others answer at once."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.cancelled: list[str] = []
        self.started: list[str] = []

    async def _pending(self, what: str) -> None:
        self.started.append(what)
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.append(what)
            raise

    async def hold(self, session: SessionSink, call_id: str) -> None:
        await self._pending("hold")
        await super().hold(session, call_id)

    async def message(self, session: SessionSink, to: str, body: str) -> int:
        if to != "fast":
            await self._pending("message")
        return 200


class Reader:
    def __init__(self, ws: ClientWebSocketResponse) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(message))

    async def reply(self, request_id: str) -> dict[str, Any]:
        async with asyncio.timeout(WAIT):
            while True:
                for message in self.seen:
                    if message.get("id") == request_id:
                        return message
                self.seen.append(json.loads((await self.ws.receive()).data))

    def ids(self) -> list[str]:
        return [str(m.get("id")) for m in self.seen if m.get("id") is not None]


@pytest.fixture
async def env() -> AsyncIterator[tuple[Harness, SlowCalls, Client]]:
    calls = SlowCalls()
    harness = make_harness(
        SignalingLimits(max_requests_in_flight=LIMIT, max_requests_queued=QUEUED), calls=calls
    )
    client = TestClient(TestServer(harness.app))
    await client.start_server()
    yield harness, calls, client
    calls.release.set()
    await client.close()


async def _logged_in(client: Client) -> tuple[Reader, ClientWebSocketResponse]:
    ws = await client.ws_connect("/ws")
    reader = Reader(ws)
    await reader.send({"type": "login", "id": "l", "user": "alice", "secret": ALICE_SECRET})
    assert (await reader.reply("l"))["type"] == "registered"
    return reader, ws


async def _call(reader: Reader, request_id: str) -> str:
    await reader.send({"type": "call", "id": request_id, "to": "2000", "sdp": OFFER_SDP})
    ack = await reader.reply(request_id)
    assert ack["type"] == "ack", ack
    return str(ack["call_id"])


async def test_one_calls_requests_keep_order_others_pass(env: tuple[Harness, SlowCalls, Client]) -> None:
    _, calls, client = env
    reader, ws = await _logged_in(client)
    async with ws:
        first, second = await _call(reader, "c1"), await _call(reader, "c2")
        await reader.send({"type": "hold", "id": "hold1", "call_id": first})  # pends
        await reader.send({"type": "dtmf", "id": "dtmf1", "call_id": first, "digits": "1"})  # behind it
        await reader.send({"type": "message", "id": "m-slow", "to": "2000", "body": "x"})  # pends
        await reader.send({"type": "ping", "id": "p"})
        await reader.send({"type": "dtmf", "id": "dtmf2", "call_id": second, "digits": "2"})
        await reader.send({"type": "message", "id": "m-fast", "to": "fast", "body": "y"})
        assert (await reader.reply("p"))["type"] == "pong"
        assert (await reader.reply("dtmf2"))["type"] == "ack"  # another call: not behind call 1's hold
        assert (await reader.reply("m-fast"))["status"] == 200  # another destination
        await reader.send({"type": "hangup", "id": "h", "call_id": second})
        hung = await reader.reply("h")
        assert hung["type"] == "ack", hung  # never queued
        assert not {"hold1", "dtmf1", "m-slow"} & set(reader.ids()), reader.seen
        assert ("dtmf", (first, "1", None)) not in calls.calls  # waits for the hold before it
        calls.release.set()
        await reader.reply("dtmf1")
        ids = reader.ids()
        assert ids.index("hold1") < ids.index("dtmf1"), ids  # one call's requests in order
        assert calls.calls.index(("hold", first)) < calls.calls.index(("dtmf", (first, "1", None)))
        assert (await reader.reply("m-slow"))["status"] == 200


async def test_limit_refuses_beyond_it_hangup_still_taken(env: tuple[Harness, SlowCalls, Client]) -> None:
    harness, calls, client = env
    reader, ws = await _logged_in(client)
    async with ws:
        call_id = await _call(reader, "c")
        for n in range(LIMIT + QUEUED):  # the limit in flight, pending; the queue's worth waiting
            await reader.send({"type": "message", "id": f"m{n}", "to": f"20{n:02}", "body": "x"})
        await reader.send({"type": "message", "id": "over", "to": "2099", "body": "x"})
        refused = await reader.reply("over")
        assert refused["type"] == "error" and refused["code"] == "too_many_requests", refused
        assert f"{LIMIT} requests" in refused["message"] and f"{QUEUED} more" in refused["message"], refused
        assert calls.started == ["message"] * LIMIT, calls.started  # the queued ones wait their turn
        await reader.send({"type": "hangup", "id": "h", "call_id": call_id})
        assert (await reader.reply("h"))["type"] == "ack"
        await reader.send({"type": "ping", "id": "p"})
        assert (await reader.reply("p"))["type"] == "pong"
    # closed with the messages in flight: cancelled, then the session closed
    async with asyncio.timeout(WAIT):
        await harness.calls.closed_event.wait()
    assert calls.cancelled == ["message"] * LIMIT, calls.cancelled
