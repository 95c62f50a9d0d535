"""SDES-SRTP on the SIP side's video (issue 19): headless Chromium's fake camera <-> bridge <-> a VP8 phone
(peers.video_phone) that protects its RTP and RTCP with keys from the SDP (RFC 4568, RFC 3711), on the
Python path and through the fast lane's engine. Checked: the SDP on the wire carries a=crypto on both
m-lines (keys of their own), pictures decoded both ways with nothing failing authentication, keyframe
requests (SRTCP) crossing; and an offer whose video key is unusable gets its video rejected (port 0)
while the audio goes on. Skips without chromium or playwright (fails under CI=true).
"""

from __future__ import annotations

import asyncio

import pytest

import sdp
from gateway.media import fastlane
from gateway.media.bridge import MediaBridge
from gateway.media.bridge_settings import BridgeSettings
from gateway.media.events import MediaEvent
from gateway.media.rtp.srtp import SdesSrtp
from peers.video_phone import PlainVideoPeer
from peers.webpeer import WebPeer
from tests.media.bridge_harness import RecordingPeer, allocator, hang_up
from tests.media.fastlane.test_fastpath import require_fast_lane
from tests.media.video.test_video_chromium import (
    ANSWER,
    PICTURE,
    call_the_phone,
    page,
    stats,
    until_chromium_is_asked,
    wait_for,
)
from tests.signaling.browser import Page

__all__ = ["page"]  # the fixture


def settings(call_id: str, srtp: str, pool: fastlane.EnginePool | None) -> BridgeSettings:
    return BridgeSettings(
        allocator(32000, 33999), host_addresses=("127.0.0.1",), call_id=call_id, video_codecs=("VP8",),
        fast_lane=pool, sip_srtp=srtp, offer_sdes=True,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("srtp", "fast"), [("optional", True), ("required", False)], ids=["engine", "python"]
)
async def test_chromium_calls_an_sdes_video_phone(page: Page, srtp: str, fast: bool) -> None:
    if fast:
        require_fast_lane()
    pool = fastlane.EnginePool() if fast else None
    events: list[MediaEvent] = []
    phone, camera = RecordingPeer(), PlainVideoPeer("VP8", srtp=True)
    bridge = MediaBridge(settings(f"video-sdes-{srtp}", srtp, pool), events.append)
    try:
        await phone.start()
        await camera.start()
        offer, _ = await call_the_phone(page, bridge, phone, camera, srtp=True)
        audio, picture = offer.media
        # the SDP on the wire: a=crypto on both m-lines, keys of their own; RTP/SAVP where SRTP is required
        assert len(audio.cryptos) == 1 and len(picture.cryptos) == 1, sdp.write(offer)
        assert audio.cryptos[0].key != picture.cryptos[0].key
        expected = "RTP/SAVP" if srtp == "required" else "RTP/AVP"
        assert (audio.proto, picture.proto) == (expected, expected), sdp.write(offer)
        video = bridge.video
        assert video is not None and video.endpoint is not None and video.endpoint.srtp is not None

        sending = asyncio.create_task(camera.send_video(5.0, skip_first=2))
        await wait_for(lambda: asyncio.sleep(0, len(camera.decoded) >= 30), timeout=8)
        first = await stats(page)
        # SRTCP from the phone, unprotected by the gateway, a PLI to Chromium
        await until_chromium_is_asked(page, camera.send_pli, first["outbound-rtp-video"]["pliCount"])
        await sending
        after = await stats(page)
        seen = await page.evaluate(PICTURE)
        engine = None
        if fast:
            link = bridge.fast_lane.link if bridge.fast_lane is not None else None
            assert link is not None
            engine = link.native.video_counters()
            link.sync()
        result = {"browser": after, "picture": seen, "video": video.stats(), "engine": engine}

        # the phone decoded Chromium's green camera through SRTP, and nothing failed authentication
        assert len(camera.decoded) >= 30 and camera.srtp_failed == 0, result
        width, height, _, u, v = camera.decoded[-1]
        assert (width, height) == (320, 240) and u < 110 and v < 110, camera.decoded[-1]
        # Chromium decoded the phone's blue pattern, unprotected by the gateway
        inbound = after["inbound-rtp-video"]
        assert inbound["framesDecoded"] >= 40 and inbound["frameWidth"] == 320, result
        assert seen is not None and seen[:2] == [320, 240] and seen[5] > seen[4] + 50, result
        assert video.endpoint.dropped == 0, result
        # keyframe requests crossed both ways as SRTCP
        assert after["outbound-rtp-video"]["pliCount"] > first["outbound-rtp-video"]["pliCount"], result
        assert inbound["pliCount"] >= 1 and camera.plis >= 1, result
        if engine is not None:  # the engine's video lanes carried most of it, with the video's own sessions
            web_to_sip, sip_to_web, errors_out, errors_in, dropped = engine
            assert web_to_sip > 0.8 * video.to_sip.forwarded > 50, result
            assert sip_to_web > 0.8 * video.to_web.forwarded > 50, result
            assert errors_out == errors_in == dropped == 0, result
        # the audio went on under its own keys
        assert phone.srtp is not None and phone.frames > 50, result
    finally:
        await hang_up(bridge, pool, phone, camera)


async def test_an_sdes_video_phone_calls_chromium(page: Page) -> None:
    """The other way: the phone offers RTP/SAVP video with its key (and plain audio); our answer carries
    a key of ours with its tag and suite; pictures cross both ways through the engine."""
    require_fast_lane()
    pool = fastlane.EnginePool()
    events: list[MediaEvent] = []
    phone, camera = RecordingPeer(), PlainVideoPeer("VP8", payload_type=100, srtp=True)
    bridge = MediaBridge(settings("video-sdes-in", "optional", pool), events.append)
    try:
        await phone.start()
        await camera.start()
        offer = phone_offer(phone, camera.offer())
        web_offer = sdp.parse(await bridge.offer_to_web(sdp.write(offer)))
        # (and the chat's data channel, media.data_channel being on by default)
        assert [m.media for m in web_offer.media if not m.rejected] == ["audio", "video", "application"]
        plain = sdp.parse(await bridge.answer_from_web(await page.evaluate(ANSWER, sdp.write(web_offer))))
        picture = plain.media[1]
        assert (picture.proto, picture.formats) == ("RTP/SAVP", ("100",)) and not picture.rejected
        assert camera.crypto is not None and len(picture.cryptos) == 1
        assert (picture.cryptos[0].tag, picture.cryptos[0].suite) == (camera.crypto.tag, camera.crypto.suite)
        assert picture.cryptos[0].key != camera.crypto.key
        phone.remote = ("127.0.0.1", plain.media[0].port)
        camera.answered(picture, "127.0.0.1")
        await wait_for(lambda: page.evaluate("() => pc.connectionState === 'connected'"))
        sending = asyncio.create_task(
            camera.send_video(6.0, skip_first=2)
        )  # 4 s: <50 engine packets at load 8
        await wait_for(lambda: asyncio.sleep(0, len(camera.decoded) >= 20), timeout=8)
        await sending
        after = await stats(page)
        video = bridge.video
        assert video is not None
        link = bridge.fast_lane.link if bridge.fast_lane is not None else None
        engine = link.native.video_counters() if link is not None else None
        result = {"browser": after, "video": video.stats(), "engine": engine}
        assert len(camera.decoded) >= 20 and camera.decoded[-1][:2] == (320, 240), result
        assert camera.srtp_failed == 0, result
        assert after["inbound-rtp-video"]["framesDecoded"] >= 30, result
        assert engine is not None and engine[0] > 50 and engine[1] > 50 and engine[4] == 0, result
    finally:
        await hang_up(bridge, pool, phone, camera)


def phone_offer(phone: RecordingPeer, picture: sdp.MediaDescription) -> sdp.SessionDescription:
    audio = sdp.MediaDescription(
        "audio", phone.address[1], "RTP/AVP", ("0",), attributes=(sdp.Attribute("rtpmap", "0 PCMU/8000"),)
    )
    return sdp.SessionDescription(
        sdp.Origin("-", "1", 1, "127.0.0.1"), connection=sdp.Connection("127.0.0.1"), media=(audio, picture)
    )


UNUSABLE = "1 AES_256_CM_HMAC_SHA1_80 inline:" + "A" * 60  # a suite the gateway does not take


@pytest.mark.parametrize("srtp", ["optional", "required"])
async def test_a_video_offer_with_an_unusable_key_loses_its_video(srtp: str) -> None:
    """RTP/SAVP video whose only a=crypto is unusable: the video m-line is answered with port 0, the
    audio (with a usable key) goes on and carries the call; the browser is offered no video."""
    phone, camera = RecordingPeer(), PlainVideoPeer("VP8")
    web = WebPeer(1000.0)
    bridge = MediaBridge(settings(f"video-bad-key-{srtp}", srtp, None), lambda event: None)
    try:
        await phone.start()
        await camera.start()
        key = sdp.Crypto.new()
        audio = sdp.MediaDescription(
            "audio", phone.address[1], "RTP/SAVP", ("0",),
            attributes=(sdp.Attribute("crypto", key.to_sdp()), sdp.Attribute("rtpmap", "0 PCMU/8000")),
        )  # fmt: skip
        plain_video = camera.offer()
        picture = sdp.MediaDescription(
            "video", plain_video.port, "RTP/SAVP", plain_video.formats,
            attributes=(sdp.Attribute("crypto", UNUSABLE), *plain_video.attributes),
        )  # fmt: skip
        offer = sdp.SessionDescription(
            sdp.Origin("-", "1", 1, "127.0.0.1"), connection=sdp.Connection("127.0.0.1"),
            media=(audio, picture),
        )  # fmt: skip
        web_offer = sdp.parse(await bridge.offer_to_web(sdp.write(offer)))
        assert not any(m.media == "video" and not m.rejected for m in web_offer.media), sdp.write(web_offer)
        answer = sdp.parse(await bridge.answer_from_web(await web.answer(sdp.write(web_offer))))
        assert [m.port == 0 for m in answer.media] == [False, True], sdp.write(answer)
        assert answer.media[0].proto == "RTP/SAVP" and len(answer.media[0].cryptos) == 1
        phone.srtp = SdesSrtp(key, answer.media[0].cryptos[0])
        phone.remote = ("127.0.0.1", answer.media[0].port)
        await web.connected()
        await phone.send_tone(600.0, 1.5)
        await asyncio.sleep(0.3)
        assert web.heard(600.0), "the audio went on without the video"
        assert phone.heard(1000.0), "the browser's tone reached the SRTP phone"
    finally:
        await bridge.close()
        await web.close()
        phone.close()
        camera.close()
