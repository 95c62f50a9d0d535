"""JSON-RPC peer ids belong to users (issue 32 item 2), against a whole gateway with real WebSocket clients.

alice holds `alice-desk`; bob announcing it gets -32008 `peer_id_taken` naming the id, and alice's own
call to `alice-desk` still rings her desk, never bob, with a result naming who answered
(`answered_by {peer_id, user}`). alice's `allow_outbound` (only `2000`) does not let her call bob's number
(1002): her relayed call to bob's peer is refused with -32003 `forbidden` and bob hears nothing; bob
(`.`) may call her. When alice's desk socket closes the id stays hers: bob is still refused, her
reconnect takes it back and rings again. The relay carries SDP as it is: a minimal description does.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from tests.e2e.dialects.test_jsonrpc import RpcClient
from tests.e2e.harness import BOB_SECRET, gateway_config, running_gateway

API_KEY = "e2e-jsonrpc-peer-ids-0123456789"
OFFER = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
ANSWER = "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
BOB = {"user": "bob", "secret": BOB_SECRET}


async def _no_offer(client: RpcClient) -> None:
    """A ping round trip on the socket, then: no `offer` notification arrived before its pong."""
    pong = await client.request("ping", {})
    assert pong["result"] == {"pong": True}, pong
    assert [n for n in client.notes if n.get("method") == "offer"] == [], client.notes


async def _call(caller: RpcClient, callee: RpcClient, target: str) -> dict[str, Any]:
    """caller calls `target`; callee (the socket that must ring) answers; the caller's result."""
    calling = asyncio.ensure_future(caller.request("offer", {"sdp": OFFER, "target_peer_id": target}))
    ring = await callee.notification("offer", timeout=20)
    taken = await callee.request("answer", {"call_id": ring["call_id"], "sdp": ANSWER})
    assert taken["result"]["status"] == "answered", taken
    reply = await asyncio.wait_for(calling, 20)
    await caller.request("disconnect", {"call_id": ring["call_id"]})
    return reply


async def test_peer_ids_belong_to_their_user_and_calls_obey_allow_outbound() -> None:
    config = gateway_config(None, alice_outbound=("2000",), alice_extra={"api_keys": [{"key": API_KEY}]})
    async with running_gateway(config) as gateway, aiohttp.ClientSession() as http:
        url = f"{gateway.http_url.replace('http', 'ws')}/jsonrpc"
        async with (
            http.ws_connect(f"{url}?api_key={API_KEY}") as desk_ws,
            http.ws_connect(f"{url}?api_key={API_KEY}") as phone_ws,
            http.ws_connect(url) as bob_ws,
        ):
            desk, phone, bob = RpcClient(desk_ws), RpcClient(phone_ws), RpcClient(bob_ws)
            held = await desk.request(
                "announce", {"peer_id": "alice-desk", "capabilities": {"incoming_calls": True}}
            )
            assert held["result"]["user"] == "alice", held

            taken = await bob.request("announce", {
                "peer_id": "alice-desk", "capabilities": {"incoming_calls": True}, "credentials": BOB,
            })  # fmt: skip
            error = taken["error"]
            assert error["code"] == -32008, taken
            assert "alice-desk" in error["message"] and error["data"]["reason"] == "peer_id_taken", taken
            assert error["data"]["field"] == "peer_id", taken
            bob_own = await bob.request(
                "announce", {"peer_id": "bob-1", "capabilities": {"incoming_calls": True}}
            )
            assert bob_own["result"]["user"] == "bob", bob_own  # bob is logged in; his own id is his

            assert (await phone.request("announce", {"peer_id": "alice-phone"}))["result"]["user"] == "alice"
            result = (await _call(phone, desk, "alice-desk"))["result"]
            assert result["answered_by"] == {"peer_id": "alice-desk", "user": "alice"}, result
            await _no_offer(bob)

            refused = await phone.request("offer", {"sdp": OFFER, "target_peer_id": "bob-1"})
            assert refused["error"]["code"] == -32003, refused
            assert refused["error"]["data"]["field"] == "target_peer_id", refused
            assert "allow_outbound" in refused["error"]["message"], refused
            await _no_offer(bob)

            allowed = (await _call(bob, desk, "alice-desk"))["result"]
            assert allowed["answered_by"] == {"peer_id": "alice-desk", "user": "alice"}, allowed

        # alice's desk socket closed: the id stays hers (reserved), her reconnect takes it back
        async with http.ws_connect(url) as bob_ws, http.ws_connect(f"{url}?api_key={API_KEY}") as phone_ws:
            bob, phone = RpcClient(bob_ws), RpcClient(phone_ws)
            again = await bob.request("announce", {"peer_id": "alice-desk", "credentials": BOB})
            assert again["error"]["code"] == -32008, again
            await phone.request("announce", {"peer_id": "alice-phone"})
            async with http.ws_connect(f"{url}?api_key={API_KEY}") as desk_ws:
                desk = RpcClient(desk_ws)
                back = await desk.request(
                    "announce", {"peer_id": "alice-desk", "capabilities": {"incoming_calls": True}}
                )
                assert back["result"]["peer_id"] == "alice-desk", back
                result = (await _call(phone, desk, "alice-desk"))["result"]
                assert result["answered_by"]["user"] == "alice", result
            await _no_offer(bob)
