"""Whether an offer from the SIP side can be bridged, and why not (sdp/acceptance.py): offers modelled on
what fax machines/ATAs (T.38), video endpoints, SDES-SRTP phones (Cisco, Yealink with SRTP on) and
WebRTC-capable PBXs send. The reason names the real cause: profile, media type or codec."""

from __future__ import annotations

import pytest

import sdp
from sdp.acceptance import (
    WARN_INCOMPATIBLE_ADDRESS,
    WARN_INCOMPATIBLE_FORMAT,
    WARN_INCOMPATIBLE_PROTOCOL,
    WARN_MEDIA_TYPE,
)

CODECS = ("PCMU", "PCMA", "G722", "opus")
HEAD = "v=0\r\no=pbx 1 1 IN IP4 192.0.2.30\r\ns=-\r\nc=IN IP4 192.0.2.30\r\nt=0 0\r\n"

T38_ONLY = HEAD + (
    "m=image 40000 udptl t38\r\n"
    "a=T38FaxVersion:0\r\na=T38MaxBitRate:14400\r\na=T38FaxRateManagement:transferredTCF\r\n"
    "a=T38FaxUdpEC:t38UDPRedundancy\r\n"
)
VIDEO_ONLY = HEAD + "m=video 40002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
SDES = HEAD + (
    "m=audio 40004 RTP/SAVP 0 8 101\r\n"
    "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:32\r\n"
)
WEBRTC_FROM_SIP = HEAD + (
    "m=audio 40006 UDP/TLS/RTP/SAVPF 111 0\r\n"
    "a=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n"
    "a=fingerprint:sha-256 " + ":".join(["AB"] * 32) + "\r\na=setup:actpass\r\na=rtcp-mux\r\n"
)
G729_ONLY = (
    HEAD + "m=audio 40008 RTP/AVP 18 101\r\na=rtpmap:18 G729/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
)
T38_AND_AUDIO = HEAD + "m=audio 40010 RTP/AVP 0\r\nm=image 40012 udptl t38\r\n"
REJECTED_AUDIO_THEN_AUDIO = HEAD + "m=audio 0 RTP/SAVP 0\r\nm=audio 40014 RTP/AVP 8\r\n"


@pytest.mark.parametrize(
    ("offer", "warning", "words", "not_words"),
    [
        (T38_ONLY, WARN_MEDIA_TYPE, ["no audio stream", "image udptl"], ["codec"]),
        (VIDEO_ONLY, WARN_MEDIA_TYPE, ["no audio stream", "video RTP/AVP"], ["codec"]),
        (SDES, WARN_INCOMPATIBLE_PROTOCOL, ["RTP/SAVP", "SDES-SRTP"], ["codec"]),
        (WEBRTC_FROM_SIP, WARN_INCOMPATIBLE_PROTOCOL, ["UDP/TLS/RTP/SAVPF", "DTLS-SRTP"], ["codec"]),
        (
            G729_ONLY,
            WARN_INCOMPATIBLE_FORMAT,
            ["no common audio codec", "G729/8000", "PCMU"],
            ["telephone-event"],
        ),
    ],
)
def test_unbridgeable_offers_say_why(
    offer: str, warning: int, words: list[str], not_words: list[str]
) -> None:
    with pytest.raises(sdp.SdpUnacceptable) as caught:
        sdp.check_audio_offer(sdp.parse(offer), CODECS)
    assert caught.value.sip_status == 488 and caught.value.warning == warning
    assert all(w in caught.value.message for w in words), caught.value.message
    assert not any(w in caught.value.message for w in not_words), caught.value.message


@pytest.mark.parametrize("offer", [T38_AND_AUDIO, REJECTED_AUDIO_THEN_AUDIO])
def test_bridgeable_offers_pass(offer: str) -> None:
    sdp.check_audio_offer(sdp.parse(offer), CODECS)  # the first active audio m-line can be bridged


def test_the_allowed_codecs_decide() -> None:
    with pytest.raises(sdp.SdpUnacceptable, match="offered PCMA/8000"):
        sdp.check_audio_offer(sdp.parse(REJECTED_AUDIO_THEN_AUDIO), ("PCMU",))


IPV6 = (
    "v=0\r\no=phone 1 1 IN IP6 2001:db8::30\r\ns=-\r\nc=IN IP6 2001:db8::30\r\nt=0 0\r\n"
    "m=audio 40016 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


def test_an_address_family_the_gateway_does_not_use_is_refused_not_one_way() -> None:
    with pytest.raises(sdp.SdpUnacceptable) as caught:
        sdp.check_audio_offer(sdp.parse(IPV6), CODECS, families=("IP4",))
    assert caught.value.warning == WARN_INCOMPATIBLE_ADDRESS and "IP6 (2001:db8::30)" in caught.value.message
    sdp.check_audio_offer(sdp.parse(IPV6), CODECS, families=("IP6",))
    sdp.check_audio_offer(
        sdp.parse(IPV6.replace("c=IN IP6 2001:db8::30", "c=IN IP4 0.0.0.0")), CODECS, ("IP4",)
    )


def test_the_first_bridgeable_audio_line_is_taken_and_the_first_ones_problem_said_when_none_is() -> None:
    head = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    g729 = "m=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n"
    srtp = "m=audio 4002 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\r\n"
    pcmu = "m=audio 4004 RTP/AVP 0\r\n"
    video = "m=video 4006 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
    assert sdp.check_audio_offer(sdp.parse(head + video + g729 + srtp + pcmu), ["PCMU"]) == 3
    assert sdp.check_audio_offer(sdp.parse(head + srtp + pcmu), ["PCMU"]) == 1  # OSRTP (RFC 8643)
    with pytest.raises(sdp.SdpUnacceptable, match="G729") as refused:
        sdp.check_audio_offer(sdp.parse(head + g729 + srtp), ["PCMU"])
    assert refused.value.warning == 305
