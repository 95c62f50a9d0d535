"""Three-way calls (issue 37 item 2) in the API dialects, with pjsua2 phones A (2000, 440 Hz) and
B (2001, 660 Hz), each called by its URI and aiortc peers (1000 Hz):

- HTTP API (`WebRtcClient`): a session calls A and holds it, a second session calls B, `POST /webrtc/merge
  {session_id, with}` mixes them: the B session's peer hears 440 and 660 Hz, both sessions' events tell
  `merged`, and A hears B (its recording). Bad merges are 400/404/409 naming `with` or `session_id`;
  `POST /webrtc/split` holds B again, and A talks on with its own session.
- JSON-RPC: the same with `merge {call_ids}` and `split {call_id}`, the `merged` / `split` notifications,
  and -32602 / -32002 / -32004 naming `call_ids` for bad merges.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from gateway.config import Config
from gateway.signaling.client import WebRtcClient
from peers.audio import RATE
from peers.phone import DeskPhone
from peers.webpeer import WebPeer
from tests.e2e.dialects.test_http_client_parity import Progress
from tests.e2e.dialects.test_jsonrpc import RpcClient
from tests.e2e.dialects.test_jsonrpc_call_controls import live_rpc_client
from tests.e2e.harness import gateway_config, wait_until
from tests.e2e.softphone.test_three_way import hears, two_phones, windows_with

API_KEY = "e2e-three-way-dialects-0123456789"


def _config(phone_a: DeskPhone, phone_b: DeskPhone) -> Config:
    return gateway_config(
        None, alice_outbound=(phone_a.uri, phone_b.uri), alice_extra={"api_keys": [{"key": API_KEY}]}
    )


async def _post(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with http.post(url, json=body, headers={"X-API-Key": API_KEY}) as response:
        return response.status, await response.json()


async def test_http_api_merges_two_sessions_calls_and_splits_one(tmp_path: Path) -> None:
    async with (
        two_phones(tmp_path, _config) as (phone_a, phone_b, gateway),
        WebRtcClient(gateway.http_url, api_key=API_KEY) as client,
        aiohttp.ClientSession() as http,
    ):
        peer_a, peer_b = WebPeer(1000), WebPeer(1000)
        progress: list[Progress] = []
        try:
            answer = await client.send_offer(await peer_a.offer(), "with-a", {"dial": phone_a.uri})
            await peer_a.accept(answer.sdp)
            progress.append(Progress(client, "with-a"))
            await progress[0].next("answered")
            at_a = int((await phone_a.wait_for("incoming"))["call"])
            await wait_until(lambda: peer_a.heard(440, last=1.0), timeout=10)
            await client.hold("with-a")
            await progress[0].next("held", by="local")
            answer = await client.send_offer(await peer_b.offer(), "with-b", {"dial": phone_b.uri})
            await peer_b.accept(answer.sdp)
            progress.append(Progress(client, "with-b"))
            await progress[1].next("answered")
            at_b = int((await phone_b.wait_for("incoming"))["call"])
            await wait_until(lambda: peer_b.heard(660, last=1.0), timeout=10)

            merge = f"{gateway.http_url}/webrtc/merge"
            bad = [
                ({"session_id": "with-b"}, 400, "with"),
                ({"session_id": "with-b", "with": "with-b"}, 400, "with"),
                ({"session_id": "with-b", "with": "nobody"}, 404, "with"),
                ({"session_id": "nobody", "with": "with-a"}, 404, "session_id"),
            ]
            for body, status, field in bad:
                code, error = await _post(http, merge, body)
                assert (code, error.get("field")) == (status, field), (body, code, error)
            code, error = await _post(http, f"{gateway.http_url}/webrtc/split", {"session_id": "with-b"})
            assert (code, error.get("field")) == (404, "session_id"), error

            await client.merge("with-b", "with-a")
            for events in progress:
                merged = await events.next("merged")
                assert merged["call_ids"][0] == answer.call_id, merged  # B's call carries the mix
            await progress[0].next("resumed", by="local")
            peer_b.clear()
            await wait_until(lambda: hears(peer_b.pcm, RATE, 440, 660), timeout=10)
            await asyncio.sleep(3.0)  # A records B and the web user (a loaded machine starves its recorder)

            await client.split("with-b")
            split = await progress[1].next("split")
            assert split["over"] and split["reason"] == "split", split
            await progress[0].next("split")
            await progress[1].next("held", by="local")
            await phone_b.wait_for("media", call=at_b, status="remote_hold")
            peer_a.clear()
            await wait_until(lambda: peer_a.heard(440, last=1.0), timeout=10)
            await asyncio.sleep(1.2)  # past what the web peer's jitter buffer held
            assert not hears(peer_a.pcm, RATE, 660), "B is heard after the split"

            await client.close_session("with-a")
            await phone_a.wait_for("state", call=at_a, state="DISCONNECTED")
            assert windows_with(await phone_a.wait_for_recording(at_a), 660, 1000) >= 2, "A heard no mix"
            await client.close_session("with-b")
            await phone_b.wait_for("state", call=at_b, state="DISCONNECTED")
            await wait_until(lambda: gateway.driver.calls == 0)
        finally:
            for events in progress:
                await events.close()
            await peer_a.close()
            await peer_b.close()


async def _rpc_call(client: RpcClient, peer: WebPeer, to: str) -> str:
    reply = await client.request("offer", {"sdp": await peer.offer(), "type": "offer", "to": to})
    call_id = str(reply["result"]["call_id"])
    await peer.accept(reply["result"]["answer"]["sdp"])
    await client.notification("progress", call_id=call_id, event="answered")
    return call_id


async def test_jsonrpc_merges_the_peers_two_calls_and_splits_one(tmp_path: Path) -> None:
    async with (
        two_phones(tmp_path, _config) as (phone_a, phone_b, gateway),
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{gateway.http_url.replace('http', 'ws')}/jsonrpc?api_key={API_KEY}") as ws,
        live_rpc_client(ws) as client,
    ):
        peer_a, peer_b = WebPeer(1000), WebPeer(1000)
        try:
            call_a = await _rpc_call(client, peer_a, phone_a.uri)
            at_a = int((await phone_a.wait_for("incoming"))["call"])
            await wait_until(lambda: peer_a.heard(440, last=1.0), timeout=10)
            await client.request("hold", {"call_id": call_a})
            await client.notification("progress", call_id=call_a, event="held")
            call_b = await _rpc_call(client, peer_b, phone_b.uri)
            at_b = int((await phone_b.wait_for("incoming"))["call"])
            await wait_until(lambda: peer_b.heard(660, last=1.0), timeout=10)

            bad: list[tuple[dict[str, Any], int, str]] = [
                ({"call_ids": [call_a]}, -32602, "call_ids"),
                ({"call_ids": [call_a, call_a]}, -32602, "call_ids"),
                ({"call_ids": [call_a, "nope"]}, -32002, "call_ids"),
                ({"call_ids": ["nope", call_b]}, -32002, "call_ids"),
            ]
            for params, code, field in bad:
                error = (await client.request("merge", params))["error"]
                assert (error["code"], error["data"]["field"]) == (code, field), (params, error)
            error = (await client.request("split", {"call_id": call_b}))["error"]
            assert (error["code"], error["data"]["field"]) == (-32002, "call_id"), error

            reply = await client.request("merge", {"call_ids": [call_b, call_a]})
            assert reply["result"] == {"call_id": call_b, "status": "merging"}, reply
            merged = await client.notification("merged")
            assert merged["call_ids"] == [call_b, call_a], merged
            peer_b.clear()
            await wait_until(lambda: hears(peer_b.pcm, RATE, 440, 660), timeout=10)
            await asyncio.sleep(3.0)  # A records B and the web user (a loaded machine starves its recorder)

            reply = await client.request("split", {"call_id": call_b})
            assert reply["result"] == {"call_id": call_b, "status": "splitting"}, reply
            split = await client.notification("split")
            assert split == {**split, "call_id": call_b, "call_ids": [call_a], "over": True}, split
            await phone_b.wait_for("media", call=at_b, status="remote_hold")
            peer_a.clear()
            await wait_until(lambda: peer_a.heard(440, last=1.0), timeout=10)

            for call_id, phone, number in (call_a, phone_a, at_a), (call_b, phone_b, at_b):
                await client.request("disconnect", {"call_id": call_id})
                await phone.wait_for("state", call=number, state="DISCONNECTED")
            assert windows_with(await phone_a.wait_for_recording(at_a), 660, 1000) >= 2, "A heard no mix"
            await wait_until(lambda: gateway.driver.calls == 0)
        finally:
            await peer_a.close()
            await peer_b.close()
