"""A video call through the whole gateway (issue 19): headless Chromium (fake camera), signalled over
each dialect (the JSON WebSocket protocol, the HTTP offer API, JSON-RPC, WHIP), calls baresip 1.0.0 as
a SIP video phone (its vp8 module, fakevideo as camera and display, plain RTP/AVP). The gateway offers
baresip the browser's video on its own port, baresip answers VP8, and each side decodes the other's
pictures: Chromium's inbound video (frames decoded, 320x240) and baresip's decoded picture saved by its
snapshot module (320x240, the fake camera's green)."""

from __future__ import annotations

import asyncio
import json
import struct
import zlib
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import pytest

import sdp
from peers.baresip import Baresip
from peers.web_user import WebUser
from tests.e2e.dialects.test_jsonrpc_call_controls import live_rpc_client
from tests.e2e.dialects.test_whip import WhipClient
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway
from tests.signaling.browser import chromium_page

API_KEY = "e2e-video-key-0123456789"
ORIGIN = "http://localhost/"
# Chromium's offer once ICE gathering is complete (its host candidates in it: no trickling needed).
OFFER = """async () => {
  const stream = await navigator.mediaDevices.getUserMedia({audio: true, video: {width: 320, height: 240}});
  const pc = new RTCPeerConnection({iceServers: []});
  window.pc = pc;
  for (const track of stream.getTracks()) pc.addTrack(track, stream);
  await pc.setLocalDescription(await pc.createOffer());
  if (pc.iceGatheringState !== 'complete') {
    await new Promise((done) => pc.addEventListener('icegatheringstatechange',
      () => pc.iceGatheringState === 'complete' && done()));
  }
  return pc.localDescription.sdp;
}"""
INBOUND_VIDEO = """async () => {
  let found = null;
  (await pc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') found = s; });
  return found && JSON.stringify(found);
}"""


def png_size_and_mean(path: Path) -> tuple[int, int, tuple[float, float, float]]:
    """Width, height and mean (R, G, B) of an 8-bit RGB or RGBA PNG, with the standard library only."""
    data = path.read_bytes()
    pos, chunks, width, height, kind = 8, b"", 0, 0, 2
    while pos < len(data):
        length, name = struct.unpack_from("!I4s", data, pos)
        body = data[pos + 8 : pos + 8 + length]
        if name == b"IHDR":
            width, height, depth, kind = struct.unpack_from("!IIBB", body)
            assert depth == 8 and kind in (2, 6), (depth, kind)
        elif name == b"IDAT":
            chunks += body
        pos += 12 + length
    channels = 3 if kind == 2 else 4
    raw = zlib.decompress(chunks)
    stride = width * channels
    rows: list[bytearray] = []
    previous = bytearray(stride)
    for y in range(height):  # PNG filters (RFC 2083 §6)
        start = y * (stride + 1)
        kind_ = raw[start]
        row = bytearray(raw[start + 1 : start + 1 + stride])
        for x in range(stride):
            left = row[x - channels] if x >= channels else 0
            up, corner = previous[x], previous[x - channels] if x >= channels else 0
            if kind_ == 1:
                row[x] = (row[x] + left) & 0xFF
            elif kind_ == 2:
                row[x] = (row[x] + up) & 0xFF
            elif kind_ == 3:
                row[x] = (row[x] + (left + up) // 2) & 0xFF
            elif kind_ == 4:
                p = left + up - corner
                best = min((abs(p - left), 0, left), (abs(p - up), 1, up), (abs(p - corner), 2, corner))[2]
                row[x] = (row[x] + best) & 0xFF
        rows.append(row)
        previous = row
    sums = [0, 0, 0]
    for row in rows:
        for c in range(3):
            sums[c] += sum(row[c::channels])
    count = width * height
    return width, height, (sums[0] / count, sums[1] / count, sums[2] / count)


async def _signal(
    dialect: str,
    gateway_url: str,
    offer: str,
    alice: WebUser,
    http: aiohttp.ClientSession,
    stack: AsyncExitStack,
) -> tuple[str, Callable[[], Awaitable[None]]]:
    """Chromium's offer to 2000 over `dialect`: the gateway's answer, and how to hang up."""
    if dialect == "json":
        call_id = await alice.call("2000", offer)
        answer = (await alice.wait_for("connected", call_id=call_id, timeout=20))["sdp"]

        async def hang_up() -> None:
            await alice.request({"type": "hangup", "call_id": call_id})
            await alice.wait_for("ended", call_id=call_id)

        return str(answer), hang_up
    if dialect == "http":
        async with http.post(
            f"{gateway_url}/webrtc/offer", json={"sdp": {"type": "offer", "sdp": offer}},
            headers={"X-API-Key": API_KEY},
        ) as response:  # fmt: skip
            assert response.status == 200, await response.text()
            reply = await response.json()

        async def close() -> None:
            body = {"session_id": reply["session_id"], "reason": "done"}
            async with http.post(f"{gateway_url}/webrtc/close", json=body, headers={"X-API-Key": API_KEY}):
                pass

        return str(reply["sdp"]["sdp"]), close
    if dialect == "jsonrpc":
        ws = await stack.enter_async_context(
            http.ws_connect(f"{gateway_url.replace('http', 'ws')}/jsonrpc?api_key={API_KEY}")
        )
        client = await stack.enter_async_context(live_rpc_client(ws))  # answers the heartbeat's pings
        result = (await client.request("offer", {"sdp": offer, "type": "offer", "to": "2000"}))["result"]

        async def disconnect() -> None:
            reply = await client.request("disconnect", {})
            assert reply["result"]["call_ids"] == [result["call_id"]], reply

        return str(result["answer"]["sdp"]), disconnect
    whip = WhipClient(http, f"{gateway_url}/whip/2000", API_KEY)
    answer = await whip.publish(offer)

    async def delete() -> None:
        assert await whip.delete() == 200

    return answer, delete


@pytest.mark.parametrize("dialect", ["json", "http", "jsonrpc", "whip"])
async def test_chromium_calls_baresip_with_video(tmp_path: Path, dialect: str) -> None:
    """``json``: the softphone's WebSocket protocol (the answer comes once baresip answered); ``http``:
    the HTTP offer/answer API, ``jsonrpc``: `offer` on a `/jsonrpc` WebSocket, ``whip``: `POST /whip/2000`
    (RFC 9725), each answered before baresip picks up (the first video codec of our offer)."""
    async with Baresip(tmp_path, user="2000", mediaenc=None, rtp_ports=(45000, 45099), video=True) as phone:
        config = gateway_config(
            phone.address,
            media={"rtp_ports": {"start": 44000, "end": 44199}},
            codecs={"video": ["VP8", "H264"]},
            alice_extra={"default_dial": "2000", "api_keys": [{"key": API_KEY, "name": "e2e"}]},
        )
        async with (
            running_gateway(config) as gateway,
            WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
            chromium_page() as page,
            aiohttp.ClientSession() as http,
            AsyncExitStack() as stack,
        ):
            await page.route(
                ORIGIN, lambda route: route.fulfill(body="<html></html>", content_type="text/html")
            )
            await page.goto(ORIGIN)
            offer = await page.evaluate(OFFER)
            text, hang_up = await _signal(dialect, gateway.http_url, offer, alice, http, stack)
            video = sdp.parse(text).media[1]
            assert video.media == "video" and not video.rejected and [c.name for c in video.codecs] == ["VP8"]
            await page.evaluate("async (sdp) => pc.setRemoteDescription({type: 'answer', sdp})", text)
            await phone.wait_for("CALL_ESTABLISHED")
            inbound: dict[str, object] = {}
            for _ in range(100):
                text = await page.evaluate(INBOUND_VIDEO)
                inbound = json.loads(text) if text else {}
                if int(str(inbound.get("framesDecoded", 0))) >= 30:
                    break
                await asyncio.sleep(0.1)
            pictures = await phone.snapshot()
            await hang_up()
            await phone.wait_for("CALL_CLOSED")
    log = phone.log()
    assert int(str(inbound.get("framesDecoded", 0))) >= 30 and inbound.get("frameWidth") == 320, (
        inbound,
        log[-3000:],
    )
    received = [p for p in pictures if "recv" in p.name]  # snapshot-recv-<time>.png: what it decoded
    assert received, (pictures, log[-3000:])
    width, height, (r, g, b) = png_size_and_mean(received[0])
    assert (width, height) == (320, 240) and g > r + 50 and g > b + 50, (width, height, r, g, b)  # green
