"""A call's recording from the API dialects (issue 37 item 3), with a pjsua2 desk phone (440 Hz) and an
aiortc peer (1 kHz), `recording.mode: on_demand`:

- the HTTP API: `POST /webrtc/record {session_id, action}` starts and stops it, answering the state;
  the session's events tell `recording` (idle when answered, then recording, stopped); a bad action is
  400 naming `action`, an unknown session 404;
- JSON-RPC: `record {call_id?, action}` does the same, its result the state, the `recording`
  notification follows; a bad action is -32602 naming `action`.
Each file has the peer's tone on the left and the phone's on the right."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import cast

import aiohttp

from gateway.config.recording import RecordingMode, RecordingSection
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.webpeer import WebPeer
from tests.e2e.dialects.test_http_offer import API_KEY, KEY, _config, _post, _sse
from tests.e2e.dialects.test_jsonrpc_call_controls import live_rpc_client
from tests.e2e.harness import running_gateway, wait_until
from tests.e2e.media.test_call_recording import PHONE_TONE, WEB_TONE, _wav
from tests.media.recording.test_recorder import _power


def _on_demand(phone: DeskPhone, directory: Path) -> object:
    section = RecordingSection(mode=RecordingMode.ON_DEMAND, directory=str(directory))
    return dataclasses.replace(_config(phone.address), recording=section)


async def _check_file(path: Path) -> dict[str, object]:
    sidecar = path.with_suffix(".json")
    await wait_until(sidecar.exists, timeout=10)
    left, right, rate = _wav(path)
    body = slice(rate // 4, len(left) - rate // 4)
    # each channel's tone holds most of its power; 0.34 once in a full run at load 7 (gaps the
    # recorder filled with silence), against about 0 for a channel without it
    assert _power(left[body], WEB_TONE, rate) > 0.25 and _power(right[body], PHONE_TONE, rate) > 0.25
    data: dict[str, object] = json.loads(sidecar.read_text())
    return data


async def test_the_http_api_starts_and_stops_a_recording(tmp_path: Path) -> None:
    require_desk_phone()
    directory = tmp_path / "recordings"
    async with (
        DeskPhone(tmp_path, user="2000", tone=PHONE_TONE) as phone,
        running_gateway(_on_demand(phone, directory)) as gateway,  # type: ignore[arg-type]
        aiohttp.ClientSession() as http,
    ):
        base = gateway.http_url
        peer = WebPeer(freq=WEB_TONE)
        try:
            offer = {"sdp": {"type": "offer", "sdp": await peer.offer()}, "session_id": "rec"}
            status, body = await _post(http, f"{base}/webrtc/offer", offer, KEY)
            assert status == 200, body
            events = await http.get(f"{base}{body['events_url']}", headers=KEY)
            await peer.accept(body["sdp"]["sdp"])
            await _sse(events, ["answered"])
            [told] = await _sse(events, ["recording"])
            assert (told["state"], told["mode"]) == ("idle", "on_demand"), told
            await wait_until(lambda: peer.heard(PHONE_TONE, last=1.0), timeout=10)

            async def record(action: object, session: str = "rec") -> tuple[int, dict[str, object]]:
                return await _post(
                    http, f"{base}/webrtc/record", {"session_id": session, "action": action}, KEY
                )

            status, bad = await record("rewind")
            assert (status, bad["field"]) == (400, "action"), bad
            status, bad = await record(None)
            assert (status, bad["field"]) == (400, "action"), bad
            status, bad = await record("start", "nobody")
            assert status == 404, bad
            status, started = await record("start")
            assert status == 200 and started["status"] == started["state"] == "recording", started
            files = started["files"]
            assert isinstance(files, list) and len(files) == 1, started
            path = Path(files[0])
            assert (await _sse(events, ["recording"]))[0]["state"] == "recording"
            await asyncio.sleep(2.0)  # recorded for a while
            status, stopped = await record("stop")
            assert status == 200 and stopped["state"] == "stopped", stopped
            assert (await _sse(events, ["recording"]))[0]["state"] == "stopped"
            assert (await _post(http, f"{base}/webrtc/close", {"session_id": "rec"}, KEY))[0] == 200
        finally:
            await peer.close()
    sidecar = await _check_file(path)
    [[start, end]] = cast(list[list[float]], sidecar["spans"])
    assert sidecar["user"] == "alice" and start == 0.0 and abs(end - cast(float, sidecar["duration"])) < 0.01


async def test_jsonrpc_records_its_call(tmp_path: Path) -> None:
    require_desk_phone()
    directory = tmp_path / "recordings"
    async with (
        DeskPhone(tmp_path, user="2000", tone=PHONE_TONE) as phone,
        running_gateway(_on_demand(phone, directory)) as gateway,  # type: ignore[arg-type]
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{gateway.http_url.replace('http', 'ws')}/jsonrpc?api_key={API_KEY}") as ws,
        live_rpc_client(ws) as client,
    ):
        peer = WebPeer(freq=WEB_TONE)
        try:
            reply = await client.request("offer", {"sdp": await peer.offer(), "type": "offer"})
            call_id = reply["result"]["call_id"]
            await peer.accept(reply["result"]["answer"]["sdp"])
            await client.notification("progress", call_id=call_id, event="answered")
            told = await client.notification("recording", call_id=call_id)
            assert (told["state"], told["mode"]) == ("idle", "on_demand"), told
            await wait_until(lambda: peer.heard(PHONE_TONE, last=1.0), timeout=10)

            bad = await client.request("record", {"action": "rewind"})
            assert bad["error"]["code"] == -32602 and bad["error"]["data"]["field"] == "action", bad
            started = (await client.request("record", {"action": "start"}))["result"]
            assert started["call_id"] == call_id and started["state"] == "recording", started
            assert (await client.notification("recording", call_id=call_id))["state"] == "recording"
            await asyncio.sleep(2.0)
            stopped = (await client.request("record", {"call_id": call_id, "action": "stop"}))["result"]
            assert stopped["state"] == "stopped", stopped
            await client.request("disconnect", {"call_id": call_id})
        finally:
            await peer.close()
    await _check_file(Path(started["files"][0]))
