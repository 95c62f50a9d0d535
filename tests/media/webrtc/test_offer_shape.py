"""An offer's shape (gateway/media/webrtc/offer_shape.py) and the offer check's reuse of aiortc's verdicts.

Two offers of one client differ only in per-call values, so they share a shape and the second skips the
throwaway aiortc peer connection; a value out of its well-formed range keeps its line, so its offer gets
the full check. The fuzz test (test_offer_fuzz.py) runs hundreds of mutants of the same offers through
the check with the verdicts remembered, and finds none that passes and then fails after dialling.
"""

from __future__ import annotations

import pytest
from aiortc import RTCPeerConnection

import sdp
from gateway.media.webrtc import offer_check
from gateway.media.webrtc.offer_check import check_web_offer
from gateway.media.webrtc.offer_shape import shape
from tests.media.webrtc.offer_fuzz import WEB_CODECS
from tests.sdp.samples import text


async def _aiortc_offer() -> str:
    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("audio", direction="sendrecv")
        await pc.setLocalDescription(await pc.createOffer())  # gathers host candidates on loopback too
        return pc.localDescription.sdp
    finally:
        await pc.close()


async def test_two_offers_of_one_client_share_a_shape() -> None:
    first, second = await _aiortc_offer(), await _aiortc_offer()
    assert first != second  # new credentials, fingerprint, ports, SSRC, msid
    assert shape(first) == shape(second)
    assert "a=ice-ufrag:UFRAG" in shape(first) and "typ host" in shape(first)


def test_per_call_values_of_a_chromium_offer_are_fixed() -> None:
    offer = text("chromium-offer-audio")
    other = (
        offer.replace("7736580442132231234", "1234")
        .replace("a=ice-ufrag:PRwu", "a=ice-ufrag:Ab+/")
        .replace("49344", "50002")
        .replace("3405854572", "77")
        .replace("1045697302", "99")
        .replace("11:7B:27", "FF:00:AA")
    )
    assert other != offer and shape(other) == shape(offer)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("49344 typ host", "65536 typ host"),  # no such port
        ("127.0.0.1 49344", "127.0.0.256 49344"),  # no such address
        ("typ host generation", "typ hostile generation"),
        ("a=ice-ufrag:PRwu", "a=ice-ufrag:é"),
        ("a=ice-pwd:QGPzNJUBiA5/2k4/0J3DKQBq", "a=ice-pwd:short"),
        ("sha-256 11:7B", "sha-256 11:7b"),
        ("a=ssrc:1045697302 cname", "a=ssrc:99999999999 cname"),
        ("a=fmtp:111 minptime=10", "a=fmtp:111 minptime=20"),  # not a per-call value at all
    ],
)
def test_a_value_out_of_range_makes_a_new_shape(old: str, new: str) -> None:
    offer = text("chromium-offer-audio")
    assert old in offer
    assert shape(offer.replace(old, new)) != shape(offer)


async def test_the_check_asks_aiortc_once_per_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    answers = offer_check._aiortc_answers

    async def counted(*args: object) -> None:
        calls.append("aiortc")
        await answers(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(offer_check, "_aiortc_answers", counted)
    monkeypatch.setattr(offer_check, "_taken", type(offer_check._taken)())
    # made first: the check teaches aiortc telephone-event, which its later offers would then carry
    first, second, third, offer = [await _aiortc_offer() for _ in range(4)]
    await check_web_offer(first, WEB_CODECS)
    await check_web_offer(second, WEB_CODECS)
    assert calls == ["aiortc"]
    await check_web_offer(third, ("PCMU",))  # other codecs allowed: another verdict
    assert calls == ["aiortc", "aiortc"]
    # our own checks still run on an offer of a known shape
    with pytest.raises(sdp.SdpError, match="a=setup"):
        await check_web_offer(offer.replace("a=setup:actpass", "a=setup:holdconn"), WEB_CODECS)


async def test_a_refused_offer_is_not_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(offer_check, "_taken", type(offer_check._taken)())
    offer = text("chromium-offer-audio").replace("a=rtcp-mux\r\n", "a=rtcp-mux\r\na=ssrc:1 cname\r\n")
    for _ in range(2):
        with pytest.raises(sdp.SdpError):
            await check_web_offer(offer, WEB_CODECS)
    assert not offer_check._taken
