"""Video on the native fast lane (issue 19): headless Chromium's fake camera <-> bridge <-> a plain RTP/AVP
VP8 phone (peers.video_phone), with the bridge's engine linked. Checked: the engine's video lanes forwarded
the packets both ways (its counters; the paths' counters, which the engine's snapshots feed), the far sides
decoded the pictures (count, resolution, the test pattern's colour), and keyframe requests still cross both
ways through Python (RTCP PLI from either side, a PLI when the phone's stream starts without a keyframe).
Skips without chromium, playwright or the compiled engine (fails under CI=true).
"""

from __future__ import annotations

import asyncio

from gateway.media import fastlane
from gateway.media.bridge import MediaBridge
from gateway.media.bridge_settings import BridgeSettings
from gateway.media.events import KeyframeWanted, Leg, MediaEvent
from peers.video_phone import PlainVideoPeer
from tests.media.bridge_harness import RecordingPeer, allocator
from tests.media.fastlane.test_fastpath import require_fast_lane
from tests.media.video.test_video_chromium import (
    PICTURE,
    call_the_phone,
    info_to,
    page,
    stats,
    until_chromium_is_asked,
    wait_for,
)
from tests.signaling.browser import Page

__all__ = ["page"]  # the fixture


async def test_video_through_the_engine_both_ways(page: Page) -> None:
    require_fast_lane()
    events: list[MediaEvent] = []
    pool = fastlane.EnginePool()
    settings = BridgeSettings(
        allocator(32000, 33999), host_addresses=("127.0.0.1",), call_id="video-fast",
        video_codecs=("VP8",), fast_lane=pool,
    )  # fmt: skip
    phone, camera = RecordingPeer(), PlainVideoPeer("VP8")
    bridge = MediaBridge(settings, events.append)
    try:
        await phone.start()
        await camera.start()
        await call_the_phone(page, bridge, phone, camera)
        sending = asyncio.create_task(camera.send_video(5.0, skip_first=2))
        await wait_for(lambda: asyncio.sleep(0, len(camera.decoded) >= 30), timeout=8)
        first = await stats(page)
        # the phone asks the browser for a keyframe: RTCP, through Python
        await until_chromium_is_asked(page, camera.send_pli, first["outbound-rtp-video"]["pliCount"])
        await sending
        after = await stats(page)
        seen = await page.evaluate(PICTURE)
        fast, video = bridge.fast_lane, bridge.video
        assert fast is not None and fast.link is not None and video is not None
        counters = fast.link.native.video_counters()
        fast.sync()
        result = {"browser": after, "picture": seen, "video": video.stats(), "engine": counters}

        # the engine forwarded most of the video both ways, with no send error
        web_to_sip, sip_to_web, errors_out, errors_in, _ = counters
        assert web_to_sip > 0.8 * video.to_sip.forwarded > 50, result
        assert sip_to_web > 0.8 * video.to_web.forwarded > 50, result
        assert errors_out == errors_in == 0, result
        # the far sides decoded the pictures: the phone Chromium's green camera, Chromium the phone's blue
        assert len(camera.decoded) >= 30, result
        width, height, _, u, v = camera.decoded[-1]
        assert (width, height) == (320, 240) and u < 110 and v < 110, camera.decoded[-1]
        inbound = after["inbound-rtp-video"]
        assert inbound["framesDecoded"] >= 40 and inbound["frameWidth"] == 320, result
        assert seen is not None and seen[:2] == [320, 240] and seen[5] > seen[4] + 50, result
        # keyframe requests crossed both ways (Python's keyframe logic, the engine leaves RTCP to it)
        assert after["outbound-rtp-video"]["pliCount"] > first["outbound-rtp-video"]["pliCount"], result
        assert inbound["pliCount"] >= 1 and camera.plis >= 1, result
        assert camera.malformed == 0, result
        # the phone's receiver reports and ours see the engine's packets (the statistics were handed over)
        endpoint = video.endpoint
        assert endpoint is not None and endpoint.statistics is not None
        assert endpoint.statistics.state().received > 0.8 * video.to_web.received, result
        assert endpoint.packets_sent >= video.to_sip.forwarded * 0.8, result
    finally:
        await bridge.close()
        pool.close()
        phone.close()
        camera.close()


async def test_keyframes_by_sip_info_with_the_engine_linked(page: Page) -> None:
    """An INFO-only phone (no ``nack pli`` in its answer) with the video lanes linked: Chromium's PLIs
    (the phone's stream starts without a keyframe) reach it as ``KeyframeWanted`` (the call's SIP INFO
    picture_fast_update, RFC 5168) and never as RTCP; its INFO (``keyframe_from_info``, what the call
    runtime does with it) reaches Chromium as a PLI; the engine still carries the pictures both ways."""
    require_fast_lane()
    events: list[MediaEvent] = []
    pool = fastlane.EnginePool()
    settings = BridgeSettings(
        allocator(30800, 30999), host_addresses=("127.0.0.1",), call_id="video-fast-info",
        video_codecs=("VP8",), fast_lane=pool,
    )  # fmt: skip
    phone, camera = RecordingPeer(), PlainVideoPeer("VP8")
    bridge = MediaBridge(settings, info_to(camera, events))  # KeyframeWanted: a SIP INFO to the phone
    try:
        await phone.start()
        await camera.start()
        await call_the_phone(page, bridge, phone, camera, feedback=())
        sending = asyncio.create_task(camera.send_video(5.0, skip_first=2))
        await wait_for(lambda: asyncio.sleep(0, len(camera.decoded) >= 30), timeout=8)
        fast, video = bridge.fast_lane, bridge.video
        assert fast is not None and fast.link is not None and video is not None  # linked
        first = await stats(page)
        # the phone's INFO
        await until_chromium_is_asked(page, video.keyframe_from_info, first["outbound-rtp-video"]["pliCount"])
        await sending
        after = await stats(page)
        counters = fast.link.native.video_counters()
        fast.sync()
        stats_ = video.stats()
        result = {"browser": after, "video": stats_, "engine": counters, "phone": (camera.plis, camera.infos)}

        web_to_sip, sip_to_web, *_ = counters
        assert web_to_sip > 0.8 * video.to_sip.forwarded > 50, result
        assert sip_to_web > 0.8 * video.to_web.forwarded > 50, result
        # the INFO became a PLI to Chromium, which sent a keyframe
        assert after["outbound-rtp-video"]["pliCount"] > first["outbound-rtp-video"]["pliCount"], result
        assert stats_.requests_from_sip >= 1, result
        # Chromium's PLIs reached the phone as INFO only
        assert after["inbound-rtp-video"]["pliCount"] >= 1 and stats_.requests_from_web >= 1, result
        assert KeyframeWanted(Leg.SIP) in events and stats_.sip_request == "info", result
        assert camera.infos >= 1 and camera.plis == 0, result
        assert after["inbound-rtp-video"]["framesDecoded"] >= 40 and len(camera.decoded) >= 30, result
    finally:
        await bridge.close()
        pool.close()
        phone.close()
        camera.close()
