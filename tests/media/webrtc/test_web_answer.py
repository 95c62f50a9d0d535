"""Our answer to a browser's first offer, written before aiortc applies it (web_answer.py, issue 64 item 2).

Every captured offer of tests/data/sdp a web leg takes is answered twice on one peer connection: by
``write_answer`` first, then by aiortc's own three steps; the two must be the same text but for the o=
line (the ICE credentials, SSRC, CNAME and msid are the peer connection's, the candidates its reserved
sockets'). Then a web leg answers a real aiortc peer (``WebPeer``) before aiortc has the offer, and the
call connects; what cannot be answered ahead (a data channel, video) goes through aiortc first.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiortc import RTCSessionDescription

import sdp
from gateway.media.bridge_settings import web_certificate
from gateway.media.codecs import codec_choice
from gateway.media.events import IceFailed, MediaEvent
from gateway.media.rtp.dtls_srtp import DtlsCertificates
from gateway.media.rtp.ports import PortRange, RtpPortAllocator
from gateway.media.webrtc import web_codecs, web_sdp
from gateway.media.webrtc.ahead import web_answer
from gateway.media.webrtc.web_leg_state import WebLegState
from gateway.media.webrtc.webrtc_leg import WebRtcLeg
from peers.ports import free_range
from peers.webpeer import WebPeer
from tests.media.webrtc.test_ice_ports import connected
from tests.media.webrtc.test_webrtc_leg import make_leg, with_data_channel

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "sdp"
OFFERS = sorted(SAMPLES.glob("*offer*.sdp"))
CERTIFICATE = web_certificate(DtlsCertificates())
PREFERENCES = {
    name: [codec_choice.known(name), *codec_choice.WEB_EVENTS] for name in ("opus", "PCMU", "PCMA", "G722")
}
# the samples a web leg answers ahead: not the SIP phones' plain RTP offers, a data channel alone, or
# baresip's DTLS offer without a=mid (aiortc answers it first, as before)
AHEAD = {
    "aiortc-offer-audio.sdp",
    "chromium-offer-audio-pcmu.sdp",
    "chromium-offer-audio-video-datachannel.sdp",
    "chromium-offer-audio-video.sdp",
    "chromium-offer-audio.sdp",
    "firefox-offer-audio-video-datachannel.sdp",
    "firefox-offer-audio.sdp",
    "firefox-offer-ice-restart.sdp",
}


def ports() -> RtpPortAllocator:
    start = free_range(8)
    return RtpPortAllocator(PortRange(start, start + 7))


def leg_for(events: list[MediaEvent], **options: object) -> WebRtcLeg:
    return make_leg(events, ports=ports(), certificate=CERTIFICATE, **options)


@pytest.mark.parametrize("red", ["off", "auto"])
@pytest.mark.parametrize("codec", sorted(PREFERENCES))
async def test_our_answer_is_the_one_aiortc_writes_for_every_sample_offer(codec: str, red: str) -> None:
    answered = set()
    for path in OFFERS:
        try:
            pruned = web_sdp.prune_offer(sdp.parse(path.read_text()))
        except sdp.SdpError:
            continue  # not an offer a web leg takes
        leg = leg_for([], opus_red=red)
        pc, transceiver = leg._pc, leg._transceiver
        try:
            negotiated = web_codecs.negotiated_red(pruned.description, red) is not None
            transceiver.setCodecPreferences(web_codecs.preferences(PREFERENCES[codec], red=negotiated))
            leg.ice_sockets.reserve()
            text = sdp.write(pruned.description)
            ours = web_answer.write_answer(pc, transceiver, text, leg.ice_sockets.reserved())
            if ours is None:
                continue  # none of the preferred codecs: aiortc refuses it too (the fallback's error)
            answered.add(path.name)
            # what aiortc writes for the same offer on the same peer connection, gathered on those sockets
            await pc.setRemoteDescription(RTCSessionDescription(text, "offer"))
            leg.ice_sockets.cover()
            await pc.setLocalDescription(await pc.createAnswer())
            assert web_answer.agrees(ours, pc.localDescription.sdp), (
                path.name,
                ours,
                pc.localDescription.sdp,
            )
        finally:
            await leg.close()
    assert answered <= AHEAD and (codec != "opus" or answered == AHEAD), answered


async def test_the_browser_is_answered_before_aiortc_has_the_offer_and_connects() -> None:
    events: list[MediaEvent] = []
    leg = leg_for(events)
    peer = WebPeer()
    try:
        answer = await leg.accept_offer(sdp.parse(await peer.offer()), PREFERENCES["opus"])
        assert leg._pc.remoteDescription is None and leg.state is WebLegState.NEGOTIATING  # answer first
        (candidate,) = answer.media[0].candidates
        assert candidate.port in leg.ice_sockets.ports
        await peer.accept(sdp.write(answer))
        await connected(events)
        # aiortc applied the offer after, and its answer is the one the browser got
        written = sdp.write(answer)
        assert leg._pc.remoteDescription is not None and leg.local is not None
        assert leg.local.media[0].candidates == answer.media[0].candidates
        assert sdp.write(leg.given_to_browser(leg.local)).split("s=-", 1)[1] == written.split("s=-", 1)[1]
        assert not [e for e in events if isinstance(e, IceFailed)]
    finally:
        await peer.close()
        await leg.close()


async def test_aiortc_takes_the_offer_only_after_whoever_waits_for_the_answer_has_it() -> None:
    """An HTTP request's handler waits on a future the answer is set on (runtime/offers.py): it wakes
    in the next loop iteration, and aiortc's steps (its parse, the transceiver's mid) come after it,
    off the request's path (issue 64 item 2)."""
    leg, peer = leg_for([]), WebPeer()
    answered: asyncio.Future[sdp.SessionDescription] = asyncio.get_running_loop().create_future()
    mids_seen: list[str | None] = []

    async def handler() -> None:
        await answered
        mids_seen.append(leg._transceiver.mid)  # aiortc sets it as it takes the offer

    waiting = asyncio.ensure_future(handler())
    try:
        await asyncio.sleep(0)
        answered.set_result(await leg.accept_offer(sdp.parse(await peer.offer()), PREFERENCES["opus"]))
        await waiting
        assert mids_seen == [None]
        await leg._settled()
        assert leg._transceiver.mid == "0" and leg.state is WebLegState.NEGOTIATING
    finally:
        await peer.close()
        await leg.close()


async def test_candidates_trickled_right_after_the_answer_wait_for_aiortc() -> None:
    events: list[MediaEvent] = []
    leg = leg_for(events)
    peer = WebPeer()
    try:
        offer = sdp.parse(await peer.offer())
        trickled = [c for c in offer.media[0].candidates]
        bare = offer.with_media([offer.media[0].without("candidate")])
        answer = await leg.accept_offer(bare, PREFERENCES["opus"])
        for candidate in trickled:  # before aiortc has the offer: each waits for it, none is lost
            await leg.add_candidate(sdp.IceCandidateInit(candidate, sdp_mid="0", sdp_mline_index=0))
        await peer.accept(sdp.write(answer))
        await connected(events)
    finally:
        await peer.close()
        await leg.close()


async def test_a_leg_closed_before_aiortc_applied_the_offer_closes_cleanly() -> None:
    leg, peer = leg_for([]), WebPeer()
    try:
        await leg.accept_offer(sdp.parse(await peer.offer()), PREFERENCES["opus"])
        await leg.close()
        await asyncio.sleep(0)
        assert leg.state is WebLegState.CLOSED and leg.ice_sockets.ports == ()
    finally:
        await peer.close()


async def test_an_answer_aiortc_does_not_agree_with_fails_the_leg_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The safety net: the socket our answer named is gone before aiortc gathers (here given back by
    hand), aiortc gathers on another; the browser could never reach it, so the leg fails at once."""
    events: list[MediaEvent] = []
    leg, peer = leg_for(events), WebPeer()
    try:
        answer = await leg.accept_offer(sdp.parse(await peer.offer()), PREFERENCES["opus"])
        (candidate,) = answer.media[0].candidates
        leg.ice_sockets.release()
        for _ in range(100):
            if events:
                break
            await asyncio.sleep(0.01)
        assert leg.state is WebLegState.FAILED and leg.ice_sockets.ports != (candidate.port,)
        assert events == [IceFailed("the answer given is not the one aiortc applied")], events
        assert any("is not aiortc's" in r.message and r.levelname == "WARNING" for r in caplog.records)
    finally:
        await peer.close()
        await leg.close()


@pytest.mark.parametrize("shape", ["data channel", "no certificate"])
async def test_what_cannot_be_answered_ahead_goes_through_aiortc_first(shape: str) -> None:
    peer = WebPeer()
    offer = await peer.offer()
    if shape == "data channel":
        leg, offer = leg_for([], data_channel=True), with_data_channel(offer)
    else:
        leg = make_leg([], ports=ports())
    try:
        answer = await leg.accept_offer(sdp.parse(offer), PREFERENCES["opus"])
        assert leg._pc.remoteDescription is not None  # aiortc answered first, as before
        assert len(answer.media) == len(sdp.parse(offer).media)
    finally:
        await peer.close()
        await leg.close()
