"""The HTTP offer/answer API (RustPBX's "WebRTC SDP Integration Guide") driven by an aiortc client against
a pjsua2 desk phone through a whole gateway.

- The document's own offer body (caller-chosen session_id, metadata without dial) with an API key: the
  answer comes back before the phone picks up (it answers 1.5 s after ringing), metadata is echoed
  untouched, the key's user's default destination rings; the progress arrives as server-sent events
  (ringing, answered, the phone's DTMF) and by polling; tones are heard both ways; close answers
  `{session_id, status: "closed"}` and hangs the phone up.
- A number the phone refuses (404): the offer is answered, then the session reports `failed`
  `no_such_number` (SIP 404) when polled.
- Errors in the document's shape `{error, code: <number>, session_id?}`: 400 without a destination, 401,
  404 for an unknown session.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any

import aiohttp

from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.ports import free_range
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, BOB_SECRET, gateway_config, running_gateway, wait_until
from tests.e2e.sip_interop.test_web_and_phone import wav_has_tone

API_KEY = "e2e-http-offer-key-0123456789"


def basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


AUTH = basic("alice", ALICE_SECRET)
KEY = {"X-API-Key": API_KEY}


def _config(phone_address: str) -> Any:
    return gateway_config(
        phone_address,
        alice_extra={"default_dial": "2000", "api_keys": [{"key": API_KEY, "name": "e2e"}]},
        media={"rtp_ports": {"start": free_range()}},  # this branch's range
    )


async def _post(http: aiohttp.ClientSession, url: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, Any]]:  # fmt: skip
    async with http.post(url, json=body, headers=headers) as response:
        return response.status, await response.json()


async def _sse(response: aiohttp.ClientResponse, names: list[str], timeout: float = 15) -> list[dict[str, Any]]:  # fmt: skip
    """Read server-sent events until one of each of `names` came (in order); their data."""
    found: list[dict[str, Any]] = []
    event: dict[str, str] = {}
    async with asyncio.timeout(timeout):
        while len(found) < len(names):
            line = (await response.content.readline()).decode().rstrip("\n")
            if line:
                if not line.startswith(":"):
                    key, _, value = line.partition(": ")
                    event[key] = value
                continue
            if event.get("event") == names[len(found)]:
                found.append(json.loads(event["data"]))
            event = {}
    return found


async def test_document_offer_answered_before_pickup_progress_and_tones(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440, answer_delay_ms=1500) as phone,
        running_gateway(_config(phone.address)) as gateway,
        aiohttp.ClientSession() as http,
    ):
        base = gateway.http_url
        peer = WebPeer(freq=1000)
        try:
            offer = {
                "sdp": {"type": "offer", "sdp": await peer.offer()},
                "session_id": "optional-custom-session-id",
                "metadata": {"user_id": "user123", "call_type": "voice"},
            }
            started = time.monotonic()
            status, body = await _post(http, f"{base}/webrtc/offer", offer, KEY)
            took = time.monotonic() - started
            assert status == 200, body
            assert body["session_id"] == "optional-custom-session-id"
            assert body["metadata"] == {"user_id": "user123", "call_type": "voice"}
            assert body["sdp"]["type"] == "answer" and body["ice_candidates"] == []
            assert not phone.seen("state", state="CONFIRMED"), (
                f"answered only after the pickup ({took:.2f} s)"
            )
            events = await http.get(f"{base}{body['events_url']}", headers=KEY)
            await peer.accept(body["sdp"]["sdp"])
            ringing, answered = await _sse(events, ["ringing", "answered"])
            assert ringing["id"] < answered["id"]
            incoming = await phone.wait_for("incoming")
            await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
            await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)
            await phone.send("dtmf", call=incoming["call"], digits="7")
            [dtmf] = await _sse(events, ["dtmf"])
            assert dtmf["digit"] == "7"
            async with http.get(f"{base}/webrtc/sessions/optional-custom-session-id", headers=KEY) as poll:
                progress = await poll.json()
            assert (progress["state"], progress["call_id"]) == ("answered", body["call_id"])
            assert [e["event"] for e in progress["events"]][:2] == ["ringing", "answered"]
            await asyncio.sleep(1.0)  # a second of the web peer's tone in the phone's recording
            close = {"session_id": "optional-custom-session-id", "reason": "User initiated close"}
            status, closed = await _post(http, f"{base}/webrtc/close", close, KEY)
            assert (status, closed) == (200, {"session_id": "optional-custom-session-id", "status": "closed"})
            await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
            assert wav_has_tone(await phone.wait_for_recording(incoming["call"]), 1000)
            events.close()
            status, gone = await _post(http, f"{base}/webrtc/close", close, KEY)
            assert (status, gone["code"], gone["session_id"]) == (404, 404, "optional-custom-session-id")
        finally:
            await peer.close()
        await wait_until(lambda: gateway._health_details()["calls"] == 0)


async def test_refused_number_fails_after_the_answer_and_errors(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", answer="404") as phone,
        running_gateway(_config(phone.address)) as gateway,
        aiohttp.ClientSession() as http,
    ):
        base = gateway.http_url
        auth = {"Authorization": AUTH}
        peer = WebPeer(freq=1000)
        try:
            offer = {"sdp": {"type": "offer", "sdp": await peer.offer()}, "metadata": {"dial": "2999"}}
            status, body = await _post(http, f"{base}/webrtc/offer", offer, auth)
            assert status == 200, body
            status_url = f"{base}{body['status_url']}"

            async def state() -> dict[str, Any]:
                async with http.get(status_url, headers=auth) as response:
                    result: dict[str, Any] = await response.json()
                    return result

            for _ in range(100):
                progress = await state()
                if progress["state"] != "calling":
                    break
                await asyncio.sleep(0.1)
            assert (progress["state"], progress["reason"], progress["sip_status"]) == (
                "failed",
                "no_such_number",
                404,
            ), progress
            await phone.wait_for("incoming")

            bob = {"Authorization": basic("bob", BOB_SECRET)}  # no default destination
            status, error = await _post(http, f"{base}/webrtc/offer", {"sdp": offer["sdp"]}, bob)
            assert (status, error["code"], error["field"]) == (400, 400, "metadata.dial"), error
            bad = {"Authorization": basic("alice", "wrong")}
            status, error = await _post(http, f"{base}/webrtc/offer", offer, bad)
            assert (status, error["code"]) == (401, 401), error
            unknown = {"session_id": "h-nope", "candidate": None}
            status, error = await _post(http, f"{base}/webrtc/ice-candidate", unknown, auth)
            assert (status, error["code"], error["session_id"]) == (404, 404, "h-nope"), error
        finally:
            await peer.close()
        await wait_until(lambda: gateway._health_details()["calls"] == 0)
