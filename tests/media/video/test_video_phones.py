"""Video as SIP phones do it, off the happy path (issue 68 item 3), at the bridge with real peers:
headless Chromium's fake camera on the web side, a plain RTP/AVP video phone (peers.video_phone, VP8 and
H.264 through aiortc's libvpx and libx264) on the SIP side.

- the phone's video removed (m=video port 0 in a re-INVITE) and added again by a later re-INVITE: the
  browser is offered the video again on the same peer connection and pictures cross both ways again;
- keyframe requests across those re-INVITEs: the phone's PLI (or SIP INFO picture_fast_update, RFC 5168)
  reaches Chromium as a PLI, Chromium's PLI reaches the phone (or becomes a ``KeyframeWanted`` for the
  call's INFO), after each renegotiation.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

import sdp
from gateway.media.bridge import MediaBridge
from gateway.media.bridge_settings import BridgeSettings
from gateway.media.events import KeyframeWanted, Leg, MediaEvent
from gateway.media.video.keyframe import MEDIA_CONTROL, SipRequestKind, picture_fast_update
from peers.video_phone import PlainVideoPeer
from sdp import video
from tests.media.bridge_harness import RecordingPeer, allocator
from tests.media.pictures import picture_script
from tests.media.video.test_video_chromium import ANSWER, page, wait_for
from tests.signaling.browser import Page

__all__ = ["page"]

# Chromium answers a re-offer as a page with a camera does: a video transceiver the offer brings (again)
# gets the fake camera's track and sends it; the remote <video> shows the newest remote video track.
REANSWER = """async (offer) => {
  await pc.setRemoteDescription({type: 'offer', sdp: offer});
  const camera = window.stream.getVideoTracks()[0];
  for (const t of pc.getTransceivers()) {
    if (t.stopped || t.receiver.track.kind !== 'video' || t.currentDirection === 'inactive') continue;
    if (!t.sender.track) { await t.sender.replaceTrack(camera); t.direction = 'sendrecv'; }
    if (window.remote.srcObject.getTracks()[0] !== t.receiver.track) {
      window.remote.srcObject = new MediaStream([t.receiver.track]);
      window.remote.play().catch(() => {});
    }
  }
  await pc.setLocalDescription(await pc.createAnswer());
  return pc.localDescription.sdp;
}"""
PICTURE = picture_script("window.remote")
# the first answer, its camera kept for the re-answers
FIRST_ANSWER = ANSWER.replace("const stream =", "const stream = window.stream =", 1)


def bridge_settings(call_id: str, codecs: tuple[str, ...]) -> BridgeSettings:
    return BridgeSettings(
        allocator(44000, 45999), host_addresses=("127.0.0.1",), call_id=call_id, video_codecs=codecs,
        fast_lane=None,
    )  # fmt: skip


def phone_offer(phone: RecordingPeer, picture: sdp.MediaDescription) -> sdp.SessionDescription:
    """A video phone's first offer: PCMU audio to ``phone`` and its video m-line ``picture``."""
    audio = sdp.MediaDescription(
        "audio", phone.address[1], "RTP/AVP", ("0",), attributes=(sdp.Attribute("rtpmap", "0 PCMU/8000"),)
    )
    return sdp.SessionDescription(
        sdp.Origin("-", "1", 1, "127.0.0.1"), connection=sdp.Connection("127.0.0.1"), media=(audio, picture)
    )


def reoffer(previous: sdp.SessionDescription, video: sdp.MediaDescription) -> sdp.SessionDescription:
    """The phone's next offer: its last SDP, o= version + 1, with ``video`` as the second m-line."""
    origin = dataclasses.replace(previous.origin, session_version=previous.origin.session_version + 1)
    return dataclasses.replace(previous, origin=origin).with_media([previous.media[0], video])


async def frames(page: Page) -> tuple[int, int]:
    """(frames Chromium decoded, PLIs it received for its own video) so far, over every video stream."""
    decoded = plis = 0
    for report in (await page.evaluate(
        """async () => { const out = []; (await pc.getStats()).forEach((s) => {
          if (s.kind === 'video' && s.type.endsWith('bound-rtp')) out.push(s); }); return out; }"""
    )):  # fmt: skip
        decoded += report.get("framesDecoded", 0) if report["type"] == "inbound-rtp" else 0
        plis += report.get("pliCount", 0) if report["type"] == "outbound-rtp" else 0
    return decoded, plis


async def pictures_both_ways(page: Page, camera: PlainVideoPeer, seconds: float = 3.0) -> None:
    """The phone sends for ``seconds``: more pictures decoded by the phone and by Chromium, each the far
    camera's colour (Chromium's green, the phone's blue)."""
    decoded, phone = (await frames(page))[0], len(camera.decoded)
    await camera.send_video(seconds)
    await wait_for(lambda: asyncio.sleep(0, len(camera.decoded) >= phone + 15), timeout=5)
    after = (await frames(page))[0]
    assert len(camera.decoded) >= phone + 15 and after >= decoded + 15, (len(camera.decoded), phone, after)
    width, height, _, u, v = camera.decoded[-1]
    assert (width, height) == (320, 240) and u < 110 and v < 110, camera.decoded[-1]  # Chromium's green
    seen = await page.evaluate(PICTURE)
    assert seen is not None and seen[:2] == [320, 240] and seen[5] > seen[4] + 50, seen  # the phone's blue


async def keyframes_cross(page: Page, bridge: MediaBridge, camera: PlainVideoPeer, events: list[Any]) -> None:
    """A keyframe request each way while the phone sends: its PLI (or INFO) to Chromium, Chromium's
    (a start without a keyframe) to the phone as PLI (or a ``KeyframeWanted`` for the call's INFO)."""
    video = bridge.video
    assert video is not None
    by_info = video.sip_request is SipRequestKind.INFO
    before_plis, before_wanted, (_, asked) = (
        camera.plis,
        events.count(KeyframeWanted(Leg.SIP)),
        await frames(page),
    )
    sending = asyncio.create_task(camera.send_video(3.0, skip_first=2))  # Chromium has to ask
    try:
        for _ in range(6):
            await asyncio.sleep(0.6)  # past the bridge's limit of one request per side each 0.5 s
            if by_info:
                video.keyframe_from_info()
            else:
                camera.send_pli()
            if (await frames(page))[1] > asked:
                break
    finally:
        await sending
    assert (await frames(page))[1] > asked, video.stats()  # the phone's request reached Chromium
    if by_info:
        assert events.count(KeyframeWanted(Leg.SIP)) > before_wanted, video.stats()
    else:
        assert camera.plis > before_plis, video.stats()


@pytest.mark.parametrize("feedback", [("nack pli",), ()], ids=["rtcp-pli", "sip-info"])
async def test_video_removed_then_added_again(page: Page, feedback: tuple[str, ...]) -> None:
    """A VP8 phone calls Chromium with video, turns it down (port 0) and offers it again: video and keyframe
    requests cross both ways before, and again after the second re-INVITE."""
    events: list[MediaEvent] = []
    settings = bridge_settings("video-again", ("VP8",))
    phone, camera = RecordingPeer(), PlainVideoPeer("VP8", payload_type=100)

    def on_event(event: MediaEvent) -> None:
        events.append(event)
        if isinstance(event, KeyframeWanted):
            camera.info(MEDIA_CONTROL, picture_fast_update())

    bridge = MediaBridge(settings, on_event)
    try:
        await phone.start()
        await camera.start()
        picture = camera.offer()
        if not feedback:  # a phone that asks for keyframes by SIP INFO only
            picture = picture.without("rtcp-fb")
        offer = phone_offer(phone, picture)
        plain = sdp.parse(
            await bridge.answer_from_web(
                await page.evaluate(FIRST_ANSWER, await bridge.offer_to_web(sdp.write(offer)))
            )
        )
        phone.remote = ("127.0.0.1", plain.media[0].port)
        camera.answered(plain.media[1], "127.0.0.1")
        await wait_for(lambda: page.evaluate("() => pc.connectionState === 'connected'"))
        await pictures_both_ways(page, camera)
        await keyframes_cross(page, bridge, camera, events)

        # the phone turns the video down: port 0
        down = reoffer(offer, sdp.MediaDescription("video", 0, "RTP/AVP", picture.formats))
        web_offer = await bridge.reoffer_web_for_sip(sdp.write(down))
        assert web_offer is not None
        answer = sdp.parse(await bridge.reanswer_from_web(await page.evaluate(REANSWER, web_offer)))
        assert answer.media[1].port == 0 and bridge.video is not None and not bridge.video.active

        # ... and offers it again
        up = reoffer(down, picture)
        web_offer = await bridge.reoffer_web_for_sip(sdp.write(up))
        assert web_offer is not None, "the video offered again is no change for the bridge"
        answer = sdp.parse(await bridge.reanswer_from_web(await page.evaluate(REANSWER, web_offer)))
        assert answer.media[1].port != 0 and answer.media[1].formats == ("100",), sdp.write(answer)
        camera.answered(answer.media[1], "127.0.0.1")
        await pictures_both_ways(page, camera)
        await keyframes_cross(page, bridge, camera, events)
    finally:
        await bridge.close()
        phone.close()
        camera.close()


HIGH = "100 profile-level-id=640c1f;packetization-mode=1"  # H.264 High: no browser codec aiortc carries
BASELINE = "102 profile-level-id=42e01f;packetization-mode=1"  # Constrained Baseline, as browsers send


def h264_offer(camera: PlainVideoPeer, phone: RecordingPeer, *fmtps: str) -> sdp.SessionDescription:
    """A video phone's offer: PCMU audio and an H.264 m-line with the formats of ``fmtps``, nack pli."""
    types = [f.split()[0] for f in fmtps]
    lines = [
        sdp.Attribute("rtcp", sdp.Rtcp(camera.rtcp_port, "127.0.0.1").to_sdp()),
        sdp.Attribute("sendrecv"),
    ]
    for pt, fmtp in zip(types, fmtps, strict=True):
        lines += [
            sdp.Attribute("rtpmap", f"{pt} H264/90000"), sdp.Attribute("fmtp", fmtp),
            sdp.Attribute("rtcp-fb", f"{pt} nack pli"),
        ]  # fmt: skip
    picture = sdp.MediaDescription(
        "video", camera.address[1], "RTP/AVP", tuple(types), attributes=tuple(lines)
    )
    return phone_offer(phone, picture)


@pytest.mark.parametrize("offered", [(HIGH, BASELINE), (HIGH,)], ids=["high-and-baseline", "high-only"])
async def test_an_h264_profile_the_browser_is_not_given(page: Page, offered: tuple[str, ...]) -> None:
    """An H.264 phone offers High profile (and Constrained Baseline): the gateway forwards without
    transcoding, so it answers only a profile both sides carry (RFC 6184 §8.2.2: the answer's
    profile-level-id is the offer's profile): Constrained Baseline at the phone's payload type, pictures
    both ways; with High only, the video m-line is answered with port 0 and the audio goes on."""
    settings = bridge_settings("h264-profile", ("H264",))
    phone, camera = RecordingPeer(), PlainVideoPeer("H264", payload_type=102)
    bridge = MediaBridge(settings, lambda event: None)
    try:
        await phone.start()
        await camera.start()
        offer = h264_offer(camera, phone, *offered)
        web_offer = sdp.parse(await bridge.offer_to_web(sdp.write(offer)))
        web_video = [m for m in web_offer.media if m.media == "video" and not m.rejected]
        web_h264 = [c for m in web_video for c in m.codecs if c.name == "H264"]
        # what the browser is offered: Constrained Baseline only, never the High profile
        assert all((c.parameters.get("profile-level-id") or "")[:2] == "42" for c in web_h264), sdp.write(
            web_offer
        )
        plain = sdp.parse(
            await bridge.answer_from_web(await page.evaluate(FIRST_ANSWER, sdp.write(web_offer)))
        )
        picture = plain.media[1]
        phone.remote = ("127.0.0.1", plain.media[0].port)
        if BASELINE not in offered:
            assert picture.port == 0 and not plain.media[0].rejected, sdp.write(plain)
            await wait_for(lambda: page.evaluate("() => pc.connectionState === 'connected'"))
            await wait_for(lambda: asyncio.sleep(0, phone.received > 25), timeout=5)
            assert phone.received > 25  # the browser's microphone reaches the phone: the call goes on
            return
        assert picture.port != 0 and picture.formats == ("102",), sdp.write(plain)
        assert (picture.codecs[0].parameters.get("profile-level-id") or "").lower() == "42e01f", sdp.write(
            plain
        )
        camera.answered(picture, "127.0.0.1")
        await wait_for(lambda: page.evaluate("() => pc.connectionState === 'connected'"))
        await pictures_both_ways(page, camera)
    finally:
        await bridge.close()
        phone.close()
        camera.close()


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_a_late_offer_from_a_video_phone(page: Page, codec: str) -> None:
    """A video phone's INVITE without SDP (RFC 3261 §13.2.1): the browser is offered video, its answer
    makes the video of our offer in the 200, the phone's answer (in the ACK) takes it: pictures and
    keyframe requests both ways."""
    events: list[MediaEvent] = []
    order = (codec, *({"VP8", "H264"} - {codec}))  # codecs.video: the browser sends the first it takes
    bridge = MediaBridge(bridge_settings("late-video", order), events.append)
    phone, camera = RecordingPeer(), PlainVideoPeer(codec)
    try:
        await phone.start()
        await camera.start()
        web_offer = sdp.parse(await bridge.offer_to_web(None))
        assert [m.media for m in web_offer.media][:2] == ["audio", "video"], sdp.write(web_offer)
        offer = sdp.parse(
            await bridge.answer_from_web(await page.evaluate(FIRST_ANSWER, sdp.write(web_offer)))
        )
        assert [m.media for m in offer.media] == ["audio", "video"], sdp.write(offer)
        picture = offer.media[1]
        assert picture.port != 0 and picture.proto == "RTP/AVP" and codec in {c.name for c in picture.codecs}
        assert not any(video.is_repair(c) for c in picture.codecs), sdp.write(offer)
        answer = sdp.answer(
            offer, codecs=["PCMU"], transport=sdp.PlainTransport("127.0.0.1", phone.address[1])
        )
        answer = answer.with_media([answer.media[0], camera.answer(picture, "127.0.0.1")])
        await bridge.answer_to_reoffer(sdp.write(answer))  # the ACK's answer
        phone.remote = ("127.0.0.1", offer.media[0].port)
        await wait_for(lambda: page.evaluate("() => pc.connectionState === 'connected'"))
        await pictures_both_ways(page, camera)
        await keyframes_cross(page, bridge, camera, events)
    finally:
        await bridge.close()
        phone.close()
        camera.close()


@pytest.mark.parametrize("payload_type", [98, 121])
async def test_vp9_to_the_browser(page: Page, payload_type: int) -> None:
    """A VP9 phone (RFC 9628, profile 0) calls Chromium: the browser is offered VP9 (aiortc's table has
    none; the web leg adds it, forwarded only, never decoded), answers it, and the pictures cross both
    ways with keyframe requests; Chromium's flexible-mode VP9 reaches the phone as it sent it. The
    phone's payload type is its own (Chromium's 98, or one the browser did not choose)."""
    events: list[MediaEvent] = []
    bridge = MediaBridge(bridge_settings("vp9", ("VP9",)), events.append)
    phone, camera = RecordingPeer(), PlainVideoPeer("VP9", payload_type=payload_type)
    try:
        await phone.start()
        await camera.start()
        picture = camera.offer()
        web_offer = sdp.parse(await bridge.offer_to_web(sdp.write(phone_offer(phone, picture))))
        web_video = [m for m in web_offer.media if m.media == "video" and not m.rejected]
        assert [c.name for m in web_video for c in m.codecs] == ["VP9"], sdp.write(web_offer)
        plain = sdp.parse(
            await bridge.answer_from_web(await page.evaluate(FIRST_ANSWER, sdp.write(web_offer)))
        )
        assert plain.media[1].port != 0 and plain.media[1].formats == (str(payload_type),), sdp.write(plain)
        phone.remote = ("127.0.0.1", plain.media[0].port)
        camera.answered(plain.media[1], "127.0.0.1")
        await wait_for(lambda: page.evaluate("() => pc.connectionState === 'connected'"))
        await pictures_both_ways(page, camera)
        await keyframes_cross(page, bridge, camera, events)
        codec = await page.evaluate(
            """async () => { const stats = await pc.getStats(); let mime = null;
              stats.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video')
                mime = stats.get(s.codecId).mimeType; }); return mime; }"""
        )
        assert codec == "video/VP9", codec
    finally:
        await bridge.close()
        phone.close()
        camera.close()
