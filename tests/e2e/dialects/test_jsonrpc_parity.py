"""The last cells of JSON-RPC's row of the parity matrix (issue 33 item 4), on the wire with the pjsua2
desk phones of tests/e2e/dialects/test_jsonrpc_call_controls.py: A (2000, by its URI, the API key's
default destination) and B (2001 at the PBX domain's port 5060). An aiortc peer on a real `/jsonrpc`
WebSocket:

- early media: A answers 183 with its tone: `progress early_media` and the tone heard, and `answered`
  only after A's 200; then A holds the call and takes it off hold: `held` / `resumed` by remote;
- attended transfer: the peer calls A, holds it, consults B, then `transfer {call_id: a, replaces: b}`:
  A gets a REFER with Replaces, B takes A's INVITE in place of the gateway's leg, both of the peer's
  calls end, and A and B talk.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp

from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.webpeer import WebPeer
from tests.e2e.dialects.test_http_client_parity import joined_by_replaces, joined_call_ends
from tests.e2e.dialects.test_jsonrpc import API_KEY, RpcClient
from tests.e2e.dialects.test_jsonrpc_call_controls import (
    live_rpc_client,
    transfer_states,
    two_phones_and_a_peer,
    two_phones_config,
)
from tests.e2e.harness import running_gateway, wait_until


async def _call(client: RpcClient, peer: WebPeer, **offer: str) -> str:
    """The peer's offer placed (to `offer["to"]`, else the key's default destination): its call id."""
    reply = await client.request("offer", {"sdp": await peer.offer(), "type": "offer", **offer})
    await peer.accept(reply["result"]["answer"]["sdp"])
    return str(reply["result"]["call_id"])


async def test_early_media_then_the_phone_holds_over_jsonrpc(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", answer="ring", tone=440) as phone_a,
        running_gateway(two_phones_config(phone_a)) as gateway,
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{gateway.http_url.replace('http', 'ws')}/jsonrpc?api_key={API_KEY}") as ws,
        live_rpc_client(ws) as client,
    ):
        peer = WebPeer(freq=1000)
        try:
            call_id = await _call(client, peer)
            at_a = (await phone_a.wait_for("incoming", timeout=15))["call"]

            # early media: A's 183 with its tone, answered only after its 200
            await phone_a.send("answer", call=at_a, code=183)
            await client.notification("progress", call_id=call_id, event="early_media")
            await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)
            assert (await client.request("ping", {}))["result"] == {"pong": True}  # reads what came
            answered = [n for n in client.notes if n["params"].get("event") == "answered"]
            assert not answered, client.notes
            await phone_a.send("answer", call=at_a, code=200)
            await client.notification("progress", call_id=call_id, event="answered")
            await phone_a.wait_for("state", call=at_a, state="CONFIRMED")

            # A holds the call and takes it off hold
            await phone_a.send("hold", call=at_a)
            held = await client.notification("progress", call_id=call_id, event="held")
            assert held["by"] == "remote", held
            await phone_a.send("unhold", call=at_a)
            resumed = await client.notification("progress", call_id=call_id, event="resumed")
            assert resumed["by"] == "remote", resumed
            peer.clear()
            await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)  # A's tone again

            reply = await client.request("disconnect", {})
            assert reply["result"] == {"call_ids": [call_id], "status": "disconnected"}, reply
            await phone_a.wait_for("state", call=at_a, state="DISCONNECTED")
        finally:
            await peer.close()
        await wait_until(lambda: gateway._health_details()["calls"] == 0)


async def test_attended_transfer_over_jsonrpc_joins_the_two_phones(tmp_path: Path) -> None:
    """As tests/e2e/sip_interop/test_transfer.py's attended transfer by the web user, over JSON-RPC."""
    require_desk_phone()
    async with two_phones_and_a_peer(tmp_path) as (phone_a, phone_b, gateway, client):
        peer_a, peer_b = WebPeer(freq=1000), WebPeer(freq=1200)
        try:
            call_a = await _call(client, peer_a)
            await client.notification("progress", call_id=call_a, event="answered")
            at_a = (await phone_a.wait_for("incoming"))["call"]
            await phone_a.wait_for("state", call=at_a, state="CONFIRMED")
            reply = await client.request("hold", {"call_id": call_a})
            assert reply["result"] == {"call_id": call_a, "status": "holding"}, reply
            await phone_a.wait_for("media", call=at_a, status="remote_hold")
            await client.notification("progress", call_id=call_a, event="held", by="local")

            # the consultation call to B
            call_b = await _call(client, peer_b, to="2001")
            at_b = (await phone_b.wait_for("incoming"))["call"]
            await client.notification("progress", call_id=call_b, event="answered")
            await phone_b.wait_for("state", call=at_b, state="CONFIRMED")
            await wait_until(lambda: peer_b.heard(880, last=1.0), timeout=10)

            reply = await client.request("transfer", {"call_id": call_a, "replaces": call_b})
            assert reply["result"] == {"call_id": call_a, "status": "transferring"}, reply
            joined = await joined_by_replaces(phone_a, at_a, phone_b, at_b)  # REFER with Replaces, taken
            states = await transfer_states(client, call_a)
            assert states[0] == "requested" and states[-1] == "succeeded", states
            ended_a = await client.notification("disconnect", call_id=call_a)
            ended_b = await client.notification("disconnect", call_id=call_b)
            assert ended_a["reason"] == "transferred", ended_a
            assert ended_b["reason"] in ("remote_hangup", "transferred"), ended_b
            await phone_a.wait_for("state", call=at_a, state="DISCONNECTED")
            await phone_b.wait_for("state", call=at_b, state="DISCONNECTED")
            await wait_until(lambda: gateway._health_details()["calls"] == 0, timeout=10)
            await joined_call_ends(phone_a, phone_b, *joined)  # A and B now talk directly
        finally:
            await peer_a.close()
            await peer_b.close()
