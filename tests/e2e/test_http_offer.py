"""The HTTP offer/answer API driven by an aiortc client: POST /webrtc/offer with metadata.dial calls the
desk phone through the gateway and returns the WebRTC answer once the phone answered; audio flows both
ways; POST /webrtc/close ends the phone's call. Errors: 400 (no dial), 401 (bad credentials), 404
(unknown session; a number the phone does not know)."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import aiohttp

from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until
from tests.e2e.test_web_and_phone import wav_has_tone


def basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


AUTH = basic("alice", ALICE_SECRET)


async def _post(http: aiohttp.ClientSession, url: str, body: dict[str, Any], auth: str = AUTH) -> tuple[int, dict[str, Any]]:  # fmt: skip
    async with http.post(url, json=body, headers={"Authorization": auth}) as response:
        return response.status, await response.json()


async def test_http_offer_dials_the_phone_and_close_hangs_up(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(gateway_config(phone.address)) as gateway,
        aiohttp.ClientSession() as http,
    ):
        base = gateway.http_url
        peer = WebPeer(freq=1000)
        try:
            offer = {"sdp": {"type": "offer", "sdp": await peer.offer()}, "metadata": {"dial": "2000"}}
            status, body = await _post(http, f"{base}/webrtc/offer", offer)
            assert status == 200, body
            assert body["metadata"]["dial"] == "2000" and body["metadata"]["call_id"]
            await peer.accept(body["sdp"]["sdp"])
            incoming = await phone.wait_for("incoming")
            await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
            await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)
            await asyncio.sleep(1.0)
            session_id = body["session_id"]
            status, closed = await _post(http, f"{base}/webrtc/close", {"session_id": session_id})
            assert (status, closed) == (200, {"session_id": session_id})
            await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
            assert wav_has_tone(await phone.wait_for_recording(incoming["call"]), 1000)
            status, gone = await _post(http, f"{base}/webrtc/close", {"session_id": session_id})
            assert status == 404, gone
        finally:
            await peer.close()
        await wait_until(lambda: gateway._health_details()["calls"] == 0)

        peer = WebPeer(freq=1000)
        try:
            sdp = {"type": "offer", "sdp": await peer.offer()}
            status, body = await _post(http, f"{base}/webrtc/offer", {"sdp": sdp})
            assert (status, body["field"]) == (400, "metadata.dial"), body
            bad = basic("alice", "wrong")
            status, body = await _post(
                http, f"{base}/webrtc/offer", {"sdp": sdp, "metadata": {"dial": "2000"}}, bad
            )
            assert status == 401, body
            status, body = await _post(
                http, f"{base}/webrtc/ice-candidate", {"session_id": "h-nope", "candidate": None}
            )
            assert status == 404, body
        finally:
            await peer.close()


async def test_http_offer_to_an_unknown_number_is_404(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", answer="404") as phone,
        running_gateway(gateway_config(phone.address)) as gateway,
        aiohttp.ClientSession() as http,
    ):
        peer = WebPeer(freq=1000)
        try:
            offer = {"sdp": {"type": "offer", "sdp": await peer.offer()}, "metadata": {"dial": "2999"}}
            status, body = await _post(http, f"{gateway.http_url}/webrtc/offer", offer)
            assert (status, body["code"]) == (404, "no_such_number"), body
        finally:
            await peer.close()
