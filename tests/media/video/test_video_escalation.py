"""An audio call escalated to video and back by the SIP side's re-offers (issue 19), at the bridge:
the "browser" is aiortc (peers.webpeer.WebPeer with a camera, renegotiating as a page does), the phone a
plain RTP/AVP VP8 video phone (peers.video_phone.PlainVideoPeer) with a tone peer for its audio.

The phone's re-offer adds a video m-line: the bridge offers the browser again (a subsequent offer on the
same ICE/DTLS, the audio's payload types kept), the browser's answer gives the SIP answer; pictures are
decoded on both far sides (count, size, the colour of each camera). Its next re-offer turns the video down
(port 0): the browser is offered the video m-line rejected, the SIP answer says port 0, the video path
stops, the audio goes on."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import sdp
from peers.video_phone import PlainVideoPeer
from peers.webpeer import WebPeer
from tests.media.bridge_harness import SIP_TONE, WEB_TONE, Call, allocator
from tests.media.fastlane.test_fastpath import require_fast_lane


@pytest.fixture(params=["python", "fast-lane"])
async def call(request: pytest.FixtureRequest) -> AsyncIterator[Call]:
    if request.param == "fast-lane":
        require_fast_lane()  # under CI=true a missing build fails
    extra: dict[str, Any] = {} if request.param == "fast-lane" else {"fast_lane": None}
    call = Call(allocator(30400, 30799), call_id="escalation", video_codecs=("VP8", "H264"), **extra)
    call.web = WebPeer(WEB_TONE, camera=True)
    try:
        yield call
    finally:
        await call.close()


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    for _ in range(int(timeout / 0.05)):
        if condition():
            return True
        await asyncio.sleep(0.05)
    return condition()


def reoffer(previous: sdp.SessionDescription, video: sdp.MediaDescription) -> str:
    """The phone's next offer: its last SDP, o= version + 1, with ``video`` as the second m-line."""
    origin = dataclasses.replace(previous.origin, session_version=previous.origin.session_version + 1)
    return sdp.write(dataclasses.replace(previous, origin=origin).with_media([previous.media[0], video]))


async def escalate(
    call: Call, camera: PlainVideoPeer, phone_sdp: sdp.SessionDescription
) -> sdp.SessionDescription:
    """The phone's re-offer adds its video: the browser's new offer, its answer, the SIP answer."""
    offered = reoffer(phone_sdp, camera.offer())
    web_offer = await call.bridge.reoffer_web_for_sip(offered)
    assert web_offer is not None
    described = sdp.parse(web_offer)
    # video comes last (RFC 3264 §8.1: m-lines are only added): after the audio, and after the data
    # channel the gateway's first offer to the browser has when the phone placed the call
    kinds = [m.media for m in described.media]
    assert kinds in (["audio", "video"], ["audio", "application", "video"]), kinds
    assert [c.name for c in described.media[-1].codecs if c.name != "rtx"] == ["VP8"]
    assert set(described.bundle_mids()) == {m.mid for m in described.media}
    answer = sdp.parse(await call.bridge.reanswer_from_web(await call.web.answer(web_offer)))
    picture = answer.media[1]
    assert picture.port != 0 and picture.formats == ("96",), sdp.write(answer)
    assert [c.name for c in picture.codecs] == ["VP8"]
    camera.answered(picture, "127.0.0.1")
    return sdp.parse(offered)


async def check_video_both_ways(call: Call, camera: PlainVideoPeer, *, at_least: float = 4.0) -> None:
    """20 more pictures decoded each way, the phone sending for at least ``at_least`` seconds (a test that
    counts what a lane carried gets that much traffic). The phone sends on until then, as a phone does,
    and asks for a keyframe once a second while it decodes nothing new: at load 6.5 a fixed 4 s of
    sending once ended with neither side having decoded a picture (the first keyframes were lost while the
    path came up)."""
    seen_web, seen_phone = len(call.web.pictures), len(camera.decoded)

    def both() -> bool:
        return len(call.web.pictures) >= seen_web + 20 and len(camera.decoded) >= seen_phone + 20

    loop = asyncio.get_running_loop()
    started, decoded = loop.time(), len(camera.decoded)
    async with camera.sending():
        while loop.time() - started < 15.0:
            await asyncio.sleep(1.0)
            if both() and loop.time() - started >= at_least:
                break
            if len(camera.decoded) == decoded:  # nothing new this second
                camera.send_pli()
            decoded = len(camera.decoded)
        assert both(), (
            len(call.web.pictures) - seen_web, len(camera.decoded) - seen_phone,
            call.bridge.video and call.bridge.video.stats(),
        )  # fmt: skip
    call.bridge.stats()  # what the fast lane's engine forwarded is accounted (a sync): video.stats() is current
    width, height, _, u, v = call.web.pictures[-1]
    assert (width, height) == (320, 240) and u > v + 50, call.web.pictures[-1]  # the phone's blue
    width, height, _, u, v = camera.decoded[-1]
    assert (width, height) == (320, 240) and u < 110 and v < 110, camera.decoded[-1]  # the browser's green


async def audio_call(call: Call, who_calls: str) -> sdp.SessionDescription:
    """An audio call up, placed by the browser or the phone; the phone's last SDP."""
    if who_calls == "browser":
        await call.browser_calls()
        assert call.plain_offer is not None and [m.media for m in call.plain_offer.media] == ["audio"]
        phone_sdp = sdp.parse(call.phone_answer(call.plain_offer, call.phone))
    else:
        await call.pbx_calls()
        phone_sdp = sdp.parse(call.phone_offer())
    await call.web.connected()
    await call.connected()
    assert call.bridge.video is not None and not call.bridge.video.active
    return phone_sdp


async def check_audio_only(call: Call, camera: PlainVideoPeer) -> None:
    """The video is off (port 0 both ways, its endpoint closed): the audio goes on both ways, nothing
    more of the phone's video reaches the browser."""
    assert call.bridge.video is not None
    assert not call.bridge.video.active and call.bridge.video.endpoint is None
    seen, heard = len(call.web.pictures), call.phone.received
    call.web.clear()
    await asyncio.gather(call.play(1.0), camera.send_video(1.0))
    assert call.web.heard(SIP_TONE) and call.phone.received > heard + 25  # the audio both ways
    assert len(call.web.pictures) <= seen + 2  # nothing more of the phone's video


@pytest.mark.parametrize("who_calls", ["browser", "phone"])
async def test_the_phone_adds_video_then_turns_it_down(call: Call, who_calls: str) -> None:
    camera = PlainVideoPeer("VP8")
    await camera.start()
    try:
        phone_sdp = await audio_call(call, who_calls)
        with_video = await escalate(call, camera, phone_sdp)
        assert call.bridge.video is not None and call.bridge.video.active
        await check_video_both_ways(call, camera)
        stats = call.bridge.video.stats()
        assert stats.sip_to_web.forwarded >= 20 and stats.web_to_sip.forwarded >= 20, stats

        # The phone turns the video down: port 0 both ways, the video path stopped, the audio goes on.
        rejected = sdp.MediaDescription("video", 0, "RTP/AVP", with_video.media[1].formats)
        web_offer = await call.bridge.reoffer_web_for_sip(reoffer(with_video, rejected))
        assert web_offer is not None
        described = sdp.parse(web_offer)
        video = described.media[-1]
        assert video.media == "video" and video.port == 0 and video.mid not in described.bundle_mids()
        answer = sdp.parse(await call.bridge.reanswer_from_web(await call.web.answer(web_offer)))
        assert not answer.media[0].rejected and answer.media[1].port == 0, sdp.write(answer)
        await check_audio_only(call, camera)
    finally:
        camera.close()


async def test_a_reoffer_that_keeps_the_audio_only_is_answered_at_once(call: Call) -> None:
    """A hold or a refresh of an audio call is no escalation: no new offer to the browser."""
    await call.browser_calls()
    await call.web.connected()
    assert call.plain_offer is not None
    phone_sdp = sdp.parse(call.phone_answer(call.plain_offer, call.phone))
    origin = dataclasses.replace(phone_sdp.origin, session_version=phone_sdp.origin.session_version + 1)
    assert (
        await call.bridge.reoffer_web_for_sip(sdp.write(dataclasses.replace(phone_sdp, origin=origin)))
        is None
    )


async def test_the_browser_never_answers(call: Call) -> None:
    """The browser does not answer the re-offer: the web leg is put back (stable, video off), the new
    video endpoint closed; a later escalation can offer again."""
    camera = PlainVideoPeer("VP8")
    await camera.start()
    try:
        await call.browser_calls()
        await call.web.connected()
        await call.connected()
        assert call.plain_offer is not None
        phone_sdp = sdp.parse(call.phone_answer(call.plain_offer, call.phone))
        assert await call.bridge.reoffer_web_for_sip(reoffer(phone_sdp, camera.offer())) is not None
        await call.bridge.cancel_web_reoffer()
        assert call.bridge.video is not None and call.bridge.video.endpoint is None
        assert call.bridge._web._pc.signalingState == "stable"
        call.web.clear()
        await call.play(1.0)
        assert call.web.heard(SIP_TONE)  # the audio call goes on
    finally:
        camera.close()


async def test_a_stranger_s_packets_before_the_phone_s_do_not_keep_the_video(call: Call) -> None:
    """A few VP8 packets from another address reach the SIP side's video port before the phone's (a
    port just freed by another call whose far end still sends; a scanner): the port latches to the
    stranger, and the phone's stream takes it back after RELATCH_PACKETS, as the audio's does. Before,
    the video latched to the first source for good: neither side decoded a picture (twice in CI)."""
    camera = PlainVideoPeer("VP8")
    await camera.start()
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        phone_sdp = await audio_call(call, "phone")
        await escalate(call, camera, phone_sdp)
        assert call.bridge.video is not None and call.bridge.video.endpoint is not None
        port = call.bridge.video.endpoint.local_rtp_address[1]
        stranger.bind(("127.0.0.1", 0))
        for sequence in range(3):  # the phone's payload type, another SSRC
            header = struct.pack("!BBHII", 0x80, 96, sequence, 90 * sequence, 0x5EED)
            stranger.sendto(header + b"\x10\x00\x00\x9d\x01\x2a", ("127.0.0.1", port))
        video = call.bridge.video
        assert await until(lambda: video.endpoint is not None and video.endpoint.latched_address is not None)
        await check_video_both_ways(call, camera)
        assert call.bridge.video.endpoint.latched_address == camera.address
    finally:
        stranger.close()
        camera.close()
