"""An audio call escalated to video and back by the browser's own new offers (issue 19), at the bridge:
the "browser" is aiortc (peers.webpeer.WebPeer with a camera: ``add_video`` then a subsequent offer, as a
page does; ``drop_video`` stops it, port 0), the phone a plain RTP/AVP VP8 video phone
(peers.video_phone.PlainVideoPeer) with a tone peer for its audio.

The browser's offer becomes our re-offer to the SIP side (its video m-line added on a port of its own);
nothing reaches the web leg until the SIP answer: then the browser's offer is taken on the same ICE/DTLS
and its answer gives the video the phone took. Pictures are decoded on both far sides (count, size, the
colour of each camera). Then the browser drops the video: port 0 to the phone, port 0 in its answer, the
audio goes on. A SIP side that refuses leaves everything as it was."""

from __future__ import annotations

import pytest

import sdp
from peers.video_phone import PlainVideoPeer
from tests.media.bridge_harness import SIP_TONE, Call
from tests.media.video.test_video_escalation import (
    audio_call,
    call,
    check_audio_only,
    check_video_both_ways,
    reoffer,
)

__all__ = ["call"]  # the fixture: an aiortc browser with a camera, with and without the fast lane


@pytest.mark.parametrize("who_calls", ["browser", "phone"])
async def test_the_browser_adds_video_then_drops_it(call: Call, who_calls: str) -> None:
    camera = PlainVideoPeer("VP8")
    await camera.start()
    try:
        phone_sdp = await audio_call(call, who_calls)
        call.web.add_video()
        web_offer = await call.web.offer()
        ours = sdp.parse(await call.bridge.reoffer_sip_for_web(web_offer))
        # the SIP side is offered the audio as it was and the browser's video on a port of its own
        assert [m.media for m in ours.media] == ["audio", "video"], sdp.write(ours)
        picture = ours.media[1]
        assert picture.proto in ("RTP/AVP", "RTP/AVPF") and picture.port not in (0, ours.media[0].port)
        assert "VP8" in [c.name for c in picture.codecs]
        assert call.bridge._web._pc.signalingState == "stable"  # the web leg waits for the SIP answer

        phone_video = camera.answer(picture, "127.0.0.1")
        with_video = reoffer(phone_sdp, phone_video)  # the phone's answer: its audio, its VP8
        web_answer = sdp.parse(await call.bridge.answer_web_reoffer(with_video))
        video = next(m for m in web_answer.media if m.media == "video")
        assert video.port != 0 and [c.name for c in video.codecs if c.name != "rtx"] == ["VP8"]
        assert video.mid in web_answer.bundle_mids()
        await call.web.accept(sdp.write(web_answer))
        assert call.bridge.video is not None and call.bridge.video.active
        await check_video_both_ways(call, camera)
        stats = call.bridge.video.stats()
        assert stats.sip_to_web.forwarded >= 20 and stats.web_to_sip.forwarded >= 20, stats

        # The browser stops its camera: port 0 to the phone, port 0 in the answer, the audio goes on.
        ours = sdp.parse(await call.bridge.reoffer_sip_for_web(await call.web.drop_video()))
        assert [m.port == 0 for m in ours.media] == [False, True], sdp.write(ours)
        rejected = sdp.MediaDescription("video", 0, "RTP/AVP", phone_video.formats)
        web_answer = sdp.parse(await call.bridge.answer_web_reoffer(reoffer(phone_sdp, rejected)))
        video = next(m for m in web_answer.media if m.media == "video")
        assert video.port == 0 and video.mid not in web_answer.bundle_mids(), sdp.write(web_answer)
        await call.web.accept(sdp.write(web_answer))
        await check_audio_only(call, camera)
    finally:
        camera.close()


async def test_the_sip_side_refuses_the_video(call: Call) -> None:
    """A 488 (or 491) to our re-INVITE: the new video endpoint closes, the web leg never saw the offer,
    the audio call goes on; the browser offers again (a page rolls back and retries) and this time the
    phone takes the video: pictures both ways."""
    camera = PlainVideoPeer("VP8")
    await camera.start()
    try:
        phone_sdp = await audio_call(call, "browser")
        call.web.add_video()
        await call.bridge.reoffer_sip_for_web(await call.web.offer())
        assert call.bridge.video is not None and call.bridge.video.endpoint is not None
        call.bridge.cancel_sip_reoffer()
        assert call.bridge.video.endpoint is None and not call.bridge.video.active
        call.web.clear()
        await call.play(1.0)
        assert call.web.heard(SIP_TONE)

        ours = sdp.parse(await call.bridge.reoffer_sip_for_web(await call.web.offer()))
        with_video = reoffer(phone_sdp, camera.answer(ours.media[1], "127.0.0.1"))
        await call.web.accept(await call.bridge.answer_web_reoffer(with_video))
        await check_video_both_ways(call, camera)
    finally:
        camera.close()


async def test_the_sip_side_turns_the_video_down(call: Call) -> None:
    """The phone's 2xx has the video at port 0: the browser's answer says port 0 too, audio goes on."""
    phone_sdp = await audio_call(call, "browser")
    call.web.add_video()
    ours = sdp.parse(await call.bridge.reoffer_sip_for_web(await call.web.offer()))
    rejected = sdp.MediaDescription("video", 0, "RTP/AVP", ours.media[1].formats)
    web_answer = sdp.parse(await call.bridge.answer_web_reoffer(reoffer(phone_sdp, rejected)))
    video = next(m for m in web_answer.media if m.media == "video")
    assert video.port == 0, sdp.write(web_answer)
    await call.web.accept(sdp.write(web_answer))
    assert call.bridge.video is not None
    assert not call.bridge.video.active and call.bridge.video.endpoint is None
    call.web.clear()
    await call.play(1.0)
    assert call.web.heard(SIP_TONE)


async def test_an_offer_that_changes_no_video_is_refused(call: Call) -> None:
    """A new offer of the browser that neither adds nor drops video is no escalation: refused (the
    runtime tells the browser `renegotiation_failed`), nothing changes."""
    await audio_call(call, "browser")
    with pytest.raises(sdp.SdpUnacceptable, match="no video change"):
        await call.bridge.reoffer_sip_for_web(await call.web.offer())
    call.web.clear()
    await call.play(1.0)
    assert call.web.heard(SIP_TONE)
