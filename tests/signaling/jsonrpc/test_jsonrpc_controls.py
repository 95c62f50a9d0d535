"""The JSON-RPC call controls (issue 33 item 2) through aiohttp's test server and the in-memory call
service: `hold`, `resume`, `dtmf`, `transfer` (blind and attended) and `message` on the peer's call,
`call_id` optional with one call, the refusals naming their field (a call relayed to another peer
too), the DTMF budget, and the progress notifications of how they go. On the wire with the pjsua2 desk
phone: tests/e2e/dialects/test_jsonrpc_call_controls.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.signaling import events as sig
from gateway.signaling.jsonrpc import framing as rpc
from gateway.signaling.jsonrpc.peer import RpcPeer
from gateway.signaling.limits import SignalingLimits
from gateway.signaling.service import SessionSink
from tests.signaling.harness import ANSWER_SDP, OFFER_SDP, FakeCallService, demo_config, make_harness

Client = TestClient[web.Request, web.Application]
API_KEY = "jsonrpc-controls-key-0123456789"
URL = f"/jsonrpc?api_key={API_KEY}"


@dataclass
class ChatCalls(FakeCallService):
    """The in-memory call service with chat in calls (a `ChatService`, as the gateway's)."""

    async def call_message(self, session: SessionSink, call_id: str, body: str) -> None:
        self._known(call_id)
        self.calls.append(("call_message", (call_id, body)))


async def _client(calls: FakeCallService) -> Client:
    config = demo_config(GATEWAY_USERS__0__API_KEYS=f'[{{key: "{API_KEY}", default_dial: "2000"}}]')
    harness = make_harness(SignalingLimits(dtmf_burst=5.0), config=config, calls=calls)
    client = TestClient(TestServer(harness.app))
    await client.start_server()
    return client


@pytest.fixture
async def chat() -> AsyncIterator[tuple[ChatCalls, Client]]:
    calls = ChatCalls()
    client = await _client(calls)
    yield calls, client
    await client.close()


class Rpc:
    """Requests by id over the test socket; notifications kept in order."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.notes: list[dict[str, Any]] = []
        self._next = 1

    async def ask(self, method: str, **params: Any) -> dict[str, Any]:
        rpc_id, self._next = self._next, self._next + 1
        await self.ws.send_str(
            json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": rpc_id})
        )
        while (message := await self.ws.receive_json(timeout=5)).get("id") != rpc_id:
            self.notes.append(message)
        return dict(message)

    async def note(self) -> dict[str, Any]:
        if self.notes:
            return self.notes.pop(0)
        return dict(await self.ws.receive_json(timeout=5))


def _error(reply: dict[str, Any]) -> tuple[int, str | None]:
    return reply["error"]["code"], reply["error"]["data"].get("field")


async def test_controls_on_the_peers_calls(chat: tuple[ChatCalls, Client]) -> None:
    calls, client = chat
    async with client.ws_connect(URL) as ws:
        peer = Rpc(ws)
        assert (await peer.ask("offer", sdp=OFFER_SDP))["result"]["call_id"] == "c1"
        # the peer's only call: call_id may be left out
        assert (await peer.ask("hold"))["result"] == {"call_id": "c1", "status": "holding"}
        assert (await peer.ask("resume", call_id="c1"))["result"] == {"call_id": "c1", "status": "resuming"}
        assert (await peer.ask("dtmf", digits="58", duration_ms=120))["result"]["status"] == "sent"
        assert (await peer.ask("message", body="hello"))["result"] == {"call_id": "c1", "status": "sent"}
        assert (await peer.ask("transfer", to="2001"))["result"] == {
            "call_id": "c1",
            "status": "transferring",
        }
        assert calls.calls[1:] == [
            ("hold", "c1"),
            ("resume", "c1"),
            ("dtmf", ("c1", "58", 120)),
            ("call_message", ("c1", "hello")),
            ("transfer", ("c1", "2001", None)),
        ]
        # a second call: attended transfer of c1 to c2's far end; call_id is required now
        assert (await peer.ask("offer", sdp=OFFER_SDP, to="2002"))["result"]["call_id"] == "c2"
        assert (await peer.ask("transfer", call_id="c1", replaces="c2"))["result"]["status"] == "transferring"
        assert calls.calls[-1] == ("transfer", ("c1", None, "c2"))
        assert _error(await peer.ask("hold")) == (rpc.INVALID_PARAMS, "call_id")
        assert _error(await peer.ask("hold", call_id="c9")) == (rpc.NOT_FOUND, "call_id")
        assert _error(await peer.ask("transfer", call_id="c1", replaces="c9")) == (rpc.NOT_FOUND, "replaces")
        assert _error(await peer.ask("transfer", call_id="c1", replaces="c1")) == (
            rpc.INVALID_PARAMS,
            "replaces",
        )
        assert _error(await peer.ask("dtmf", call_id="c1", digits="5x")) == (rpc.INVALID_PARAMS, "digits")
        # the DTMF budget (limits.dtmf_burst, 5 s here): 32 digits of 2 s are refused, the rest goes on
        refused = await peer.ask("dtmf", call_id="c1", digits="1" * 32, duration_ms=2000)
        assert _error(refused) == (rpc.RATE_LIMITED, "digits"), refused
        assert calls.calls[-1] == ("transfer", ("c1", None, "c2"))


async def test_how_the_controls_go_is_told_as_progress(chat: tuple[ChatCalls, Client]) -> None:
    calls, client = chat
    async with client.ws_connect(URL) as ws:
        peer = Rpc(ws)
        assert (await peer.ask("offer", sdp=OFFER_SDP))["result"]["call_id"] == "c1"
        rpc_peer = next(s for s in calls.sessions.values() if isinstance(s, RpcPeer))
        await rpc_peer.send_event(sig.Transfer("c1", "failed", 480, "The transfer failed: 480"))
        await rpc_peer.send_event(sig.MessageResult("c1", 200))
        await rpc_peer.send_event(sig.TransferRequested("c1", "sip:2001@pbx"))
        await rpc_peer.send_event(sig.ErrorMessage("no_call", "not about a call"))  # no call_id: not told
        await rpc_peer.send_event(sig.ErrorMessage("destination_not_allowed", "no", call_id="c1"))
        params = [(await peer.note())["params"] for _ in range(4)]
        assert params == [
            {"call_id": "c1", "event": "transfer", "state": "failed", "sip_status": 480,
             "message": "The transfer failed: 480"},
            {"call_id": "c1", "event": "message_result", "sip_status": 200},
            {"call_id": "c1", "event": "transfer_requested", "to": "sip:2001@pbx"},
            {"call_id": "c1", "event": "error", "code": "destination_not_allowed", "message": "no"},
        ]  # fmt: skip
        # the SIP party's REFER carried out: a new call with transfer_of
        assert (await peer.ask("offer", sdp=OFFER_SDP, to="sip:2001@pbx", transfer_of="c1"))["result"]


async def test_a_relayed_call_has_no_controls(chat: tuple[ChatCalls, Client]) -> None:
    calls, client = chat
    async with client.ws_connect(URL) as caller_ws, client.ws_connect(URL) as target_ws:
        caller, target = Rpc(caller_ws), Rpc(target_ws)
        announced = await target.ask("announce", peer_id="desk", capabilities={"incoming_calls": True})
        assert announced["result"]["incoming_calls"] is True
        offer = asyncio.ensure_future(caller.ask("offer", sdp=OFFER_SDP, target_peer_id="desk"))
        ringing = await target.note()
        assert (await target.ask("answer", call_id=ringing["params"]["call_id"], sdp=ANSWER_SDP))["result"]
        call_id = (await offer)["result"]["call_id"]
        for method, params in [("hold", {}), ("dtmf", {"digits": "5"}), ("message", {"body": "hi"})]:
            refused = await caller.ask(method, call_id=call_id, **params)
            assert _error(refused) == (rpc.CONFLICT, "call_id"), refused
            assert call_id in refused["error"]["message"]
        assert _error(await target.ask("transfer", call_id=call_id, to="2001")) == (rpc.CONFLICT, "call_id")
        assert [name for name, _ in calls.calls] == []  # nothing reached the call service


async def test_no_chat_without_a_chat_service() -> None:
    client = await _client(FakeCallService())
    try:
        async with client.ws_connect(URL) as ws:
            peer = Rpc(ws)
            assert (await peer.ask("offer", sdp=OFFER_SDP))["result"]["call_id"] == "c1"
            assert _error(await peer.ask("message", body="hi")) == (rpc.CONFLICT, "call_id")
    finally:
        await client.close()


@dataclass
class RestartCalls(FakeCallService):
    """The in-memory call service whose calls restart ICE (a `WebIceRestartService`, as the gateway's):
    an offer whose text has "restart" restarts it, any other restarts nothing."""

    async def restart_web_ice(self, session: SessionSink, call_id: str, offer: str) -> str | None:
        self._known(call_id)
        self.calls.append(("restart_web_ice", call_id))
        return ANSWER_SDP if "restart" in offer else None


async def test_an_offer_for_a_call_restarts_its_ice() -> None:
    """`offer {call_id, sdp}` (issue 34): the call's ICE restart, answered for the same call; one that
    restarts nothing, or for a call the peer has not, is refused naming the field."""
    calls = RestartCalls()
    client = await _client(calls)
    try:
        async with client.ws_connect(URL) as ws:
            peer = Rpc(ws)
            assert (await peer.ask("offer", sdp=OFFER_SDP))["result"]["call_id"] == "c1"
            restart = OFFER_SDP + "a=x-restart\r\n"
            reply = await peer.ask("offer", call_id="c1", sdp={"type": "offer", "sdp": restart})
            assert reply["result"] == {"answer": {"type": "answer", "sdp": ANSWER_SDP}, "call_id": "c1"}
            assert _error(await peer.ask("offer", call_id="c1", sdp=OFFER_SDP)) == (rpc.INVALID_PARAMS, "sdp")
            assert _error(await peer.ask("offer", call_id="c9", sdp=restart)) == (rpc.NOT_FOUND, "call_id")
            assert calls.calls[1:] == [("restart_web_ice", "c1"), ("restart_web_ice", "c1")]
            assert len([c for c in calls.calls if c[0] == "dial"]) == 1  # no second call placed
    finally:
        await client.close()
