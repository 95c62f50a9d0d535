"""JSON-RPC 2.0 signaling (RemoteMedia's "WebRTC Transport Integration Guide") at `/jsonrpc`, with an aiortc
client against a pjsua2 desk phone through a whole gateway: the document's browser client's `offer`
(`{sdp, type}`, no destination: the API key's default) is answered with `result.answer` before the phone
picks up, progress comes as notifications, tones are heard both ways, `disconnect` hangs up; then the
phone calls the announced peer (`capabilities.incoming_calls`), which takes the `offer` notification with
`answer`, and tones flow both ways again."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp

from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.ports import free_range
from peers.webpeer import WebPeer
from tests.e2e.harness import gateway_config, running_gateway, wait_until
from tests.e2e.sip_interop.test_web_and_phone import wav_has_tone

API_KEY = "e2e-jsonrpc-key-0123456789"


class RpcClient:
    """A JSON-RPC 2.0 client over the WebSocket: requests by id, notifications kept in order."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.notes: list[dict[str, Any]] = []
        self._next = 1

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        rpc_id, self._next = self._next, self._next + 1
        await self.ws.send_str(
            json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": rpc_id})
        )
        while True:
            message: dict[str, Any] = await self.ws.receive_json(timeout=15)
            if message.get("id") == rpc_id:
                return message
            self.notes.append(message)

    async def notification(self, method: str, timeout: float = 15, **match: Any) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for note in self.notes:
                    params = note["params"]
                    if note["method"] == method and all(params.get(k) == v for k, v in match.items()):
                        self.notes.remove(note)
                        return dict(params)
                self.notes.append(await self.ws.receive_json())


async def test_jsonrpc_peer_calls_the_phone_and_the_phone_calls_it(tmp_path: Path) -> None:
    require_desk_phone()
    async with DeskPhone(tmp_path, user="2000", tone=440, answer_delay_ms=1000) as phone:
        config = gateway_config(
            phone.address,
            alice_extra={"api_keys": [{"key": API_KEY, "default_dial": "2000"}]},
            media={"rtp_ports": {"start": free_range()}},  # this branch's range
        )
        async with running_gateway(config) as gateway, aiohttp.ClientSession() as http:
            async with http.ws_connect(
                f"{gateway.http_url.replace('http', 'ws')}/jsonrpc?api_key={API_KEY}"
            ) as ws:
                client = RpcClient(ws)
                peer = WebPeer(freq=1000)
                try:
                    reply = await client.request("offer", {"sdp": await peer.offer(), "type": "offer"})
                    assert reply["result"]["answer"]["type"] == "answer", reply
                    assert not phone.seen("state", state="CONFIRMED")  # answered before the pickup
                    call_id = reply["result"]["call_id"]
                    await peer.accept(reply["result"]["answer"]["sdp"])
                    await client.notification("progress", call_id=call_id, event="ringing")
                    await client.notification("progress", call_id=call_id, event="answered")
                    incoming = await phone.wait_for("incoming")
                    await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)
                    await asyncio.sleep(1.0)
                    reply = await client.request("disconnect", {"call_id": call_id, "reason": "done"})
                    assert reply["result"] == {"call_ids": [call_id], "status": "disconnected"}, reply
                    await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
                    assert wav_has_tone(await phone.wait_for_recording(incoming["call"]), 1000)
                    ended = await client.notification("disconnect", call_id=call_id)
                    assert ended["reason"] == "hangup", ended
                finally:
                    await peer.close()

                reply = await client.request(
                    "announce",
                    {"peer_id": "alice-bot", "capabilities": {"audio": True, "incoming_calls": True}},
                )
                assert reply["result"]["incoming_calls"] is True, reply
                host, port = gateway.sip_address
                peer = WebPeer(freq=1000)
                try:
                    number = await phone.call(f"sip:1001@{host}:{port}")
                    offer = await client.notification("offer")
                    answer = await peer.answer(offer["sdp"]["sdp"])
                    reply = await client.request(
                        "answer", {"call_id": offer["call_id"], "sdp": answer, "type": "answer"}
                    )
                    assert reply["result"]["status"] == "answered", reply
                    await phone.wait_for("state", call=number, state="CONFIRMED")
                    await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)
                    await asyncio.sleep(1.0)
                    await phone.hangup(number)
                    ended = await client.notification("disconnect", call_id=offer["call_id"])
                    assert ended["reason"] == "remote_hangup", ended
                    assert wav_has_tone(await phone.wait_for_recording(number), 1000)
                finally:
                    await peer.close()
            await wait_until(lambda: gateway._health_details()["calls"] == 0)
