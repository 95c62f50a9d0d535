"""RFC 8829 (JSEP) §5.1.3: a WebRTC offer in RTP/SAVPF (with a DTLS fingerprint) is answered in the
profile offered, as old Firefox, Kurento, Asterisk and FreeSWITCH's WebRTC stacks send it; without a
fingerprint (SDES) it is refused with 488 and a reason."""

from __future__ import annotations

import pytest

import sdp
from gateway.media.codecs import codec_choice
from gateway.media.rtp.ports import RtpPortAllocator
from gateway.media.webrtc.web_sdp import prune_offer, restore_answer
from tests.media.bridge_harness import SIP_TONE, WEB_TONE, Call, allocator


@pytest.fixture
def ports() -> RtpPortAllocator:
    return allocator(33000, 33999)


def with_profile(text: str, profile: str) -> str:
    return text.replace("UDP/TLS/RTP/SAVPF", profile)


@pytest.mark.parametrize("profile", ["RTP/SAVPF", "UDP/TLS/RTP/SAVP"])
async def test_an_offer_in_another_dtls_profile_is_answered_in_that_profile(
    ports: RtpPortAllocator, profile: str
) -> None:
    call = Call(ports)
    try:
        await call.phone.start()
        browser_offer = with_profile(await call.web.offer(), profile)
        plain = sdp.parse(await call.bridge.offer_to_sip(browser_offer))
        call.phone.remote = codec_choice.remote_rtp(plain, 0)[0]
        web_answer = await call.bridge.answer_from_sip(call.phone_answer(plain, call.phone))
        assert sdp.parse(web_answer).media[0].proto == profile
        await call.web.accept(with_profile(web_answer, "UDP/TLS/RTP/SAVPF"))  # aiortc's own spelling
        await call.connected()
        await call.play(1.0)
        assert call.web.heard(SIP_TONE, last=0.8) and call.phone.heard(WEB_TONE)
    finally:
        await call.close()


def test_sdes_without_a_fingerprint_is_not_webrtc() -> None:
    offer = sdp.parse(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        "m=audio 40000 RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\n"
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n"
    )
    with pytest.raises(sdp.SdpUnacceptable, match="no WebRTC audio stream"):
        prune_offer(offer)


def test_restore_answer_gives_back_the_offered_profile() -> None:
    fingerprint = "a=fingerprint:sha-256 " + ":".join(["AB"] * 32) + "\r\n"
    offer = sdp.parse(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n"
        + fingerprint
        + "m=video 9 RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:96 VP8/90000\r\n"
        + "m=audio 9 RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:0 PCMU/8000\r\na=mid:a\r\n"
    )  # fmt: skip
    pruned = prune_offer(offer)
    assert pruned.index == 1 and pruned.description.media[0].proto == "UDP/TLS/RTP/SAVPF"
    answer = sdp.parse(
        "v=0\r\no=- 2 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:0 PCMU/8000\r\na=mid:a\r\n"
    )
    restored = restore_answer(pruned, answer)
    assert [(m.port, m.proto) for m in restored.media] == [(0, "RTP/SAVPF"), (9, "RTP/SAVPF")]


@pytest.mark.parametrize("drop", ["a=fingerprint:", "a=ice-ufrag:"])
async def test_a_browser_offer_without_dtls_or_ice_credentials_is_refused_before_the_sip_side(
    ports: RtpPortAllocator, drop: str
) -> None:
    """Issue 10, item 8: such an offer can never connect; it must not cost an INVITE to the PBX."""
    call = Call(ports)
    try:
        offer = "".join(
            line for line in (await call.web.offer()).splitlines(keepends=True) if drop not in line
        )
        with pytest.raises(sdp.SdpUnacceptable, match="no WebRTC audio stream"):
            await call.bridge.offer_to_sip(offer)
        assert call.bridge._sip.endpoint is None  # no RTP port was taken for a SIP offer
    finally:
        await call.close()
