"""Every description the gateway gives a browser asks for Opus in-band FEC (issue 35): aiortc writes no
Opus fmtp, so the answers and offers of a real bridge (an aiortc browser, a plain RTP phone) are checked as
the browser receives them; usedtx=1 only when media.opus_usedtx says so."""

from __future__ import annotations

import sdp
from gateway.media.rtp.ports import RtpPortAllocator
from tests.media.bridge_harness import Call, allocator


def opus_fmtp(text: str) -> dict[str, str | None]:
    (section,) = [m for m in sdp.parse(text).media if m.media == "audio"]
    (opus,) = [c for c in section.codecs if c.name.lower() == "opus"]
    return dict(opus.parameters)


def ports() -> RtpPortAllocator:
    return allocator(38000, 38999)


async def test_the_answer_to_a_browsers_offer_asks_for_inband_fec() -> None:
    call = Call(ports(), fast_lane=None, call_id="fmtp-answer", web_codecs=("opus",))  # transcoded to PCMU
    answers: list[str] = []
    accept = call.web.accept

    async def keep(answer: str) -> None:
        answers.append(answer)
        await accept(answer)

    call.web.accept = keep  # type: ignore[method-assign]
    try:
        await call.browser_calls()
        await call.connected()
        (answer,) = answers
        assert opus_fmtp(answer).get("useinbandfec") == "1", answer
        assert "usedtx" not in opus_fmtp(answer)
    finally:
        await call.close()


async def test_the_offer_to_a_browser_asks_for_inband_fec_and_dtx_when_configured() -> None:
    call = Call(ports(), fast_lane=None, call_id="fmtp-offer", sip_codec="opus", opus_usedtx=True)
    try:
        await call.phone.start()
        offer = await call.bridge.offer_to_web(call.phone_offer())
        assert opus_fmtp(offer).get("useinbandfec") == "1", offer
        assert opus_fmtp(offer).get("usedtx") == "1", offer
    finally:
        await call.close()
