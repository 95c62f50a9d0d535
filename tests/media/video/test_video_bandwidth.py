"""Bandwidth hints across the gateway (issue 19, RFC 5104): headless Chromium <-> bridge (fast lane on:
RTCP stays Python's) <-> the VP8 phone (peers.video_phone). Checked at the packet level: the phone's
TMMBR is acknowledged with a TMMBN and reaches Chromium as a REMB, which caps what Chromium's encoder
targets; the browser's REMB (goog-remb, kept on the web side's video m-line) reaches the phone as a
TMMBR for its stream with the bitrate asked. Chromium's own REMBs toward the gateway sit at its
estimator's 5 kbit/s floor (the gateway's video to it carries no abs-send-time), which the gateway does
not pass on; the REMB with a real bitrate is given to aiortc's RTCP handling of the sender as its DTLS
transport delivers one. A phone without ``ccm tmmbr`` gets none of it.
Skips without chromium or playwright (fails under CI=true)."""

from __future__ import annotations

import asyncio

import pytest
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, pack_remb_fci

from gateway.media import fastlane
from gateway.media.bridge import MediaBridge
from gateway.media.bridge_settings import BridgeSettings
from gateway.media.events import MediaEvent
from gateway.media.video.bandwidth import MIN_USEFUL_BITRATE, TmmbrEntry
from peers.video_phone import PlainVideoPeer
from sdp import parse
from tests.media.bridge_harness import RecordingPeer, allocator, hang_up
from tests.media.video.test_video_chromium import call_the_phone, page, stats, wait_for
from tests.signaling.browser import Page

__all__ = ["page"]  # the fixture

LIMIT = 120_000  # what the phone asks of the browser's video (bit/s), well under what Chromium sends
ASKED = 300_000  # what the browser's REMB asks of the phone's video


def tmmbr_value(bitrate: int) -> int:
    """``bitrate`` as a TMMBR carries it (17-bit mantissa, rounded down)."""
    return TmmbrEntry.unpack(TmmbrEntry(0, bitrate).pack(), 0).bitrate


@pytest.mark.parametrize("tmmbr", [True, False], ids=["tmmbr", "no-tmmbr"])
async def test_remb_and_tmmbr_cross_the_gateway(page: Page, tmmbr: bool) -> None:
    pool = fastlane.EnginePool() if fastlane.available() else None
    events: list[MediaEvent] = []
    settings = BridgeSettings(
        allocator(32000, 33999), host_addresses=("127.0.0.1",), call_id=f"video-bw-{tmmbr}",
        video_codecs=("VP8",), fast_lane=pool,
    )  # fmt: skip
    phone, camera = RecordingPeer(), PlainVideoPeer("VP8")
    bridge = MediaBridge(settings, events.append)
    feedback = ("nack pli", "ccm tmmbr") if tmmbr else ("nack pli",)
    try:
        await phone.start()
        await camera.start()
        offer, web_answer = await call_the_phone(page, bridge, phone, camera, feedback=feedback)
        # the SDP: we offer the phone ccm tmmbr (we answer it), the browser keeps goog-remb
        assert all("ccm tmmbr" in c.rtcp_fb for c in offer.media[1].codecs), offer.media[1]
        assert all("goog-remb" in c.rtcp_fb for c in parse(web_answer).media[1].codecs), web_answer
        video = bridge.video
        assert video is not None and video.tmmbr is tmmbr

        sending = asyncio.create_task(camera.send_video(8.0))
        # Chromium says what it receives (the phone's video) may use by REMB, every 200 ms
        await wait_for(lambda: asyncio.sleep(0, video.stats().bitrate_from_web is not None), timeout=6)
        before = await stats(page)
        await wait_for(lambda: asyncio.sleep(0, len(camera.sources) > 0), timeout=4)
        assert camera.send_tmmbr(LIMIT)  # the phone asks the browser's video to stay under LIMIT
        await asyncio.sleep(3.0)
        after = await stats(page)
        chromium = video.stats().bitrate_from_web
        floor = list(camera.tmmbr)  # what Chromium's own REMBs gave the phone
        web = video.web
        assert web is not None and web.remote_ssrc is not None
        remb = RtcpPsfbPacket(
            fmt=RTCP_PSFB_APP, ssrc=web.remote_ssrc, media_ssrc=0, fci=pack_remb_fci(ASKED, [web.sender.ssrc])
        )
        await web.transceiver.sender._handle_rtcp_packet(remb)
        await asyncio.sleep(0.3)
        await sending
        result = {
            "video": video.stats(),
            "phone": (camera.tmmbr, camera.tmmbn),
            "before": before,
            "after": after,
        }
        assert chromium is not None and chromium > 0, result  # Chromium's REMB was seen either way
        if chromium < MIN_USEFUL_BITRATE:
            assert floor == [], result  # its floor ("no estimate") is not passed on
        if tmmbr:
            # the browser's REMB reached the phone as a TMMBR for its stream, with the bitrate asked
            assert camera.tmmbr[-1] == tmmbr_value(ASKED) == ASKED, result
            assert video.stats().tmmbr_sent == len(camera.tmmbr) == len(floor) + 1, result
            # the phone's TMMBR: acknowledged (TMMBN with its tuple), a REMB to Chromium, whose encoder obeys
            assert camera.tmmbn == [tmmbr_value(LIMIT)], result
            assert video.stats().bitrate_from_sip == tmmbr_value(LIMIT) and video.stats().remb_sent == 1, (
                result
            )
            assert after["outbound-rtp-video"]["targetBitrate"] <= LIMIT, result
        else:  # the phone negotiated no tmmbr: nothing goes either way
            assert camera.tmmbr == [] and camera.tmmbn == [], result
            assert video.stats().tmmbr_sent == video.stats().remb_sent == 0, result
            assert video.stats().bitrate_from_sip is None, result
            assert after["outbound-rtp-video"]["targetBitrate"] > LIMIT, result
    finally:
        await hang_up(bridge, pool, phone, camera)
