"""A pending JSON-RPC request no longer stalls the peer's socket (issue 32 item 7), against a whole gateway
with real WebSocket clients.

alice calls bob's announced peer, which lets it ring (the offer waits for his answer up to
`service_timeout`, 20 s). Meanwhile her `ping` is answered, and her `disconnect` (no call_id: all her
calls) ends the ringing call at once: its result lists the call, her pending `offer` fails with -32000
`cancelled`, and bob is told `disconnect {reason: cancelled}`. Before, `ping` and `disconnect` waited
behind the offer until it timed out.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from tests.e2e.dialects.test_jsonrpc import RpcClient
from tests.e2e.harness import BOB_SECRET, gateway_config, running_gateway

API_KEY = "e2e-jsonrpc-concurrency-0123456789"
OFFER = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
WAIT = 10.0  # generous, and still below the 20 s the offer would hold the socket


async def _replies(ws: aiohttp.ClientWebSocketResponse, ids: set[int]) -> dict[int, Any]:
    """Read until a response to each of `ids` came: the responses by id."""
    found: dict[int, Any] = {}
    async with asyncio.timeout(WAIT):
        while set(found) != ids:
            message = await ws.receive_json()
            if message.get("id") in ids:
                found[message["id"]] = message
    return found


async def test_ping_and_disconnect_pass_a_ringing_offer() -> None:
    config = gateway_config(None, alice_extra={"api_keys": [{"key": API_KEY}]})
    async with running_gateway(config) as gateway, aiohttp.ClientSession() as http:
        url = f"{gateway.http_url.replace('http', 'ws')}/jsonrpc"
        async with http.ws_connect(f"{url}?api_key={API_KEY}") as alice_ws, http.ws_connect(url) as bob_ws:
            bob = RpcClient(bob_ws)
            reply = await bob.request("announce", {
                "peer_id": "bob-1", "capabilities": {"incoming_calls": True},
                "credentials": {"user": "bob", "secret": BOB_SECRET},
            })  # fmt: skip
            assert reply["result"]["incoming_calls"] is True, reply

            def send(rpc_id: int, method: str, params: dict[str, Any]) -> Any:
                text = json.dumps({"jsonrpc": "2.0", "id": rpc_id, "method": method, "params": params})
                return alice_ws.send_str(text)

            await send(1, "announce", {"peer_id": "alice-1"})
            announced = await _replies(alice_ws, {1})
            assert announced[1]["result"]["user"] == "alice", announced
            await send(2, "offer", {"sdp": OFFER, "target_peer_id": "bob-1"})
            ring = await bob.notification("offer", timeout=WAIT)  # it rings; bob does not answer
            await send(3, "ping", {})
            found = await _replies(alice_ws, {3})
            assert found[3]["result"] == {"pong": True}, found

            await send(4, "disconnect", {})
            found = await _replies(alice_ws, {2, 4})
            assert ring["call_id"] in found[4]["result"]["call_ids"], found
            error = found[2]["error"]
            assert error["code"] == -32000 and error["data"]["reason"] == "cancelled", found
            note = await bob.notification("disconnect", timeout=WAIT, call_id=ring["call_id"])
            assert note["reason"] == "cancelled", note
