"""A SIP video phone calls the softphone page through the whole gateway (issue 68 item 3): headless
Chromium logged in as alice, "Video" ticked, answers with its fake camera.

- *VP9 to the browser*: baresip 1.0.0 with only its vp9 module's codec (`video_codecs=vp9`) offers VP9
  (RFC 9628); the gateway forwards it, never decoded, to Chromium, which decodes the phone's fakevideo
  picture (its inbound codec video/VP9), and Chromium's VP9 to baresip, which receives it but cannot
  decode it: Chromium writes the flexible-mode payload descriptor (F=1) and baresip 1.0's vp9 module
  takes only the non-flexible one ("vp9: decode: F-bit not supported"). Pictures decoded both ways
  with a VP9 phone are checked at the bridge (tests/media/video/test_video_phones.py).
- *a late offer with video*: sipp (`uac_late_offer_video`) sends an INVITE without SDP; the page answers
  with its camera, the gateway's 200 offers sipp audio and the browser's VP8, and the ACK answers with
  the ports of a plain RTP video phone (peers.video_phone): pictures decoded both ways, the phone's blue
  in the page and the fake camera's green at the phone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from peers.baresip import Baresip
from peers.binaries import require_binary
from peers.ports import free_range
from peers.sipp import Sipp
from peers.video_phone import PlainVideoPeer
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until
from tests.media.pictures import picture_script
from tests.signaling.browser import Page, chromium_page, expect, log_in

REMOTE = picture_script("document.getElementById('remote-video')")
# the page's call: its inbound video stream and that stream's codec, as getStats tells them
INBOUND_VIDEO = """async () => {
  const pc = window.softphone.call && window.softphone.call.pc;
  if (!pc) return null;
  const stats = await pc.getStats();
  let found = null;
  stats.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') found = s; });
  if (!found) return null;
  const codec = found.codecId && stats.get(found.codecId);
  return JSON.stringify({...found, mimeType: codec ? codec.mimeType : null});
}"""


async def inbound_video(page: Page) -> dict[str, Any]:
    text = await page.evaluate(INBOUND_VIDEO)
    return json.loads(text) if text else {}


async def decoded_frames(page: Page, frames: int, timeout: float = 15.0) -> dict[str, Any]:
    """The page's inbound video stats once it decoded ``frames`` (or as they are after ``timeout``)."""
    inbound: dict[str, Any] = {}
    for _ in range(int(timeout * 10)):
        inbound = await inbound_video(page)
        if int(inbound.get("framesDecoded", 0)) >= frames:
            break
        await asyncio.sleep(0.1)
    return inbound


async def alice_answers_with_video(page: Page) -> None:
    """Alice's page logged in with "Video" ticked, then (once it rings) answered."""
    await expect(page.locator("#incoming")).to_be_visible(timeout=10000)
    await page.get_by_role("button", name="Answer", exact=True).click()
    await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)


async def log_in_with_video(page: Page, gateway_url: str) -> None:
    await page.goto(gateway_url + "/")
    await log_in(page, "alice", ALICE_SECRET)
    await expect(page.locator("#status")).to_have_text("Registered as Alice", timeout=20000)
    await page.get_by_role("checkbox", name="Video").check()


async def test_a_vp9_phone_calls_the_page(tmp_path: Path) -> None:
    rtp = free_range(100)
    async with Baresip(
        tmp_path, user="2000", mediaenc=None, rtp_ports=(rtp, rtp + 99), video=True, video_codecs="vp9"
    ) as phone:
        config = gateway_config(phone.address, codecs={"video": ["H264", "VP8", "VP9"]})
        async with running_gateway(config) as gateway, chromium_page() as page:
            await log_in_with_video(page, gateway.http_url)
            host, port = gateway.sip_address
            await phone.dial(f"sip:1001@{host}:{port}")
            await alice_answers_with_video(page)
            await phone.wait_for("CALL_ESTABLISHED")
            inbound = await decoded_frames(page, 30)
            seen = await page.evaluate(REMOTE)
            await phone.hangup()
            await expect(page.locator("#call-state")).to_have_text("No call", timeout=10000)
    log = phone.log()
    # Chromium decoded the phone's VP9, its picture shown in the page
    assert inbound.get("mimeType") == "video/VP9" and int(inbound.get("framesDecoded", 0)) >= 30, (
        inbound,
        log[-3000:],
    )
    assert seen is not None and seen[:2] == [320, 240], seen
    # baresip took VP9 both ways and the browser's VP9 reached it (its decoder refuses flexible mode)
    assert "Set video encoder: VP9" in log and "Set video decoder: VP9" in log, log[-3000:]
    assert "incoming rtp for 'video' established" in log, log[-3000:]


def offered_video(sipp: Sipp, ours: int) -> tuple[int, int] | None:
    """The video port and VP8 payload type of the gateway's offer (its 200) in sipp's message log."""
    path = sipp.workdir / "messages.log"
    text = path.read_text(errors="replace") if path.exists() else ""
    ports = [int(p) for p in re.findall(r"m=video ([1-9]\d*) RTP/AVP", text) if int(p) != ours]
    types = re.findall(r"a=rtpmap:(\d+) VP8/90000", text)
    return (ports[0], int(types[0])) if ports and types else None


async def phone_decodes(camera: PlainVideoPeer, pictures: int, timeout: float = 10.0) -> None:
    """Wait until the phone decoded ``pictures``, asking for a keyframe (RTCP PLI, its ``nack pli``) while
    it has none, as a phone does: the browser's keyframe for the gateway's own request can be lost (the
    web leg's ICE pair may still change, the fast lane relinking, just after the ACK)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(camera.decoded) < pictures and loop.time() < deadline:
        if not camera.decoded:
            camera.send_pli()
        await asyncio.sleep(0.6)  # past the gateway's limit of one request each 0.5 s
    assert len(camera.decoded) >= pictures, (camera.received, camera.keyframes_received, camera.plis)


async def test_a_late_offer_from_a_video_phone_to_the_page(tmp_path: Path) -> None:
    require_binary("sipp")
    camera = PlainVideoPeer("VP8")
    await camera.start()
    config = gateway_config(None, codecs={"video": ["VP8", "H264"]})
    try:
        async with running_gateway(config) as gateway, chromium_page() as page:
            await log_in_with_video(page, gateway.http_url)
            host, port = gateway.sip_address
            vport = camera.address[1]
            sipp = Sipp(
                tmp_path, "uac_late_offer_video", f"{host}:{port}", service="1001", duration_ms=15000,
                rtp_echo=True, extra_args=["-set", "vport", str(vport), "-set", "vrtcp", str(camera.rtcp_port)],
            )  # fmt: skip
            try:
                await sipp.start()
                await alice_answers_with_video(page)
                await wait_until(lambda: offered_video(sipp, vport) is not None, timeout=5)
                offered = offered_video(sipp, vport)
                assert offered is not None
                video_port, payload_type = offered
                camera.codec = dataclasses.replace(camera.codec, payloadType=payload_type)
                camera.remote, camera.remote_rtcp = ("127.0.0.1", video_port), ("127.0.0.1", video_port + 1)
                async with camera.sending():  # the phone's camera, on until both sides decoded
                    await phone_decodes(camera, 15)
                    inbound = await decoded_frames(page, 15)
                    seen = await page.evaluate(REMOTE)
                await expect(page.locator("#call-state")).to_have_text("No call", timeout=15000)
                result = await sipp.wait(timeout=15)
            finally:
                await sipp.stop()
    finally:
        camera.close()
    # sipp checked: the 200 offered PCMU and an active VP8 video m-line, the BYE got its 200
    assert result.ok, result
    # the page decoded the phone's VP8 (its blue) from the ACK's answer's port
    assert inbound.get("mimeType") == "video/VP8" and int(inbound.get("framesDecoded", 0)) >= 15, inbound
    assert seen is not None and seen[:2] == [320, 240] and seen[5] > seen[4] + 50, seen
    # the phone decoded the browser's camera: the fake camera's green
    _, _, _, u, v = camera.decoded[-1]
    assert u < 110 and v < 110, camera.decoded[-1]
