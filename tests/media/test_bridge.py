"""The media bridge end to end with real audio: an aiortc browser <-> bridge <-> a plain RTP phone.

Tones differ per direction (1000 Hz browser -> phone, 600 Hz phone -> browser) and are checked with the
Goertzel detector. Pass-through is also checked byte for byte; transcoding by the tones alone.
"""

from __future__ import annotations

import asyncio

import pytest

import sdp
from gateway.media.bridge import BridgeError
from gateway.media.bridge_settings import web_certificate
from gateway.media.errors import PortAllocationError
from gateway.media.events import CodecChosen, Leg, MediaInactive
from gateway.media.rtp.ports import RtpPortAllocator
from gateway.media.webrtc import web_sdp
from gateway.media.webrtc.offer_check import check_web_offer
from tests.media.bridge_harness import SIP_TONE, WEB_TONE, Call, allocator


@pytest.fixture
def ports() -> RtpPortAllocator:
    return allocator()


async def test_browser_calls_pbx_pcmu_passes_through_unchanged(ports: RtpPortAllocator) -> None:
    call = Call(ports)
    try:
        await call.browser_calls()
        await call.connected()
        await call.play(1.0)
        assert call.of_type(CodecChosen) == [CodecChosen("PCMU/8000", "PCMU/8000", transcoding=False)]
        assert call.web.heard(SIP_TONE, last=0.8) and not call.web.heard(WEB_TONE, last=0.8)
        assert call.phone.heard(WEB_TONE) and not call.phone.heard(SIP_TONE)
        # no decoding: every PCMU payload the browser got is one the phone sent, byte for byte
        received = [payload for pt, payload in call.web.payloads if pt == 0]
        assert len(received) >= 40
        assert all(payload in call.phone.sent_payloads for payload in received)
        stats = call.bridge.stats()
        assert not stats.transcoding
        assert stats.web_to_sip.transcoded == 0 and stats.sip_to_web.transcoded == 0
        assert stats.sip_to_web.forwarded >= 45 and stats.sip_to_web.lost == 0
        assert stats.web_to_sip.forwarded >= 45 and stats.web_to_sip.lost == 0
    finally:
        await call.close()


async def test_plain_offer_lists_codecs_sip_in_its_own_order(ports: RtpPortAllocator) -> None:
    """codecs.sip is the operator's priority order (issue 67 item 4), whatever the browser offers."""
    call = Call(ports, web_codecs=("PCMA", "telephone-event"), sip_codecs=("PCMU", "PCMA", "G722"))
    try:
        await call.phone.start()
        plain = sdp.parse(await call.bridge.offer_to_sip(await call.web.offer()))
        names = [c.name for c in plain.media[0].codecs]
        assert names == ["PCMU", "PCMA", "G722", "telephone-event"]
        assert plain.media[0].proto == "RTP/AVP" and not plain.media[0].has("fingerprint")
    finally:
        await call.close()


async def test_opus_browser_and_pcmu_phone_are_transcoded(ports: RtpPortAllocator) -> None:
    call = Call(ports, web_codecs=("opus", "telephone-event"))
    try:
        await call.browser_calls()
        await call.connected()
        await call.play(1.2)
        assert call.of_type(CodecChosen) == [CodecChosen("opus/48000", "PCMU/8000", transcoding=True)]
        assert call.web.heard(SIP_TONE, last=0.8)
        assert call.phone.heard(WEB_TONE)
        stats = call.bridge.stats()
        assert stats.transcoding and stats.web_to_sip.transcoded > 40 and stats.sip_to_web.transcoded > 40
        assert {pt for pt, _ in call.web.payloads} == {96}  # the browser receives Opus (aiortc: PT 96)
        assert {p.payload_type for p in call.phone.packets} == {0}  # the phone receives PCMU
    finally:
        await call.close()


async def test_pbx_calls_browser_passes_through(ports: RtpPortAllocator) -> None:
    call = Call(ports)
    try:
        await call.pbx_calls()
        await call.connected()
        await call.play(1.0)
        assert call.of_type(CodecChosen) == [CodecChosen("PCMU/8000", "PCMU/8000", transcoding=False)]
        assert call.web.heard(SIP_TONE, last=0.8)
        assert call.phone.heard(WEB_TONE)
    finally:
        await call.close()


async def test_pbx_calls_opus_only_browser_with_transcoding(ports: RtpPortAllocator) -> None:
    call = Call(ports, web_codecs=("opus", "telephone-event"))
    try:
        await call.pbx_calls()
        await call.connected()
        await call.play(1.0)
        assert call.of_type(CodecChosen)[-1].transcoding
        assert call.web.heard(SIP_TONE, last=0.8)
        assert call.phone.heard(WEB_TONE)
    finally:
        await call.close()


async def test_twenty_calls_at_once_pass_through(ports: RtpPortAllocator) -> None:
    calls = [Call(ports, call_id=f"c{i}") for i in range(20)]
    try:
        await asyncio.gather(*(c.browser_calls() for c in calls))
        await asyncio.gather(*(c.connected(timeout=10) for c in calls))
        await asyncio.gather(*(c.play(1.0) for c in calls))
        for call in calls:
            assert call.web.heard(SIP_TONE, last=0.6), call.bridge.stats()
            assert call.phone.heard(WEB_TONE), call.bridge.stats()
            assert not call.bridge.stats().transcoding
        assert len({c.bridge_address for c in calls}) == 20
    finally:
        await asyncio.gather(*(c.close() for c in calls))


async def test_dead_phone_raises_inactivity(ports: RtpPortAllocator) -> None:
    call = Call(ports, inactivity_timeout=0.6)
    try:
        await call.browser_calls()
        await call.connected()
        await call.play(0.3)
        assert not call.of_type(MediaInactive)
        await asyncio.sleep(1.0)  # the phone went silent; the browser still sends
        assert call.of_type(MediaInactive) == [MediaInactive(Leg.SIP, 0.6)]
    finally:
        await call.close()


async def test_dead_browser_raises_inactivity(ports: RtpPortAllocator) -> None:
    call = Call(ports, inactivity_timeout=0.6)
    try:
        await call.browser_calls()
        await call.connected()
        call.web.transceiver.sender.replaceTrack(None)  # aiortc stops sending RTP
        await call.play(1.2)  # the phone still sends
        assert call.of_type(MediaInactive) == [MediaInactive(Leg.WEB, 0.6)]
    finally:
        await call.close()


async def test_pcma_on_both_legs_passes_through(ports: RtpPortAllocator) -> None:
    call = Call(ports, web_codecs=("PCMA", "telephone-event"), sip_codec="PCMA", phone_payload_type=8)
    try:
        await call.browser_calls()
        await call.connected()
        await call.play(1.0)
        assert call.of_type(CodecChosen) == [CodecChosen("PCMA/8000", "PCMA/8000", transcoding=False)]
        assert call.web.heard(SIP_TONE, last=0.8) and call.phone.heard(WEB_TONE)
        received = [payload for pt, payload in call.web.payloads if pt == 8]
        assert received and all(payload in call.phone.sent_payloads for payload in received)
    finally:
        await call.close()


async def test_web_answered_first_then_phone_picks_our_first_codec(ports: RtpPortAllocator) -> None:
    """answer_web_first (HTTP API sessions): the browser's answer before the SIP side's, with the first
    codec of our SIP offer; the phone picking it means pass-through, and nothing flows before its answer."""
    call = Call(ports, web_codecs=("opus", "PCMU", "telephone-event"))
    try:
        await call.phone.start()
        offer = sdp.parse(await call.bridge.offer_to_sip(await call.web.offer()))
        web_answer = await call.bridge.answer_web_first()
        assert await call.bridge.answer_web_first() == web_answer  # asked twice: the same answer
        # PCMU, which the browser sends; Opus after it is ours to send the phone in (codecs.g711_to_web)
        assert [c.name for c in sdp.parse(web_answer).media[0].codecs if not c.is_telephone_event] == [
            "PCMU",
            "opus",
        ]
        await call.web.accept(web_answer)
        await call.connected()  # ICE and DTLS up while the INVITE would still ring
        assert call.bridge.state.value == "awaiting-sip-answer" and not call.of_type(CodecChosen)
        call.bridge_address = (offer.connection.address if offer.connection else "", offer.media[0].port)
        call.phone.remote = call.bridge_address
        assert await call.bridge.answer_from_sip(call.phone_answer(offer, call.phone)) == web_answer
        await call.play(1.0)
        assert call.of_type(CodecChosen) == [CodecChosen("PCMU/8000", "PCMU/8000", transcoding=False)]
        assert call.web.heard(SIP_TONE, last=0.8) and call.phone.heard(WEB_TONE)
    finally:
        await call.close()


async def test_web_answered_first_then_phone_picks_another_codec_is_transcoded(
    ports: RtpPortAllocator,
) -> None:
    call = Call(ports, web_codecs=("PCMU", "PCMA", "telephone-event"), sip_codec="PCMA", phone_payload_type=8)
    try:
        await call.phone.start()
        offer = sdp.parse(await call.bridge.offer_to_sip(await call.web.offer()))
        await call.web.accept(await call.bridge.answer_web_first())
        call.phone.remote = (offer.connection.address if offer.connection else "", offer.media[0].port)
        await call.bridge.answer_from_sip(call.phone_answer(offer, call.phone))
        await call.connected()
        await call.play(1.2)
        assert call.of_type(CodecChosen) == [CodecChosen("PCMU/8000", "PCMA/8000", transcoding=True)]
        assert call.web.heard(SIP_TONE, last=0.8) and call.phone.heard(WEB_TONE)
    finally:
        await call.close()


async def test_web_answered_before_our_sip_offer_is_made(ports: RtpPortAllocator) -> None:
    """The HTTP offer API's early answer: take_web_offer leases the SIP leg's ports, the browser is
    answered, and only then does sip_offer open the sockets and write our offer (on those ports, with the
    codec the browser was answered with first); the call then works as any other."""
    call = Call(ports, web_codecs=("opus", "PCMU", "telephone-event"))
    try:
        await call.phone.start()
        held = ports.held
        assert call.bridge.take_web_offer(await call.web.offer())  # no video: the answer need not wait
        # the SIP leg's pair, and the web leg's ICE socket's (issue 36: all media in the range)
        leased, web_pair = sorted(ports.held - held, key=lambda p: p in call.bridge._web.ice_sockets.ports)
        assert call.bridge._web.ice_sockets.ports == (web_pair,)
        assert call.bridge.state.value == "web-offer-taken" and call.bridge._sip.endpoint is None
        with pytest.raises(BridgeError, match="answer_from_sip"):  # no SIP offer out: no SIP answer
            await call.bridge.answer_from_sip("v=0\r\n")
        web_answer = await call.bridge.answer_web_first()
        # PCMU, which the browser sends; Opus after it is ours to send the phone in (codecs.g711_to_web)
        assert [c.name for c in sdp.parse(web_answer).media[0].codecs if not c.is_telephone_event] == [
            "PCMU",
            "opus",
        ]
        offer = sdp.parse(await call.bridge.sip_offer())
        assert call.bridge.state.value == "awaiting-sip-answer" and offer.media[0].port == leased
        assert offer.media[0].codecs[0].name == "PCMU"
        with pytest.raises(BridgeError, match="sip_offer"):
            await call.bridge.sip_offer()
        await call.web.accept(web_answer)
        call.phone.remote = (offer.connection.address if offer.connection else "", leased)
        assert await call.bridge.answer_from_sip(call.phone_answer(offer, call.phone)) == web_answer
        await call.connected()
        await call.play(1.0)
        assert call.web.heard(SIP_TONE, last=0.8) and call.phone.heard(WEB_TONE)
    finally:
        await call.close()
    assert leased not in ports.held and web_pair not in ports.held


async def test_a_gateway_out_of_ports_fails_before_the_browser_is_answered() -> None:
    """The SIP leg's ports and the web leg's ICE pair are leased with the browser's offer (before the
    early answer), and a bridge closed between the two halves gives them back."""
    tight = allocator(38950, 38953)  # two pairs: one call's
    taken = tight.allocate("127.0.0.1")
    call = Call(tight)
    try:
        with pytest.raises(PortAllocationError, match="no free RTP port"):  # the web leg's pair
            call.bridge.take_web_offer(await call.web.offer())
        assert call.bridge.state.value == "idle"
    finally:
        await call.close()
    assert tight.held == {38950}  # the SIP leg's pair came back
    taken.release()
    call = Call(tight)
    try:
        call.bridge.take_web_offer(await call.web.offer())
        assert tight.held == {38950, 38952}
    finally:
        await call.close()
    assert not tight.held


async def test_a_browser_offer_is_pruned_once_from_its_check_to_its_answer(
    ports: RtpPortAllocator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The offer's check (a dial's, issue 32), the bridge taking it and the web leg answering it read one
    pruned offer (web_sdp.prune_offer keeps it by the offer's identity: issue 64): pruned once with a data
    channel allowed too, and the call works."""
    pruned: list[sdp.SessionDescription] = []
    prune = web_sdp._prune

    def counted(offer: sdp.SessionDescription, video: bool, data_channel: bool) -> web_sdp.PrunedOffer:
        pruned.append(offer)
        return prune(offer, video, data_channel)

    monkeypatch.setattr(web_sdp, "_prune", counted)
    call = Call(ports, web_codecs=("opus", "PCMU", "telephone-event"), data_channel=True)
    try:
        await call.phone.start()
        text = await call.web.offer()
        settings = call.settings
        certificate = web_certificate(settings.dtls_certificates)
        await check_web_offer(
            text, settings.web_codecs, video=False, data_channel=True, certificate=certificate
        )
        offer = sdp.parse(await call.bridge.offer_to_sip(text))
        web_answer = await call.bridge.answer_web_first()
        assert pruned == [sdp.parse(text)]
        await call.web.accept(web_answer)
        call.phone.remote = (offer.connection.address if offer.connection else "", offer.media[0].port)
        await call.bridge.answer_from_sip(call.phone_answer(offer, call.phone))
        await call.connected()
        await call.play(1.0)
        assert call.web.heard(SIP_TONE, last=0.8) and call.phone.heard(WEB_TONE)
    finally:
        await call.close()
