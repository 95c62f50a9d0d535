"""The bridge tells the browser what band a transcoded call keeps (RFC 7587 maxplaybackrate): an aiortc
browser, a plain RTP phone, both call directions; media flows with the hints (the transcoded tone is heard)."""

from __future__ import annotations

import sdp
from gateway.media.webrtc.web_sdp import audio_section
from tests.media.bridge_harness import SIP_TONE, WEB_TONE, Call, allocator


def opus_parameters(description: str) -> dict[str, str | None] | None:
    section = audio_section(sdp.parse(description))[1]
    opus = next((c for c in section.codecs if c.name.lower() == "opus"), None)
    return opus.parameters if opus is not None else None


async def browser_calls(call: Call) -> str:
    """As ``Call.browser_calls``; the browser's answer."""
    await call.phone.start()
    offer = sdp.parse(await call.bridge.offer_to_sip(await call.web.offer()))
    call.phone.remote = (offer.connection.address if offer.connection else "", offer.media[0].port)
    web_answer = await call.bridge.answer_from_sip(call.phone_answer(offer, call.phone))
    await call.web.accept(web_answer)
    return web_answer


async def test_a_browser_call_transcoded_to_pcmu_is_answered_with_8_khz_hints() -> None:
    call = Call(allocator(), web_codecs=("opus",), sip_codec="PCMU")
    try:
        parameters = opus_parameters(await browser_calls(call))
        assert parameters is not None
        assert parameters["maxplaybackrate"] == "8000" and parameters["sprop-maxcapturerate"] == "8000"
        await call.connected()
        await call.play(1.5)
        assert call.phone.heard(WEB_TONE) and call.web.heard(SIP_TONE)
        # the browser's hold and resume re-offers are answered with the same hints (else it widens again)
        for direction in ("sendonly", "sendrecv"):
            call.web.transceiver.direction = direction
            answer = await call.bridge.update_from_web(await call.web.offer())
            assert (opus_parameters(answer) or {}).get("maxplaybackrate") == "8000", answer
            await call.web.accept(answer)
        call.phone.pcm = type(call.phone.pcm)("h")
        await call.play(1.0)
        assert call.phone.heard(WEB_TONE)
    finally:
        await call.close()


async def test_no_hint_when_the_phone_takes_opus() -> None:
    call = Call(allocator(), web_codecs=("opus",), sip_codec="opus")
    try:
        answer = await browser_calls(call)
        parameters = opus_parameters(answer) or {}
        assert "maxplaybackrate" not in parameters, answer
    finally:
        await call.close()


async def test_a_browser_passing_pcmu_through_gets_opus_second_with_the_phones_band() -> None:
    """The browser sends the phone's PCMU (first in our answer); the Opus after it is ours to send the
    phone's audio in (codecs.g711_to_web), and were the browser to send Opus it would become PCMU: 8 kHz."""
    call = Call(allocator(), web_codecs=("PCMU", "opus"), sip_codec="PCMU")
    try:
        answer = await browser_calls(call)
        names = [c.name for c in sdp.parse(answer).media[0].codecs if not c.is_telephone_event]
        assert names == ["PCMU", "opus"], answer
        assert (opus_parameters(answer) or {}).get("maxplaybackrate") == "8000", answer
    finally:
        await call.close()


async def test_a_pbx_call_offers_the_browser_the_phones_band() -> None:
    for sip_codec, rate in (("PCMU", "8000"), ("G722", "16000")):
        call = Call(allocator(), web_codecs=("opus",), sip_codec=sip_codec)
        try:
            await call.phone.start()
            web_offer = await call.bridge.offer_to_web(call.phone_offer())
            parameters = opus_parameters(web_offer)
            assert parameters is not None and parameters["maxplaybackrate"] == rate, web_offer
            await call.bridge.answer_from_web(await call.web.answer(web_offer))
            await call.connected()
        finally:
            await call.close()


async def test_an_answer_before_the_sip_side_is_hinted_when_it_can_only_be_transcoded() -> None:
    """An API client's answer comes before the SIP side's (answer_web_first): hinted when none of the
    codecs the SIP side may answer with is Opus, not when one is."""
    for sip_codecs, hinted in ((("PCMU", "PCMA"), True), (("PCMU", "opus"), False)):
        call = Call(allocator(), web_codecs=("opus",), sip_codecs=sip_codecs)
        try:
            await call.phone.start()
            offer = sdp.parse(await call.bridge.offer_to_sip(await call.web.offer()))
            web_answer = await call.bridge.answer_web_first()
            parameters = opus_parameters(web_answer) or {}
            assert (parameters.get("maxplaybackrate") == "8000") is hinted, (sip_codecs, web_answer)
            await call.web.accept(web_answer)
            call.phone.remote = (offer.connection.address if offer.connection else "", offer.media[0].port)
            await call.bridge.answer_from_sip(call.phone_answer(offer, call.phone))
            await call.connected()
        finally:
            await call.close()
