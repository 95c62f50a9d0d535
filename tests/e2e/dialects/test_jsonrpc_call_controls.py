"""JSON-RPC's call controls (issue 33 item 2): what `/ws` and the HTTP API do in a call, for a `/jsonrpc`
peer, on the wire with two pjsua2 desk phones: A (2000, reached by its URI, which alice may call
exactly) and B (2001 at the PBX domain's port 5060, as tests/e2e/sip_interop/test_transfer.py has it).

An aiortc peer on a real `/jsonrpc` WebSocket calls A, then:
- `dtmf {digits: "58"}`: A receives 5 and 8; A's 7 comes back as `progress dtmf`;
- `message {body}`: A receives it as a MESSAGE in the call's dialog, `progress message_result` follows;
  A's MESSAGE comes as `progress message`;
- `hold` / `resume`: A reports remote hold, then active media; `progress held` / `resumed` by local;
- refusals: -32602 naming the field, -32002 for a call the peer has not; a transfer to a destination
  alice may not call: `progress error` and `transfer` failed, no REFER;
- A's REFER to B reaches the peer as `progress transfer_requested {to}`; the peer carries it out with
  `offer {to, transfer_of}`, B answers, and A hears it succeeded (NOTIFY 200);
- blind `transfer {to: "2001"}`: A gets the REFER, calls B, and the peer follows it as `progress
  transfer` up to succeeded; its call to A ends `transferred`.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import aiohttp

from gateway.app import Gateway
from gateway.config import Config
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.ports import free_port, free_range
from peers.webpeer import WebPeer
from tests.e2e.dialects.test_jsonrpc import API_KEY, RpcClient
from tests.e2e.harness import gateway_config, running_gateway, wait_until
from tests.e2e.sip_interop.test_transfer import DOMAIN


def two_phones_config(phone_a: DeskPhone) -> Config:
    """No pbx.address: "2001" goes to sip:2001@<PBX domain> (phone B); A is the API key's default
    destination, reached by its URI."""
    return gateway_config(
        None,
        domain=DOMAIN,
        sip={"listen": [{"transport": "udp", "host": "127.0.0.1", "port": free_port(socket.SOCK_DGRAM)}]},
        media={"rtp_ports": {"start": free_range()}},  # this branch's range
        alice_outbound=("2xxx", phone_a.uri),
        alice_extra={"api_keys": [{"key": API_KEY, "default_dial": phone_a.uri}]},
    )


class _Frames:
    """A `/jsonrpc` socket as `RpcClient` uses it (`send_str`, `receive_json`), read all the time by a
    task of its own: the gateway's heartbeat pings (every 4 s, a pong due within 2 s) are answered while
    the test waits on a phone or the media, where a socket read only in `request` and `notification`
    would be closed by the gateway, and the peer's calls with it."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._frames: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            async for message in self._ws:  # answers the pings (autoping)
                if message.type is aiohttp.WSMsgType.TEXT:
                    self._frames.put_nowait(json.loads(message.data))
        finally:
            self._frames.put_nowait(None)  # closed

    async def send_str(self, text: str) -> None:
        await self._ws.send_str(text)

    async def receive_json(self, timeout: float | None = None) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            frame = await self._frames.get()
        if frame is None:
            self._frames.put_nowait(None)
            raise ConnectionError(f"the gateway closed the socket ({self._ws.close_code})")
        return frame


@asynccontextmanager
async def live_rpc_client(ws: aiohttp.ClientWebSocketResponse) -> AsyncIterator[RpcClient]:
    """An `RpcClient` on `ws` whose socket is read in the background (`_Frames`)."""
    frames = _Frames(ws)
    try:
        yield RpcClient(cast(aiohttp.ClientWebSocketResponse, frames))
    finally:
        frames.reader.cancel()
        await asyncio.gather(frames.reader, return_exceptions=True)


@asynccontextmanager
async def two_phones_and_a_peer(
    tmp_path: Path,
) -> AsyncIterator[tuple[DeskPhone, DeskPhone, Gateway, RpcClient]]:
    """Phones A (440 Hz) and B (880 Hz), the gateway, and a `/jsonrpc` peer with the API key."""
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone_a,
        DeskPhone(tmp_path, user="2001", host=DOMAIN, port=5060, tone=880) as phone_b,
        running_gateway(two_phones_config(phone_a)) as gateway,
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{gateway.http_url.replace('http', 'ws')}/jsonrpc?api_key={API_KEY}") as ws,
        live_rpc_client(ws) as client,
    ):
        yield phone_a, phone_b, gateway, client


async def transfer_states(client: RpcClient, call_id: str) -> list[str]:
    """The `transfer` progress of call `call_id` up to its end (succeeded or failed)."""
    states = [(await client.notification("progress", call_id=call_id, event="transfer"))["state"]]
    while states[-1] not in ("succeeded", "failed"):
        note = await client.notification("progress", timeout=20, call_id=call_id, event="transfer")
        states.append(note["state"])
    return states


async def test_hold_dtmf_chat_and_transfer_over_jsonrpc(tmp_path: Path) -> None:
    require_desk_phone()
    async with two_phones_and_a_peer(tmp_path) as (phone_a, phone_b, gateway, client):
        peer, peer_b = WebPeer(freq=1000), WebPeer(freq=1200)
        try:
            reply = await client.request("offer", {"sdp": await peer.offer(), "type": "offer"})
            call_id = reply["result"]["call_id"]
            await peer.accept(reply["result"]["answer"]["sdp"])
            await client.notification("progress", call_id=call_id, event="answered")
            at_a = (await phone_a.wait_for("incoming"))["call"]
            await phone_a.wait_for("state", call=at_a, state="CONFIRMED")

            # DTMF both ways
            reply = await client.request("dtmf", {"digits": "58"})  # the peer's only call: no call_id
            assert reply["result"] == {"call_id": call_id, "status": "sent"}, reply
            assert [(await phone_a.wait_for("dtmf"))["digit"] for _ in range(2)] == ["5", "8"]
            await phone_a.send("dtmf", call=at_a, digits="7")
            heard = await client.notification("progress", call_id=call_id, event="dtmf")
            assert heard["digit"] == "7", heard

            # chat both ways
            reply = await client.request("message", {"call_id": call_id, "body": "hello from RPC"})
            assert reply["result"] == {"call_id": call_id, "status": "sent"}, reply
            assert (await phone_a.wait_for("message", call=at_a))["body"] == "hello from RPC"
            result = await client.notification("progress", call_id=call_id, event="message_result")
            assert result["sip_status"] == 200, result
            await phone_a.send("message", call=at_a, body="hello from the desk")
            said = await client.notification("progress", call_id=call_id, event="message")
            assert said["body"] == "hello from the desk", said

            # hold and resume: A's media go on hold and back
            reply = await client.request("hold", {"call_id": call_id})
            assert reply["result"] == {"call_id": call_id, "status": "holding"}, reply
            await phone_a.wait_for("media", call=at_a, status="remote_hold")
            held = await client.notification("progress", call_id=call_id, event="held")
            assert held["by"] == "local", held
            reply = await client.request("resume", {})
            assert reply["result"] == {"call_id": call_id, "status": "resuming"}, reply
            await phone_a.wait_for("media", call=at_a, status="active")
            resumed = await client.notification("progress", call_id=call_id, event="resumed")
            assert resumed["by"] == "local", resumed

            # refusals name the field; a call the peer has not
            bad: list[tuple[str, dict[str, Any], str]] = [
                ("dtmf", {"digits": "5x"}, "digits"),
                ("dtmf", {"digits": "5", "duration_ms": 5000}, "duration_ms"),
                ("transfer", {}, "to"),
                ("message", {"body": ""}, "body"),
            ]
            for method, params, field in bad:
                error = (await client.request(method, params))["error"]
                assert (error["code"], error["data"]["field"]) == (-32602, field), error
            error = (await client.request("hold", {"call_id": "nope"}))["error"]
            assert (error["code"], error["data"]["field"]) == (-32002, "call_id"), error
            # a destination alice may not call: taken, then refused as progress (no REFER)
            reply = await client.request("transfer", {"to": "3000"})
            assert reply["result"]["status"] == "transferring", reply
            refused = await client.notification("progress", call_id=call_id, event="error")
            assert refused["code"] == "destination_not_allowed", refused
            assert await transfer_states(client, call_id) == ["failed"]
            assert not phone_a.seen("transfer_request")

            # A refers the peer to B: asked as transfer_requested, carried out with transfer_of
            await phone_a.send("transfer", call=at_a, to=f"sip:2001@{DOMAIN}")
            asked = await client.notification("progress", call_id=call_id, event="transfer_requested")
            assert asked["to"] == f"sip:2001@{DOMAIN}", asked
            offer = {"sdp": await peer_b.offer(), "to": asked["to"], "transfer_of": call_id}
            reply = await client.request("offer", offer)
            call_b = reply["result"]["call_id"]
            await peer_b.accept(reply["result"]["answer"]["sdp"])
            await phone_b.wait_for("incoming")
            await client.notification("progress", call_id=call_b, event="answered")
            notified = await phone_a.wait_for("transfer_status", call=at_a, code=200, timeout=15)
            assert notified["final"], notified

            # blind transfer of the call to A: A gets the REFER, calls B, and the call ends transferred
            reply = await client.request("transfer", {"call_id": call_id, "to": "2001"})
            assert reply["result"] == {"call_id": call_id, "status": "transferring"}, reply
            referred = await phone_a.wait_for("transfer_request", call=at_a)
            assert referred["to"].strip("<>") == f"sip:2001@{DOMAIN}", referred
            states = await transfer_states(client, call_id)
            assert states[0] == "requested" and states[-1] == "succeeded", states
            ended = await client.notification("disconnect", call_id=call_id)
            assert ended["reason"] == "transferred", ended

            reply = await client.request("disconnect", {})
            assert reply["result"] == {"call_ids": [call_b], "status": "disconnected"}, reply
        finally:
            await peer.close()
            await peer_b.close()
        await wait_until(lambda: gateway._health_details()["calls"] == 0)
