"""Video over SIP over WebSocket (issue 19): the browser SIP libraries (JsSIP 3.13, SIP.js 0.21, unmodified,
in headless Chromium with its fake camera) place and take audio+video calls through the whole gateway with
baresip 1.0.0 as the SIP video phone (vp8, fakevideo as camera and display, plain RTP/AVP).

The library's INVITE carries Chromium's audio+video offer: the gateway keeps the video (``codecs.video``,
as for the JSON protocol), offers it to baresip on a port of its own, and the library's 200 has it back.
Each side decodes the other's pictures: the page's <video> shows baresip's 320x240 picture (frames decoded
by Chromium, the picture drawn into a canvas is not black), baresip's snapshot of what it decoded is the
fake camera's green 640x480. Then baresip calls alice: the gateway's INVITE to her library carries baresip's
video, she answers with her camera, and pictures cross both ways again."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from peers.baresip import Baresip
from peers.softphones import Library, Softphone, require_softphones, softphone_server
from tests.e2e.harness import running_gateway
from tests.e2e.media.test_video_baresip import png_size_and_mean
from tests.e2e.websip.test_sip_websocket import ALICE_SIP_PASSWORD, no_calls, realm_of, websocket_config
from tests.e2e.websip.test_softphone_libraries import LIBRARIES, allowing
from tests.signaling.browser import chromium_page

GATEWAY_RTP = {"start": 30400, "end": 30599}
PHONE_RTP = (31400, 31499)


def video_kept(lines: dict[str, list[dict[str, Any]]]) -> bool:
    """Both descriptions of the library's session have an audio and an accepted video m-line."""
    return all(
        [(m["kind"], m["port"] != 0) for m in lines[side] if m["kind"] in ("audio", "video")]
        == [("audio", True), ("video", True)]
        for side in ("local", "remote")
    )


async def phone_sees_green(phone: Baresip) -> tuple[int, int, tuple[float, float, float]]:
    """The size and mean colour of what baresip decoded (its snapshot), checked to be the fake camera's
    green 640x480 picture. Up to three snapshots: at load 16 one caught a picture still grey from the
    pictures lost before a keyframe (mean 104, 140, 128)."""
    for attempt in range(3):
        pictures = await phone.snapshot()
        received = [p for p in pictures if "recv" in p.name]  # snapshot-recv-<time>.png
        assert received, (pictures, phone.log()[-3000:])
        width, height, (r, g, b) = png_size_and_mean(received[0])
        green = (width, height) == (640, 480) and g > r + 50 and g > b + 50
        if green or attempt == 2:
            break
        await asyncio.sleep(0.5)
    assert green, (width, height, r, g, b)
    return width, height, (r, g, b)


def shows_the_phone(seen: dict[str, Any]) -> None:
    """The page's <video> shows baresip's 320x240 picture, decoded by Chromium, not a black frame."""
    picture = seen["picture"]
    assert seen["frameWidth"] == 320 and seen["frameHeight"] == 240, seen
    assert picture["width"] == 320 and picture["height"] == 240, seen
    assert max(picture["mean"]) > 40, seen  # fakevideo's moving pattern, not black
    assert seen["codec"] == "video/VP8", seen


@pytest.mark.parametrize("library", LIBRARIES)
async def test_library_places_and_takes_video_calls_with_baresip(library: Library, tmp_path: Path) -> None:
    require_softphones()
    async with (
        Baresip(tmp_path, user="2000", mediaenc=None, rtp_ports=PHONE_RTP, video=True) as phone,
        softphone_server() as origin,
    ):
        sections = {"codecs": {"video": ["VP8", "H264"]}, "media": {"rtp_ports": dict(GATEWAY_RTP)}}
        config = allowing(websocket_config(phone.address, sections=sections), origin)
        async with running_gateway(config) as gateway, chromium_page() as page:
            realm = realm_of(gateway)
            softphone = Softphone(page, library)
            await softphone.open(origin)
            await softphone.registered(gateway.http_url, f"sip:alice@{realm}", ALICE_SIP_PASSWORD)

            # the library calls the video phone with its camera
            await softphone.call(f"sip:2000@{realm}", video=True)
            await phone.wait_for("CALL_ESTABLISHED")
            await softphone.wait_for("confirmed")
            lines = await softphone.m_lines()
            assert video_kept(lines), lines
            shows_the_phone(await softphone.sees())
            await phone_sees_green(phone)
            await softphone.hangup()
            await phone.wait_for("CALL_CLOSED")
            await softphone.wait_for("ended")
            assert await no_calls(gateway)

            # the video phone calls alice: her library answers with its camera
            phone.events.clear()
            host, port = gateway.sip_address
            await phone.dial(f"sip:1001@{host}:{port}")
            await softphone.wait_for("incoming")
            await softphone.answer(video=True)
            await softphone.wait_for("confirmed")
            await phone.wait_for("CALL_ESTABLISHED")
            lines = await softphone.m_lines()
            assert video_kept(lines), lines
            shows_the_phone(await softphone.sees(frames=60))  # frames of the second call
            await phone_sees_green(phone)
            await asyncio.sleep(0.5)
            await phone.hangup()
            await softphone.wait_for("ended")
            await phone.wait_for("CALL_CLOSED")
            assert await no_calls(gateway)
