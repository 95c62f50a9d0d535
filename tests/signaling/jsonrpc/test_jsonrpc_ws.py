"""`/jsonrpc` through aiohttp's test server with the in-memory call service (tests/signaling/harness.py):
credentials at the upgrade or in announce, the document's browser offer answered with `result.answer`,
batches, error objects, notifications from call events, inbound calls, and the socket's end."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer

from gateway.signaling import events as sig
from gateway.signaling.jsonrpc import framing as rpc
from gateway.signaling.jsonrpc.peer import RpcPeer
from gateway.signaling.limits import SignalingLimits
from tests.signaling.harness import (
    ALICE_SECRET,
    ANSWER_SDP,
    FAILING_NUMBER,
    OFFER_SDP,
    Harness,
    demo_config,
    make_harness,
)

Client = TestClient[web.Request, web.Application]
API_KEY = "jsonrpc-test-key-0123456789"
ALICE = {"Authorization": "Basic " + base64.b64encode(f"alice:{ALICE_SECRET}".encode()).decode()}
# The document's browser client: `{jsonrpc: '2.0', method: 'offer', params: {sdp, type}, id: 1}`.
DOC_OFFER = {"jsonrpc": "2.0", "method": "offer", "params": {"sdp": OFFER_SDP, "type": "offer"}, "id": 1}


@pytest.fixture
async def env() -> AsyncIterator[tuple[Harness, Client]]:
    config = demo_config(
        GATEWAY_USERS__0__API_KEYS=f'[{{key: "{API_KEY}", default_dial: "2000"}}]',
        # a lost socket's calls wait this long for the peer to resume (issue 34), not the default 30 s
        GATEWAY_WEB_AUTH__RECONNECT_GRACE="0.5",
    )
    harness = make_harness(SignalingLimits(login_timeout=0.5), config=config)
    client = TestClient(TestServer(harness.app))
    await client.start_server()
    yield harness, client
    await client.close()


async def _ask(ws: Any, message: object) -> Any:
    await ws.send_str(json.dumps(message))
    return await ws.receive_json(timeout=5)


async def test_document_offer_with_api_key_in_the_url(env: tuple[Harness, Client]) -> None:
    harness, client = env
    async with client.ws_connect(f"/jsonrpc?api_key={API_KEY}") as ws:
        reply = await _ask(ws, DOC_OFFER)
        assert reply == {
            "jsonrpc": "2.0",
            "result": {"answer": {"type": "answer", "sdp": ANSWER_SDP}, "call_id": "c1"},
            "id": 1,
        }
        assert harness.calls.calls[0][0] == "dial" and harness.calls.calls[0][1][1:] == ("2000", OFFER_SDP)
        peer = next(s for s in harness.calls.sessions.values() if isinstance(s, RpcPeer))
        await peer.send_event(sig.Ringing("c1"))
        await peer.send_event(sig.Connected("c1"))
        await peer.send_event(sig.DtmfReceived("c1", "5", 120))
        notes = [await ws.receive_json(timeout=5) for _ in range(3)]
        assert notes == [
            {"jsonrpc": "2.0", "method": "progress", "params": {"call_id": "c1", "event": "ringing"}},
            {"jsonrpc": "2.0", "method": "progress", "params": {"call_id": "c1", "event": "answered"}},
            {"jsonrpc": "2.0", "method": "progress",
             "params": {"call_id": "c1", "event": "dtmf", "digit": "5", "duration_ms": 120}},
        ]  # fmt: skip
        reply = await _ask(ws, {"jsonrpc": "2.0", "method": "ice_candidate", "id": 2,
                                "params": {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"}})  # fmt: skip
        assert reply["result"] == {"call_id": "c1", "status": "received"}
        reply = await _ask(
            ws, {"jsonrpc": "2.0", "method": "disconnect", "params": {"reason": "bye"}, "id": 3}
        )
        assert reply["result"] == {"call_ids": ["c1"], "status": "disconnected"}
        assert ("hangup", "c1") in harness.calls.calls
        await peer.send_event(sig.Ended("c1", "hangup", "You hung up", None))
        note = await ws.receive_json(timeout=5)
        assert (note["method"], note["params"]["reason"]) == ("disconnect", "hangup")
    await harness.calls.closed_event.wait()


async def test_announce_authenticates_and_errors_before(env: tuple[Harness, Client]) -> None:
    _, client = env
    async with client.ws_connect("/jsonrpc") as ws:
        reply = await _ask(ws, DOC_OFFER)
        assert reply["error"]["code"] == rpc.UNAUTHORIZED and reply["id"] == 1
        reply = await _ask(ws, {"jsonrpc": "2.0", "method": "announce", "id": 2,
                                "params": {"peer_id": "p1", "credentials": {"user": "alice", "secret": "bad"}}})  # fmt: skip
        assert (reply["error"]["code"], reply["error"]["data"]["http_status"]) == (rpc.UNAUTHORIZED, 401)
        reply = await _ask(ws, {"jsonrpc": "2.0", "method": "announce", "id": 3,
                                "params": {"peer_id": "p1", "capabilities": {"audio": True},
                                           "credentials": {"user": "bob", "secret": "bob-demo"}}})  # fmt: skip
        assert reply["result"]["peer_id"] == "p1" and reply["result"]["user"] == "bob"
        reply = await _ask(ws, DOC_OFFER)  # bob has no default destination: -32602 names `to`
        assert (reply["error"]["code"], reply["error"]["data"]["field"]) == (rpc.INVALID_PARAMS, "to")
        offer = {**DOC_OFFER, "params": {"sdp": OFFER_SDP, "to": FAILING_NUMBER}, "id": 4}
        reply = await _ask(ws, offer)
        assert (reply["error"]["code"], reply["error"]["data"]["reason"]) == (
            rpc.CALL_FAILED,
            "no_such_number",
        )


async def test_batch_and_protocol_errors(env: tuple[Harness, Client]) -> None:
    _, client = env
    async with client.ws_connect("/jsonrpc", headers=ALICE) as ws:
        await ws.send_str("{")
        assert (await ws.receive_json(timeout=5))["error"]["code"] == rpc.PARSE_ERROR
        batch = [
            {"jsonrpc": "2.0", "method": "ping", "id": 1},
            {"jsonrpc": "2.0", "method": "nope", "id": 2},
            {"jsonrpc": "2.0", "method": "ping"},  # a notification: no reply
            {"jsonrpc": "2.0", "method": "offer", "params": {"sdp": "junk"}, "id": 3},
            "x",
        ]
        replies = await _ask(ws, batch)
        assert [(r.get("id"), r.get("result") or r["error"]["code"]) for r in replies] == [
            (None, rpc.INVALID_REQUEST),
            (1, {"pong": True}),
            (2, rpc.METHOD_NOT_FOUND),
            (3, rpc.INVALID_PARAMS),
        ]
        await ws.send_str(json.dumps([{"jsonrpc": "2.0", "method": "ping"}]))  # notifications only
        reply = await _ask(ws, {"jsonrpc": "2.0", "method": "answer", "params": {"call_id": "c9", "sdp": OFFER_SDP}, "id": 5})  # fmt: skip
        assert (reply["id"], reply["error"]["code"]) == (5, rpc.NOT_FOUND)  # nothing in between: no reply


async def test_bad_credentials_at_the_upgrade_and_login_timeout(env: tuple[Harness, Client]) -> None:
    _, client = env
    response = await client.get("/jsonrpc?api_key=wrong-key-wrong-key")
    assert response.status == 401 and (await response.json())["code"] == 401
    async with client.ws_connect("/jsonrpc") as ws:
        message = await ws.receive(timeout=5)  # no announce within login_timeout
        assert ws.close_code == 4008, message


async def test_a_flood_of_calls_closes_the_socket_like_ws() -> None:
    """`max_rate_limited` refused calls in a row close the socket with 1008, as /ws and rooms do (a
    black-box run saw 260 of 300 pings refused and the socket kept)."""
    harness = make_harness(SignalingLimits(max_rate_limited=20), config=demo_config())
    client = TestClient(TestServer(harness.app))
    await client.start_server()
    try:
        async with client.ws_connect("/jsonrpc") as ws:
            for n in range(100):
                await ws.send_str(json.dumps({"jsonrpc": "2.0", "method": "ping", "id": n}))
            codes = []
            async with asyncio.timeout(5):
                while (message := await ws.receive()).type is WSMsgType.TEXT:
                    reply = json.loads(message.data)
                    codes.append(reply["error"]["code"] if "error" in reply else 0)
            assert ws.close_code == 1008, (ws.close_code, len(codes))
            assert set(codes) <= {0, rpc.RATE_LIMITED} and codes.count(0) >= 40, codes  # the burst
            assert codes[-20:] == [rpc.RATE_LIMITED] * 20, codes  # then 20 refused in a row: closed
    finally:
        await client.close()


async def test_inbound_call_rings_an_announced_peer(env: tuple[Harness, Client]) -> None:
    harness, client = env
    async with client.ws_connect("/jsonrpc", headers={"X-API-Key": API_KEY}) as ws:
        announce = {"jsonrpc": "2.0", "method": "announce", "id": 1,
                    "params": {"peer_id": "desk", "capabilities": {"incoming_calls": True}}}  # fmt: skip
        assert (await _ask(ws, announce))["result"]["incoming_calls"] is True
        peer = next(s for s in harness.calls.sessions.values() if isinstance(s, RpcPeer))
        assert await harness.presence.sessions_of("alice") == (peer.id,)
        await peer.send_event(sig.Incoming("c7", "sip:2000@127.0.0.1", "Desk"))
        await peer.send_event(sig.Offer("c7", OFFER_SDP))
        note = await ws.receive_json(timeout=5)
        assert note == {"jsonrpc": "2.0", "method": "offer",
                        "params": {"call_id": "c7", "sdp": {"type": "offer", "sdp": OFFER_SDP}}}  # fmt: skip
        assert ("request_offer", "c7") in [
            (n, a if isinstance(a, str) else a[0]) for n, a in harness.calls.calls
        ]
        answer = {"jsonrpc": "2.0", "method": "answer", "id": 2,
                  "params": {"call_id": "c7", "sdp": {"type": "answer", "sdp": ANSWER_SDP}}}  # fmt: skip
        assert (await _ask(ws, answer))["result"] == {"call_id": "c7", "status": "answered"}
        assert ("answer", ("c7", ANSWER_SDP)) in harness.calls.calls
    await harness.calls.closed_event.wait()
    assert await harness.presence.sessions_of("alice") == ()
