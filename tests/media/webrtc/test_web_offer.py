"""Our first offer to a browser, written before aiortc makes it (web_offer.py, issue 64 item 3).

A phone calls a web user: the bridge's ``offer_to_web`` turns each captured SIP offer of tests/data/sdp
into the browser's offer, written ahead; aiortc then makes and gathers its own on the same peer
connection, and the two must be the same text but for the o= line (the ICE credentials, SSRC, CNAME and
msid are the peer connection's, the candidates those of the sockets reserved for each m-line). Then a
real aiortc browser (``WebPeer``) answers an offer aiortc had not made yet, and the call carries the
phone's tone; what cannot be offered ahead (video, ICE servers) goes through aiortc first.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import sdp
from gateway.media.bridge import MediaBridge
from gateway.media.bridge_settings import BridgeSettings, web_certificate
from gateway.media.codecs import codec_choice
from gateway.media.events import IceFailed, MediaEvent
from gateway.media.rtp.dtls_srtp import DtlsCertificates
from gateway.media.rtp.ports import PortRange, RtpPortAllocator
from gateway.media.webrtc.ahead import web_answer
from gateway.media.webrtc.web_leg_state import WebLegState
from gateway.media.webrtc.webrtc_leg import WebRtcLeg
from peers.ports import free_range
from tests.media.bridge_harness import SIP_TONE, Call
from tests.media.rtp.test_rtp_endpoint import until
from tests.media.webrtc.test_webrtc_leg import make_leg

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "sdp"
BROWSERS = ("aiortc-", "chromium-", "firefox-")
SIP_OFFERS = sorted(p for p in SAMPLES.glob("*offer*.sdp") if not p.name.startswith(BROWSERS))
CERTIFICATES = DtlsCertificates()
# the phones' offers a bridge offers on to the browser (baresip's DTLS-SRTP one needs media.sip_srtp)
OFFERED = {
    "baresip-offer-video.sdp",
    "baresip-offer.sdp",
    "linphone-offer.sdp",
    "pjsua2-offer-hold.sdp",
    "pjsua2-offer.sdp",
    "sipp-offer.sdp",
}
PCMU = [codec_choice.known("PCMU"), *codec_choice.WEB_EVENTS]


def allocator() -> RtpPortAllocator:
    start = free_range(16)
    return RtpPortAllocator(PortRange(start, start + 15))


def web_leg_of(bridge: MediaBridge) -> WebRtcLeg:
    leg = bridge._web
    assert isinstance(leg, WebRtcLeg)
    return leg


async def aiortc_made(leg: WebRtcLeg) -> str:
    """aiortc's offer, once the task making it after ours has run."""
    await leg._settled()
    return str(leg._pc.localDescription.sdp)


@pytest.mark.parametrize("red", ["off", "auto"])
@pytest.mark.parametrize("data_channel", [True, False])
async def test_our_offer_is_the_one_aiortc_makes_for_every_sample_sip_offer(
    data_channel: bool, red: str
) -> None:
    offered = set()
    for path in SIP_OFFERS:
        events: list[MediaEvent] = []
        settings = BridgeSettings(
            allocator(), host_addresses=("127.0.0.1",), dtls_certificates=CERTIFICATES,
            data_channel=data_channel, opus_red=red, call_id=path.stem,
        )  # fmt: skip
        bridge = MediaBridge(settings, events.append)
        try:
            try:
                given = sdp.parse(await bridge.offer_to_web(path.read_text()))
            except sdp.SdpError:
                continue  # not an offer the gateway takes from a phone
            offered.add(path.name)
            leg = web_leg_of(bridge)
            ours = leg._offered
            assert ours is not None and leg._pc.localDescription is None, path.name  # given first
            assert [m.media for m in given.media] == ["audio", *(["application"] if data_channel else [])]
            theirs = await aiortc_made(leg)
            assert web_answer.agrees(ours, theirs), (path.name, ours, theirs)
            assert not events and leg.state is WebLegState.NEW, events
        finally:
            await bridge.close()
    assert offered == OFFERED, offered


async def test_a_phone_offered_on_ahead_of_aiortc_is_heard_by_the_browser() -> None:
    call = Call(allocator(), dtls_certificates=CERTIFICATES, fast_lane=None)
    try:
        await call.phone.start()
        offer = await call.bridge.offer_to_web(call.phone_offer())
        leg = web_leg_of(call.bridge)
        assert leg._pc.localDescription is None and leg.local is not None  # aiortc has not made it yet
        assert [c.port for c in sdp.parse(offer).media[0].candidates] == [
            leg.local.media[0].candidates[0].port
        ]
        answer = sdp.parse(await call.bridge.answer_from_web(await call.web.answer(offer)))
        call.phone.remote = codec_choice.remote_rtp(answer, 0)[0]
        await call.connected()
        await call.play(1.0)
        assert call.web.heard(SIP_TONE), "the browser did not hear the phone"
        assert not call.of_type(IceFailed)
    finally:
        await call.close()


async def test_an_offer_aiortc_does_not_agree_with_fails_the_leg_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The safety net: the sockets our offer named are gone before aiortc gathers (here given back by
    hand), aiortc gathers on others; the browser could never reach them, so the leg fails at once."""
    events: list[MediaEvent] = []
    leg = make_leg(events, ports=allocator(), certificate=web_certificate(CERTIFICATES))
    try:
        offer = await leg.create_offer(PCMU)
        (candidate,) = offer.media[0].candidates
        leg.ice_sockets.release()
        await until(lambda: bool(events), timeout=1.0)
        assert leg.state is WebLegState.FAILED and candidate.port not in leg.ice_sockets.ports
        assert events == [IceFailed("the offer given is not the one aiortc made")], events
        assert any("is not aiortc's" in r.message and r.levelname == "WARNING" for r in caplog.records)
    finally:
        await leg.close()


async def test_a_leg_closed_before_aiortc_made_the_offer_closes_cleanly() -> None:
    leg = make_leg([], ports=allocator(), certificate=web_certificate(CERTIFICATES), data_channel=True)
    await leg.create_offer(PCMU)
    assert len(leg.ice_sockets.ports) == 2  # the audio's and the data channel's, reserved
    await leg.close()
    await asyncio.sleep(0)
    assert leg.state is WebLegState.CLOSED and leg.ice_sockets.ports == ()


@pytest.mark.parametrize("shape", ["video", "ice servers", "no certificate", "no range"])
async def test_what_cannot_be_offered_ahead_goes_through_aiortc_first(shape: str) -> None:
    from aiortc import RTCIceServer

    options: dict[str, object] = {"ports": allocator(), "certificate": web_certificate(CERTIFICATES)}
    if shape == "ice servers":
        options["ice_servers"] = (RTCIceServer("stun:127.0.0.1:9"),)
    elif shape == "no certificate":
        del options["certificate"]
    elif shape == "no range":
        del options["ports"]
    leg = make_leg([], **options)
    try:
        if shape == "video":
            leg.enable_video(lambda *fields: None, lambda: None)
        await leg.create_offer(PCMU, [sdp.Codec(96, "VP8", 90000)] if shape == "video" else [])
        assert leg._offered is None and leg._pc.localDescription is not None  # aiortc made it, as before
    finally:
        await leg.close()
