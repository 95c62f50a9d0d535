"""The video of a bridge when it cannot go (issue 19): the audio call goes on, the video m-line is
turned down cleanly (port 0) on the side that cannot take it. The "browser" is aiortc (the gateway's own
WebRtcLeg with its video transceiver, as bench/video_bench.py uses it), offering PCMU and VP8."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import sdp
from gateway.media.bridge import MediaBridge
from gateway.media.bridge_settings import BridgeSettings
from gateway.media.codecs import codec_choice
from gateway.media.webrtc.webrtc_leg import WebLegOptions, WebRtcLeg
from tests.media.bridge_harness import allocator
from tests.sdp import samples

PHONE = ("127.0.0.1", 44990)


@pytest.fixture
async def browser() -> AsyncIterator[WebRtcLeg]:
    leg = WebRtcLeg(
        WebLegOptions(host_addresses=("127.0.0.1",)), on_rtp=lambda *a: None, on_event=lambda e: None
    )
    leg.enable_video(lambda *a: None, lambda: None)
    try:
        yield leg
    finally:
        await leg.close()


def bridge(video: tuple[str, ...] = ("VP8", "H264")) -> MediaBridge:
    settings = BridgeSettings(
        allocator(44000, 44999), host_addresses=("127.0.0.1",), call_id="video-refused", video_codecs=video,
        fast_lane=None,
    )  # fmt: skip
    return MediaBridge(settings, lambda event: None)


async def offer(browser: WebRtcLeg) -> str:
    description = await browser.create_offer([codec_choice.known("PCMU")], [sdp.Codec(96, "VP8", 90000)])
    assert [m.media for m in description.media] == ["audio", "video"]
    return sdp.write(description)


def audio_answer(plain: sdp.SessionDescription) -> sdp.SessionDescription:
    return sdp.answer(plain, codecs=["PCMU"], transport=sdp.PlainTransport(*PHONE))


async def test_the_phone_turns_the_video_down(browser: WebRtcLeg) -> None:
    media = bridge()
    try:
        plain = sdp.parse(await media.offer_to_sip(await offer(browser)))
        assert plain.media[1].port != 0 and [c.name for c in plain.media[1].codecs] == ["VP8"]
        answer = audio_answer(plain)  # one RTP port: its video m-line is port 0
        assert answer.media[1].rejected
        web = sdp.parse(await media.answer_from_sip(sdp.write(answer)))
        assert not web.media[0].rejected and web.media[1].rejected and web.media[1].mid is not None
        assert media.video is not None and not media.video.active and media.video.endpoint is None
        await browser.accept_answer(web)  # aiortc takes the answer with the video turned down
    finally:
        await media.close()


async def test_an_answer_with_a_codec_we_did_not_offer(browser: WebRtcLeg) -> None:
    media = bridge()
    try:
        plain = sdp.parse(await media.offer_to_sip(await offer(browser)))
        vp8 = plain.media[1].codecs[0]
        h263 = sdp.MediaDescription(
            "video", 30002, "RTP/AVP", (str(vp8.payload_type),),
            attributes=(sdp.Attribute("rtpmap", f"{vp8.payload_type} H263/90000"),),
        )  # fmt: skip
        answer = audio_answer(plain)
        web = sdp.parse(await media.answer_from_sip(sdp.write(answer.with_media([answer.media[0], h263]))))
        assert not web.media[0].rejected and web.media[1].rejected
        assert media.video is not None and not media.video.active
    finally:
        await media.close()


async def test_video_off_keeps_the_old_behaviour(browser: WebRtcLeg) -> None:
    media = bridge(video=())
    try:
        plain = sdp.parse(await media.offer_to_sip(await offer(browser)))
        assert [m.media for m in plain.media] == ["audio"]  # no video m-line offered to the SIP side
        web = sdp.parse(await media.answer_from_sip(sdp.write(audio_answer(plain))))
        assert not web.media[0].rejected and web.media[1].rejected
        assert media.video is None
    finally:
        await media.close()


async def test_a_phone_offering_only_h263_gets_port_0_and_the_browser_no_video() -> None:
    media = bridge()
    try:
        offer = sdp.SessionDescription(
            sdp.Origin("-", "1", 1, "127.0.0.1"), connection=sdp.Connection("127.0.0.1"),
            media=(
                sdp.MediaDescription("audio", 30000, "RTP/AVP", ("0",)),
                sdp.MediaDescription("video", 30002, "RTP/AVP", ("34",)),  # H263, RFC 3551
            ),
        )  # fmt: skip
        web_offer = sdp.parse(await media.offer_to_web(sdp.write(offer)))
        assert [m.media for m in web_offer.media] == ["audio", "application"]  # chat (media.data_channel)
        assert media.video is not None and media.video.offered == []
    finally:
        await media.close()


async def test_the_browser_turns_the_phones_video_down() -> None:
    """The phone offers VP8; the browser (here aiortc without a video transceiver) answers the video with
    port 0: the gateway's web leg takes that answer and our answer to the phone turns the video down."""
    media = bridge()
    browser = WebRtcLeg(
        WebLegOptions(host_addresses=("127.0.0.1",)), on_rtp=lambda *a: None, on_event=lambda e: None
    )
    try:
        offer = sdp.SessionDescription(
            sdp.Origin("-", "1", 1, "127.0.0.1"), connection=sdp.Connection("127.0.0.1"),
            media=(
                sdp.MediaDescription("audio", 30000, "RTP/AVP", ("0",)),
                sdp.MediaDescription(
                    "video", 30002, "RTP/AVP", ("100",), attributes=(sdp.Attribute("rtpmap", "100 VP8/90000"),)
                ),
            ),
        )  # fmt: skip
        web_offer = sdp.parse(await media.offer_to_web(sdp.write(offer)))
        assert [m.media for m in web_offer.media] == ["audio", "video", "application"]
        answer = await browser.accept_offer(web_offer, [codec_choice.known("PCMU")])
        assert answer.media[1].rejected
        plain = sdp.parse(await media.answer_from_web(sdp.write(answer)))
        assert not plain.media[0].rejected and plain.media[1].rejected and plain.media[1].formats == ("100",)
        assert media.video is not None and not media.video.active and media.video.endpoint is None
    finally:
        await media.close()
        await browser.close()


@pytest.mark.parametrize(("phone_takes", "active"), [("VP8", True), ("H264", False)])
async def test_the_browser_answered_before_the_phone(
    browser: WebRtcLeg, phone_takes: str, active: bool
) -> None:
    """An HTTP API client gets its answer before the SIP side answers (answer_web_first): its video is
    answered with the first codec of our SIP offer, and stays only if the phone takes that one."""
    media = bridge()
    try:
        h264 = sdp.Codec(97, "H264", 90000, fmtp="packetization-mode=1;profile-level-id=42e01f")
        description = await browser.create_offer(
            [codec_choice.known("PCMU")], [sdp.Codec(96, "VP8", 90000), h264]
        )
        plain = sdp.parse(await media.offer_to_sip(sdp.write(description)))
        assert [c.name for c in plain.media[1].codecs][:2] == ["VP8", "H264"]
        web = sdp.parse(await media.answer_web_first())
        assert [c.name for c in web.media[1].codecs if c.name != "rtx"] == ["VP8"]
        taken = next(c for c in plain.media[1].codecs if c.name == phone_takes)
        answer = audio_answer(plain)
        picture = sdp.MediaDescription(
            "video", 30002, "RTP/AVP", (str(taken.payload_type),),
            attributes=(sdp.Attribute("rtpmap", f"{taken.payload_type} {taken.name}/90000"),
                        *((sdp.Attribute("fmtp", f"{taken.payload_type} {taken.fmtp}"),) if taken.fmtp else ())),
        )  # fmt: skip
        again = await media.answer_from_sip(sdp.write(answer.with_media([answer.media[0], picture])))
        assert again == sdp.write(web)  # the browser's answer does not change
        assert media.video is not None and media.video.active is active
        assert (media.video.endpoint is not None) is active
    finally:
        await media.close()


def chromium_offer(order: str) -> str:
    """Chromium's captured audio+video+data channel offer (tests/data/sdp), as captured or with the data
    channel's m-line moved before the video's (as after a renegotiation that added the camera later)."""
    text = samples.text("chromium-offer-audio-video-datachannel")
    if order == "audio-video-application":
        return text
    head, rest = text.split("m=video", 1)
    picture, application = rest.split("m=application", 1)
    return head + "m=application" + application + "m=video" + picture


@pytest.mark.parametrize("order", ["audio-video-application", "audio-application-video"])
async def test_a_browser_offer_with_audio_video_and_a_data_channel(order: str) -> None:
    """Chat and video together: the SIP side is offered audio and video (chat goes as SIP MESSAGE, no
    m-line), and the browser's answer keeps all three m-lines active, bundled, in the browser's order."""
    media = bridge()
    try:
        offered = sdp.parse(chromium_offer(order))
        kinds = [m.media for m in offered.media]
        assert kinds == order.split("-")
        plain = sdp.parse(await media.offer_to_sip(chromium_offer(order)))
        assert [m.media for m in plain.media] == ["audio", "video"]
        vp8 = next(c for c in plain.media[1].codecs if c.name == "VP8")
        picture = sdp.MediaDescription(
            "video", 30002, "RTP/AVP", (str(vp8.payload_type),),
            attributes=(sdp.Attribute("rtpmap", f"{vp8.payload_type} VP8/90000"),),
        )  # fmt: skip
        answer = audio_answer(plain)
        web = sdp.parse(await media.answer_from_sip(sdp.write(answer.with_media([answer.media[0], picture]))))
        assert [m.media for m in web.media] == kinds
        assert [m.mid for m in web.media] == [m.mid for m in offered.media]
        assert not any(m.rejected for m in web.media), sdp.write(web)
        assert set(web.bundle_mids()) == {"0", "1", "2"}
        audio, video, application = (
            next(m for m in web.media if m.media == k) for k in ("audio", "video", "application")
        )
        assert audio.proto == video.proto == "UDP/TLS/RTP/SAVPF"
        assert [c.name for c in video.codecs if c.name != "rtx"] == ["VP8"]
        assert (application.proto, application.get("sctp-port")) == ("UDP/DTLS/SCTP", "5000")
        assert media.video is not None and media.video.active
    finally:
        await media.close()
