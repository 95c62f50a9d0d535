"""RFC 3264 answers: mirrored m-lines, offer's payload types, telephone-event rates, directions, 488."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import sdp
from tests.sdp.samples import DTLS, HOST, ICE, load

PJSUA2_CODECS = ["PCMU", "PCMA", "G722"]
PLAIN = sdp.PlainTransport("192.0.2.20", 30000)
WEB = sdp.WebRtcTransport(ICE, DTLS, (HOST,))


def test_chromium_offer_against_pjsua2_codecs() -> None:
    result = sdp.answer(load("chromium-offer-audio"), codecs=PJSUA2_CODECS, transport=WEB)
    media = result.media[0]
    assert media.m_line == "audio 50000 UDP/TLS/RTP/SAVPF 9 0 8 126"
    assert media.mid == "0" and result.bundle_mids() == ("0",)
    assert media.setup is sdp.Setup.ACTIVE  # RFC 5763 §5: actpass is answered active
    assert media.rtcp_mux and media.candidates == (HOST,)
    assert sdp.classify(result) is sdp.SdpKind.WEBRTC
    assert sdp.parse(sdp.write(result)) == result


def test_opus_keeps_the_offer_payload_type() -> None:
    media = sdp.answer(load("chromium-offer-audio"), codecs=["opus", "PCMU"], transport=WEB).media[0]
    assert media.m_line == "audio 50000 UDP/TLS/RTP/SAVPF 111 0 110 126"
    assert media.codecs[0] == sdp.Codec(111, "opus", 48000, 2, "minptime=10;useinbandfec=1")
    aiortc = sdp.answer(load("aiortc-offer-audio"), codecs=["opus"], transport=WEB).media[0]
    assert aiortc.m_line == "audio 50000 UDP/TLS/RTP/SAVPF 96"


def test_codec_names_match_case_insensitively_with_rate_and_channels() -> None:
    media = sdp.answer(
        load("chromium-offer-audio"), codecs=["OPUS/48000/2", "pcmu/8000"], transport=WEB
    ).media[0]
    assert media.payload_types == (111, 0, 110, 126)
    with pytest.raises(sdp.SdpUnacceptable):
        sdp.answer(load("chromium-offer-audio"), codecs=["opus/48000/1"], transport=WEB)


def test_answerer_preference() -> None:
    offerer = sdp.answer(load("chromium-offer-audio"), codecs=["PCMA", "PCMU"], transport=WEB)
    answerer = sdp.answer(
        load("chromium-offer-audio"),
        codecs=["PCMA", "PCMU"],
        transport=WEB,
        preference=sdp.Preference.ANSWERER,
    )
    assert offerer.media[0].payload_types == (0, 8, 126)
    assert answerer.media[0].payload_types == (8, 0, 126)


def test_plain_offer_answered_plain() -> None:
    offer = load("pjsua2-offer")
    result = sdp.answer(offer, codecs=PJSUA2_CODECS, transport=PLAIN)
    # our own o= (issue 33): a session id of ours, never the offer's, version 0
    assert result.origin.session_id != offer.origin.session_id and result.origin.session_version == 0
    result = dataclasses.replace(result, origin=sdp.Origin("-", "1", 0, "192.0.2.20"))
    assert sdp.write(result) == (
        "v=0\r\n"
        "o=- 1 0 IN IP4 192.0.2.20\r\n"
        "s=-\r\n"
        "c=IN IP4 192.0.2.20\r\n"
        "t=0 0\r\n"
        "m=audio 30000 RTP/AVP 0 8 9 121\r\n"
        "a=rtcp:30001 IN IP4 192.0.2.20\r\n"
        "a=sendrecv\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:8 PCMA/8000\r\n"
        "a=rtpmap:9 G722/8000\r\n"
        "a=rtpmap:121 telephone-event/8000\r\n"
        "a=fmtp:121 0-16\r\n"
    )


def test_telephone_event_only_at_a_chosen_rate() -> None:
    offer = load("pjsua2-offer")
    speex = sdp.answer(offer, codecs=["speex/16000"], transport=PLAIN).media[0]
    assert speex.payload_types == (96, 120)  # 120 is telephone-event/16000, 121 (8000) and 122 not
    both = sdp.answer(offer, codecs=["speex/16000", "PCMU"], transport=PLAIN).media[0]
    assert both.payload_types == (96, 0, 120, 121)
    none = sdp.answer(offer, codecs=["PCMU"], transport=PLAIN, telephone_event=False).media[0]
    assert none.payload_types == (0,)
    linphone = sdp.answer(load("linphone-offer"), codecs=["G729", "PCMA"], transport=PLAIN).media[0]
    assert linphone.payload_types == (8, 18, 101)


@pytest.mark.parametrize(
    ("offered", "policy", "expected"),
    [
        (sdp.Direction.SENDRECV, sdp.Direction.SENDRECV, sdp.Direction.SENDRECV),
        (sdp.Direction.SENDONLY, sdp.Direction.SENDRECV, sdp.Direction.RECVONLY),
        (sdp.Direction.RECVONLY, sdp.Direction.SENDRECV, sdp.Direction.SENDONLY),
        (sdp.Direction.INACTIVE, sdp.Direction.SENDRECV, sdp.Direction.INACTIVE),
        (sdp.Direction.SENDRECV, sdp.Direction.SENDONLY, sdp.Direction.SENDONLY),
        (sdp.Direction.SENDRECV, sdp.Direction.RECVONLY, sdp.Direction.RECVONLY),
        (sdp.Direction.SENDRECV, sdp.Direction.INACTIVE, sdp.Direction.INACTIVE),
        (sdp.Direction.SENDONLY, sdp.Direction.SENDONLY, sdp.Direction.INACTIVE),
        (sdp.Direction.RECVONLY, sdp.Direction.RECVONLY, sdp.Direction.INACTIVE),
    ],
)
def test_direction_answers(offered: sdp.Direction, policy: sdp.Direction, expected: sdp.Direction) -> None:
    offer = load("sipp-offer")
    offer = dataclasses.replace(offer, media=(offer.media[0].with_direction(offered),))
    result = sdp.answer(offer, codecs=["PCMU"], transport=PLAIN, direction=policy)
    assert result.media[0].direction is expected


def test_hold_offers() -> None:
    assert sdp.answer(load("pjsua2-offer-hold"), codecs=PJSUA2_CODECS, transport=PLAIN).media[
        0
    ].direction is (sdp.Direction.RECVONLY)
    old = dataclasses.replace(load("sipp-offer"), connection=sdp.Connection("0.0.0.0"))
    assert sdp.answer(old, codecs=["PCMU"], transport=PLAIN).media[0].direction is sdp.Direction.RECVONLY


def test_video_rejected_with_same_media_and_proto() -> None:
    offer = load("chromium-offer-audio-video")
    result = sdp.answer(offer, codecs=PJSUA2_CODECS, transport=WEB)
    assert len(result.media) == 2
    video = result.media[1]
    assert (video.media, video.port, video.proto, video.formats) == (
        "video",
        0,
        offer.media[1].proto,
        offer.media[1].formats,
    )
    assert video.mid == "1" and result.bundle_mids() == ("0",)
    assert video.connection == sdp.Connection("0.0.0.0")


def test_datachannel_only_is_unacceptable() -> None:
    with pytest.raises(sdp.SdpUnacceptable) as caught:
        sdp.answer(load("chromium-offer-datachannel"), codecs=PJSUA2_CODECS, transport=WEB)
    assert caught.value.sip_status == 488 and "webrtc-datachannel" in str(caught.value)


def test_no_common_codec_is_unacceptable() -> None:
    with pytest.raises(sdp.SdpUnacceptable, match="m=audio 6000 RTP/AVP 0"):
        sdp.answer(load("sipp-offer"), codecs=["G729", "opus"], transport=PLAIN)


def test_transport_must_match_the_offer_profile() -> None:
    with pytest.raises(sdp.SdpUnacceptable):
        sdp.answer(load("chromium-offer-audio"), codecs=PJSUA2_CODECS, transport=PLAIN)
    with pytest.raises(sdp.SdpUnacceptable):
        sdp.answer(load("pjsua2-offer"), codecs=PJSUA2_CODECS, transport=WEB)
    sdes = load("sipp-offer")
    sdes = dataclasses.replace(
        sdes,
        media=(
            dataclasses.replace(
                sdes.media[0],
                proto="RTP/SAVP",
                attributes=sdes.media[0].attributes
                + (
                    sdp.Attribute(
                        "crypto", "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"
                    ),
                ),
            ),
        ),
    )
    assert sdp.classify(sdes) is sdp.SdpKind.SDES_SRTP
    with pytest.raises(sdp.SdpUnacceptable):
        sdp.answer(sdes, codecs=["PCMU"], transport=PLAIN)


def test_plain_transport_accepts_one_stream() -> None:
    offer = load("sipp-offer")
    twice = dataclasses.replace(offer, media=(offer.media[0], offer.media[0]))
    result = sdp.answer(twice, codecs=["PCMU"], transport=PLAIN)
    assert [m.port for m in result.media] == [30000, 0]


def test_offered_port_zero_stays_zero() -> None:
    offer = load("pjsua2-offer")
    disabled = dataclasses.replace(offer.media[0], port=0)
    result = sdp.answer(
        dataclasses.replace(offer, media=(disabled, offer.media[0])), codecs=["PCMU"], transport=PLAIN
    )
    assert [m.port for m in result.media] == [0, 30000]
    assert result.media[0].m_line == "audio 0 RTP/AVP 96 97 98 99 3 0 8 9 120 121 122"


def test_answer_origin_and_setup() -> None:
    origin = sdp.Origin("gw", "77", 3, "192.0.2.20")
    result = sdp.answer(load("chromium-offer-audio"), codecs=["PCMU"], transport=WEB, origin=origin)
    assert result.origin == origin
    passive = sdp.WebRtcTransport(ICE, dataclasses.replace(DTLS, setup=sdp.Setup.PASSIVE), (HOST,))
    media = sdp.answer(load("chromium-offer-audio"), codecs=["PCMU"], transport=passive).media[0]
    assert media.setup is sdp.Setup.PASSIVE


def test_answer_to_baresip_session_level_webrtc_offer() -> None:
    media = sdp.answer(load("baresip-offer-dtls-ice"), codecs=PJSUA2_CODECS, transport=WEB).media[0]
    assert media.m_line == "audio 50000 UDP/TLS/RTP/SAVPF 9 0 8 101"
    assert media.setup is sdp.Setup.ACTIVE and media.rtcp_mux


def test_plain_transport_validation() -> None:
    with pytest.raises(sdp.SdpParseError, match="70000"):
        sdp.PlainTransport("192.0.2.1", 70000)


def test_trickling_browser_offer_is_not_taken_for_hold() -> None:
    offer = load("chromium-offer-audio")
    audio = dataclasses.replace(
        offer.media[0].without("candidate"), port=9, connection=sdp.Connection("0.0.0.0")
    )
    result = sdp.answer(dataclasses.replace(offer, media=(audio,)), codecs=["PCMU"], transport=WEB)
    assert result.media[0].direction is sdp.Direction.SENDRECV


def test_transport_values_are_normalised_and_checked() -> None:
    transport = sdp.WebRtcTransport(ICE, DTLS, [HOST])  # type: ignore[arg-type]
    assert transport.candidates == (HOST,)
    with pytest.raises(sdp.SdpParseError):
        sdp.WebRtcTransport(ICE, DTLS, ("candidate:1 1 udp 1 192.0.2.1 1 typ host",))  # type: ignore[arg-type]


# Cisco CUCM and snom offer opus with telephone-event/8000 only: a rate-matched choice would answer opus
# with no telephone-event and the phone's DTMF would be lost (RFC 4733 §2.1 says SHOULD, not MUST).
OPUS_WITH_8K_EVENTS = (
    "v=0\r\no=CiscoSystemsCCM-SIP 1 1 IN IP4 192.0.2.50\r\ns=SIP Call\r\nc=IN IP4 192.0.2.50\r\nt=0 0\r\n"
    "m=audio 24580 RTP/AVP 114 0 101\r\n"
    "a=rtpmap:114 opus/48000/2\r\na=fmtp:114 maxplaybackrate=16000;sprop-maxcapturerate=16000\r\n"
    "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
)


def test_opus_answer_keeps_the_only_telephone_event_offered() -> None:
    offer = sdp.parse(OPUS_WITH_8K_EVENTS)
    answer = sdp.answer(offer, codecs=["opus"], transport=sdp.PlainTransport("192.0.2.10", 40000))
    assert [f"{c.name}/{c.clock_rate}" for c in answer.media[0].codecs] == [
        "opus/48000",
        "telephone-event/8000",
    ]


def test_a_rate_matched_telephone_event_is_preferred_when_there_is_one() -> None:
    offer = sdp.parse(OPUS_WITH_8K_EVENTS.replace("a=fmtp:101 0-15\r\n", "a=rtpmap:102 telephone-event/48000\r\n")
                      .replace("114 0 101", "114 0 101 102"))  # fmt: skip
    answer = sdp.answer(offer, codecs=["opus"], transport=sdp.PlainTransport("192.0.2.10", 40000))
    assert [c.payload_type for c in answer.media[0].codecs] == [114, 102]


def test_offer_to_sip_carries_a_telephone_event_for_opus_too() -> None:
    browser = (
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 111 110\r\nc=IN IP4 0.0.0.0\r\n"
        "a=rtpmap:111 opus/48000/2\r\na=rtpmap:110 telephone-event/48000\r\n"
    )
    plain = sdp.to_plain(sdp.parse(browser), address="192.0.2.10", port=40000, codecs=["opus"])
    names = [f"{c.name}/{c.clock_rate}" for c in plain.media[0].codecs]
    assert names == ["opus/48000", "telephone-event/48000"]  # was dropped while opus was kept


FIELD_WEBRTC = ("firefox35-webrtc-offer", "kurento-webrtc-offer", "asterisk13-webrtc-offer", "bria4-offer")


@pytest.mark.parametrize("name", FIELD_WEBRTC)
def test_rtp_savpf_with_a_fingerprint_is_answered_as_dtls_srtp(name: str) -> None:
    """Issue 33: RTP/SAVPF + a=fingerprint (old Firefox, Kurento, Asterisk 13, Bria 4) is DTLS-SRTP
    (RFC 8829 §5.1.3), answered in the profile offered; was "no common codec"."""
    text = (Path(__file__).resolve().parent.parent / "data" / "sdp-field" / f"{name}.sdp").read_text()
    offer = sdp.parse(text)
    result = sdp.answer(offer, codecs=["opus", "PCMU"], transport=WEB)
    audio = result.media[0]
    assert not audio.rejected and audio.proto == "RTP/SAVPF" and audio.fingerprints
    assert all(m.rejected for m in result.media[1:])
    assert result.origin.session_id != offer.origin.session_id


def test_refusals_name_the_real_cause() -> None:
    sdes = load("pjsua2-offer")  # RTP/AVP: not a WebRTC profile
    with pytest.raises(sdp.SdpUnacceptable, match="transport profile") as caught:
        sdp.answer(sdes, codecs=["PCMU"], transport=WEB)
    assert caught.value.warning == 302
    with pytest.raises(sdp.SdpUnacceptable, match="no common codec") as caught:
        sdp.answer(load("chromium-offer-audio"), codecs=["AMR"], transport=WEB)
    assert caught.value.warning == 305
    with pytest.raises(sdp.SdpUnacceptable, match="no active audio") as caught:
        sdp.answer(load("chromium-offer-datachannel"), codecs=["PCMU"], transport=WEB)
    assert caught.value.warning == 304
