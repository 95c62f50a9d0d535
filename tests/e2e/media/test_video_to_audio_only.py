"""Video never costs the audio (issue 39 item 1): a browser offering audio and video to an audio-only
phone (sipp answering audio only, echoing it) gets an answer whose video m-line is turned down (port 0)
in a form every WebRTC stack takes, and the call's audio flows. Before, the rejected m-line had no ICE
credentials: aiortc refused the whole answer, so the call had no audio either. Run with the gateway's
video off (the default: the video m-line is refused before the phone is called) and on (the phone's
answer has no video), for aiortc and for headless Chromium (fake camera and microphone)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

import sdp
from peers.audio import RATE, has_tone
from peers.sipp import Sipp
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until
from tests.e2e.media.test_video_baresip import OFFER, ORIGIN
from tests.signaling.browser import chromium_page

TONE = 1000.0
INBOUND_AUDIO = """async () => {
  let found = null;
  (await pc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'audio') found = s; });
  return found && JSON.stringify(found);
}"""
VIDEO: dict[str, dict[str, Any]] = {"off": {}, "on": {"codecs": {"video": ["VP8", "H264"]}}}


def turned_down_video(answer: str) -> sdp.MediaDescription:
    description = sdp.parse(answer)
    (video,) = [m for m in description.media if m.media == "video"]
    assert video.rejected, answer
    assert description.media[0].media == "audio" and not description.media[0].rejected, answer
    return video


@pytest.mark.parametrize("video", ["off", "on"])
async def test_aiortc_offering_video_talks_to_an_audio_only_phone(tmp_path: Path, video: str) -> None:
    async with Sipp(tmp_path, "uas_basic_call", calls=None, rtp_echo=True, auto_answer=True) as phone:
        config = gateway_config(phone.address, **VIDEO[video])
        peer = WebPeer(TONE, camera=True)
        peer.add_video()
        try:
            async with (
                running_gateway(config) as gateway,
                WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
            ):
                call_id = await alice.call("2000", await peer.offer())
                answer = (await alice.wait_for("connected", call_id=call_id, timeout=20))["sdp"]
                video_line = turned_down_video(answer)
                assert video_line.get("ice-ufrag") is not None  # what aiortc insists on
                await peer.accept(answer)  # raised "ICE username fragment or password is missing"
                await wait_until(lambda: len(peer.pcm) > 2 * RATE, timeout=15)  # her echoed tone
                assert has_tone(peer.pcm, RATE, TONE)
                await alice.request({"type": "hangup", "call_id": call_id})
                await alice.wait_for("ended", call_id=call_id)
        finally:
            await peer.close()


@pytest.mark.parametrize("video", ["off", "on"])
async def test_chromium_offering_video_talks_to_an_audio_only_phone(tmp_path: Path, video: str) -> None:
    async with Sipp(tmp_path, "uas_basic_call", calls=None, rtp_echo=True, auto_answer=True) as phone:
        config = gateway_config(phone.address, **VIDEO[video])
        async with (
            running_gateway(config) as gateway,
            WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
            chromium_page() as page,
        ):
            await page.route(
                ORIGIN, lambda route: route.fulfill(body="<html></html>", content_type="text/html")
            )
            await page.goto(ORIGIN)
            call_id = await alice.call("2000", await page.evaluate(OFFER))
            answer = (await alice.wait_for("connected", call_id=call_id, timeout=20))["sdp"]
            turned_down_video(answer)
            await page.evaluate("async (sdp) => pc.setRemoteDescription({type: 'answer', sdp})", answer)
            inbound: dict[str, Any] = {}
            for _ in range(150):  # the phone echoes Chromium's own microphone back
                text = await page.evaluate(INBOUND_AUDIO)
                inbound = json.loads(text) if text else {}
                if int(inbound.get("packetsReceived", 0)) >= 100:
                    break
                await asyncio.sleep(0.1)
            assert int(inbound.get("packetsReceived", 0)) >= 100, inbound
            assert await page.evaluate("pc.connectionState") == "connected"
            await alice.request({"type": "hangup", "call_id": call_id})
            await alice.wait_for("ended", call_id=call_id)
