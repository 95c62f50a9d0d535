"""Two aiortc JSON-RPC clients at `/jsonrpc` calling each other through a whole gateway (`offer` with
`target_peer_id`, relayed end to end: gateway/signaling/jsonrpc/relay.py): alice's offer reaches bob's
announced peer as an `offer` notification, bob's `answer` is alice's result, and their tones (1000 Hz,
700 Hz) flow between them both ways; `disconnect` reaches the other end. Then bob turns a second call
down while it rings (alice's offer fails with -32000 `declined`), an unknown target is -32002 and a peer
that takes no calls -32003."""

from __future__ import annotations

import asyncio

import aiohttp

from peers.webpeer import WebPeer
from tests.e2e.dialects.test_jsonrpc import RpcClient
from tests.e2e.harness import BOB_SECRET, gateway_config, running_gateway, wait_until

API_KEY = "e2e-jsonrpc-peers-0123456789"


async def test_two_jsonrpc_peers_call_each_other() -> None:
    config = gateway_config(None, alice_extra={"api_keys": [{"key": API_KEY}]})
    async with running_gateway(config) as gateway, aiohttp.ClientSession() as http:
        url = f"{gateway.http_url.replace('http', 'ws')}/jsonrpc"
        async with http.ws_connect(f"{url}?api_key={API_KEY}") as alice_ws, http.ws_connect(url) as bob_ws:
            alice, bob = RpcClient(alice_ws), RpcClient(bob_ws)
            reply = await bob.request("announce", {
                "peer_id": "bob-1", "capabilities": {"incoming_calls": True},
                "credentials": {"user": "bob", "secret": BOB_SECRET},
            })  # fmt: skip
            assert reply["result"]["incoming_calls"] is True, reply
            assert (await alice.request("announce", {"peer_id": "alice-1"}))["result"]["user"] == "alice"
            alice_peer, bob_peer = WebPeer(freq=1000), WebPeer(freq=700)
            try:
                offer = await alice_peer.offer()
                missing = await alice.request(
                    "offer", {"sdp": offer, "type": "offer", "target_peer_id": "nobody"}
                )
                assert (
                    missing["error"]["code"] == -32002
                    and missing["error"]["data"]["field"] == "target_peer_id"
                )
                refused = await alice.request("offer", {"sdp": offer, "target_peer_id": "alice-1"})  # itself
                assert refused["error"]["code"] == -32002
                both = await alice.request("offer", {"sdp": offer, "to": "2000", "target_peer_id": "bob-1"})
                assert both["error"]["code"] == -32602

                calling = asyncio.ensure_future(
                    alice.request("offer", {"sdp": offer, "type": "offer", "target_peer_id": "bob-1"})
                )
                ring = await bob.notification("offer")
                assert (ring["from_peer_id"], ring["from"], ring["sdp"]["sdp"]) == ("alice-1", "alice", offer)
                answer = await bob_peer.answer(ring["sdp"]["sdp"])
                taken = await bob.request("answer", {"call_id": ring["call_id"], "sdp": answer})
                assert taken["result"] == {"call_id": ring["call_id"], "status": "answered"}
                result = (await calling)["result"]
                assert result == {
                    "answer": {"type": "answer", "sdp": answer}, "call_id": ring["call_id"],
                    "answered_by": {"peer_id": "bob-1", "user": "bob"},
                }  # fmt: skip
                await alice_peer.accept(result["answer"]["sdp"])
                await wait_until(lambda: alice_peer.heard(700, last=1.0), timeout=10)
                await wait_until(lambda: bob_peer.heard(1000, last=1.0), timeout=10)
                candidate = {"candidate": "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host", "sdpMid": "0"}
                sent = await alice.request(
                    "ice_candidate", {"call_id": ring["call_id"], "candidate": candidate}
                )
                assert sent["result"]["status"] == "received"
                relayed = await bob.notification("ice_candidate", call_id=ring["call_id"])
                assert relayed["candidate"]["candidate"] == candidate["candidate"]
                ended = await alice.request("disconnect", {"call_id": ring["call_id"]})
                assert ended["result"] == {"call_ids": [ring["call_id"]], "status": "disconnected"}
                note = await bob.notification("disconnect", call_id=ring["call_id"])
                assert note["reason"] == "remote_hangup"
            finally:
                await alice_peer.close()
                await bob_peer.close()

            calling = asyncio.ensure_future(alice.request("offer", {"sdp": offer, "target_peer_id": "bob-1"}))
            ring = await bob.notification("offer")
            await bob.request("disconnect", {"call_id": ring["call_id"]})
            declined = await calling
            assert declined["error"]["code"] == -32000 and declined["error"]["data"]["reason"] == "declined"
            closed = await bob.request("answer", {"call_id": ring["call_id"], "sdp": offer})
            assert closed["error"]["code"] == -32002  # that call is over
        async with http.ws_connect(
            f"{url}?api_key={API_KEY}"
        ) as other_ws:  # announced without incoming_calls
            other = RpcClient(other_ws)
            await other.request("announce", {"peer_id": "quiet-1"})
            async with http.ws_connect(f"{url}?api_key={API_KEY}") as caller_ws:
                caller = RpcClient(caller_ws)
                await caller.request("announce", {"peer_id": "caller-1"})
                forbidden = await caller.request("offer", {"sdp": offer, "target_peer_id": "quiet-1"})
                assert forbidden["error"]["code"] == -32003
