"""WebRTC -> plain (for the SIP leg) and plain -> WebRTC (for the web leg), on the real samples."""

from __future__ import annotations

import dataclasses

import pytest

import sdp
from sdp._edit import WEBRTC_ONLY_ATTRIBUTES
from tests.sdp.samples import DTLS, FINGERPRINT, HOST, ICE, SIP_CODECS, load

ADDRESS, PORT = "203.0.113.5", 40000


def plain(name: str, codecs: list[str] = SIP_CODECS, **kwargs: object) -> sdp.SessionDescription:
    return sdp.to_plain(load(name), address=ADDRESS, port=PORT, codecs=codecs, **kwargs)  # type: ignore[arg-type]


def all_attribute_names(description: sdp.SessionDescription) -> set[str]:
    return {a.name for a in description.attributes} | {
        a.name for m in description.media for a in m.attributes
    }


# --- WebRTC -> plain ---------------------------------------------------------------------------------


def test_chromium_offer_to_plain_exact_text() -> None:
    result = plain("chromium-offer-audio")
    assert sdp.write(result) == (
        "v=0\r\n"
        "o=- 7736580442132231234 2 IN IP4 127.0.0.1\r\n"
        "s=-\r\n"
        "c=IN IP4 203.0.113.5\r\n"
        "t=0 0\r\n"
        "m=audio 40000 RTP/AVP 111 9 0 8 126 110\r\n"
        "a=rtcp:40001 IN IP4 203.0.113.5\r\n"
        "a=sendrecv\r\n"
        "a=rtcp-xr:rcvr-rtt=all\r\n"
        "a=rtpmap:111 opus/48000/2\r\n"
        "a=fmtp:111 minptime=10;useinbandfec=1\r\n"
        "a=rtpmap:9 G722/8000\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:8 PCMA/8000\r\n"
        "a=rtpmap:126 telephone-event/8000\r\n"
        "a=fmtp:126 0-16\r\n"
        "a=rtpmap:110 telephone-event/48000\r\n"  # beside opus: DTMF whichever codec the PBX picks
        "a=fmtp:110 0-16\r\n"
    )
    assert sdp.classify(result) is sdp.SdpKind.PLAIN_RTP


def test_chromium_offer_to_plain_without_opus_keeps_offerer_order() -> None:
    result = plain("chromium-offer-audio", ["PCMA", "PCMU", "G722"])
    assert result.media[0].m_line == "audio 40000 RTP/AVP 9 0 8 126"
    assert [c.name for c in result.media[0].codecs] == ["G722", "PCMU", "PCMA", "telephone-event"]


def test_no_webrtc_attribute_survives() -> None:
    for name in (
        "chromium-offer-audio",
        "chromium-offer-audio-video",
        "aiortc-offer-audio",
        "baresip-offer-dtls-ice",
        "firefox-offer-audio",
    ):
        result = plain(name)
        assert not all_attribute_names(result) & WEBRTC_ONLY_ATTRIBUTES, name
        assert all(m.proto == "RTP/AVP" for m in result.media)
        assert all(m.connection is None for m in result.media)
        assert result.connection == sdp.Connection(ADDRESS)


def test_firefox_offer_to_plain() -> None:
    """Firefox's a=rtcp (its own port and address, beside rtcp-mux) gives way to the SIP leg's; its
    payload types, opus fmtp and telephone-event range go through as offered."""
    result = plain("firefox-offer-audio")
    audio = result.media[0]
    assert audio.m_line == "audio 40000 RTP/AVP 109 9 0 8 101"
    assert audio.rtcp == sdp.Rtcp(PORT + 1, ADDRESS) and not audio.rtcp_mux
    assert [(c.payload_type, c.name, c.fmtp) for c in audio.codecs] == [
        (109, "opus", "maxplaybackrate=48000;stereo=1;useinbandfec=1"),
        (9, "G722", None),
        (0, "PCMU", None),
        (8, "PCMA", None),
        (101, "telephone-event", "0-15"),
    ]
    assert not audio.candidates and audio.get("ssrc") is None and audio.mid is None


def test_chromium_pcmu_only_offer() -> None:
    result = plain("chromium-offer-audio-pcmu")
    assert result.media[0].m_line == "audio 40000 RTP/AVP 0 126"
    assert result.media[0].codecs[1] == sdp.Codec(126, "telephone-event", 8000, fmtp="0-16")


def test_telephone_event_fmtp_is_kept_when_given() -> None:
    result = plain("baresip-offer-dtls-ice")
    assert result.media[0].m_line == "audio 40000 RTP/AVP 96 9 0 8 101"
    assert result.media[0].codecs[-1].fmtp == "0-15"
    assert result.media[0].values("ptime") == ("20",) and result.media[0].values("minptime") == ("20",)
    assert result.get("tool") == "baresip 1.0.0"
    assert result.media[0].get("label") == "1"


def test_no_telephone_event_when_none_offered() -> None:
    result = plain("aiortc-offer-audio")
    assert result.media[0].m_line == "audio 40000 RTP/AVP 96 9 0 8"


def test_video_kept_rejected_in_place() -> None:
    result = plain("chromium-offer-audio-video")
    assert len(result.media) == 2
    video = result.media[1]
    assert (video.media, video.port, video.proto, video.attributes) == ("video", 0, "RTP/AVP", ())
    assert video.formats == load("chromium-offer-audio-video").media[1].formats


def test_datachannel_line_kept_rejected_in_place() -> None:
    audio, data = load("chromium-offer-audio"), load("chromium-offer-datachannel")
    combined = dataclasses.replace(audio, media=(data.media[0], audio.media[0]))
    result = sdp.to_plain(combined, address=ADDRESS, port=PORT, codecs=SIP_CODECS)
    assert [m.m_line for m in result.media] == [
        "application 0 UDP/DTLS/SCTP webrtc-datachannel",
        "audio 40000 RTP/AVP 111 9 0 8 126 110",
    ]


def test_datachannel_only_offer_is_unacceptable() -> None:
    with pytest.raises(sdp.SdpUnacceptable) as caught:
        plain("chromium-offer-datachannel")
    assert caught.value.sip_status == 488
    assert "m=application 39850 UDP/DTLS/SCTP webrtc-datachannel" in str(caught.value)


def test_no_allowed_codec_is_unacceptable() -> None:
    with pytest.raises(sdp.SdpUnacceptable, match="G729") as caught:
        plain("chromium-offer-audio", ["G729"])
    assert caught.value.sip_status == 488
    assert "m=audio 49344 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126" in str(caught.value)


def test_origin_given_or_kept() -> None:
    origin = sdp.Origin("gateway", "42", 1, ADDRESS)
    assert plain("chromium-offer-audio", origin=origin).origin == origin
    assert plain("chromium-offer-audio").origin == load("chromium-offer-audio").origin


def test_direction_kept_and_rfc2543_hold_translated() -> None:
    offer = load("chromium-offer-audio")
    held = dataclasses.replace(offer, media=(offer.media[0].with_direction(sdp.Direction.SENDONLY),))
    assert (
        sdp.to_plain(held, address=ADDRESS, port=PORT, codecs=SIP_CODECS).media[0].direction
        is sdp.Direction.SENDONLY
    )
    # A plain description on RFC 2543 hold (no ICE): c=0.0.0.0 becomes an explicit direction.
    old_hold = dataclasses.replace(load("sipp-offer"), connection=sdp.Connection("0.0.0.0"))
    result = sdp.to_plain(old_hold, address=ADDRESS, port=PORT, codecs=SIP_CODECS)
    assert result.media[0].direction is sdp.Direction.SENDONLY
    assert result.connection == sdp.Connection(ADDRESS)


def test_trickling_browser_offer_with_zero_address_is_not_hold() -> None:
    offer = load("chromium-offer-audio")
    audio = offer.media[0].without("candidate")
    trickling = dataclasses.replace(
        offer, media=(dataclasses.replace(audio, port=9, connection=sdp.Connection("0.0.0.0")),)
    )
    assert trickling.effective_direction(0) is sdp.Direction.SENDRECV
    result = sdp.to_plain(trickling, address=ADDRESS, port=PORT, codecs=SIP_CODECS)
    assert result.media[0].direction is sdp.Direction.SENDRECV and result.media[0].port == PORT


def test_invalid_plain_address_or_port() -> None:
    with pytest.raises(sdp.SdpParseError, match="70000"):
        sdp.to_plain(load("chromium-offer-audio"), address=ADDRESS, port=70000, codecs=SIP_CODECS)
    with pytest.raises(sdp.SdpParseError, match="not an address"):
        sdp.to_plain(load("chromium-offer-audio"), address="not an address", port=PORT, codecs=SIP_CODECS)


def test_rtcp_attribute_optional() -> None:
    result = plain("chromium-offer-audio", rtcp=False)
    assert not result.media[0].has("rtcp")
    assert plain("baresip-offer-dtls-ice").media[0].rtcp == sdp.Rtcp(PORT + 1, ADDRESS)  # added where absent


def test_plain_offer_through_to_plain_is_readdressed() -> None:
    result = plain("pjsua2-offer")
    assert result.media[0].m_line == "audio 40000 RTP/AVP 0 8 9 121"
    assert result.media[0].rtcp == sdp.Rtcp(40001, ADDRESS)
    assert result.media[0].bandwidths == (sdp.Bandwidth("TIAS", 64000),)


def test_ipv6_address() -> None:
    result = sdp.to_plain(load("chromium-offer-audio"), address="2001:db8::5", port=PORT, codecs=["PCMU"])
    assert result.connection == sdp.Connection("2001:db8::5", "IP6")
    assert result.media[0].rtcp == sdp.Rtcp(PORT + 1, "2001:db8::5")
    assert "a=rtcp:40001 IN IP6 2001:db8::5\r\n" in sdp.write(result)


# --- plain -> WebRTC ---------------------------------------------------------------------------------


def webrtc(name: str, **kwargs: object) -> sdp.SessionDescription:
    return sdp.to_webrtc(load(name), ice=ICE, dtls=DTLS, candidates=[HOST], **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name", ["pjsua2-offer", "sipp-offer", "baresip-offer", "linphone-offer", "pjsua2-answer"]
)
def test_plain_samples_to_webrtc(name: str) -> None:
    original = load(name)
    result = webrtc(name, end_of_candidates=True)
    assert sdp.classify(result) is sdp.SdpKind.WEBRTC
    media = result.media[0]
    assert media.proto == "UDP/TLS/RTP/SAVPF" and (media.port, media.mid) == (50000, "0")
    assert media.connection == sdp.Connection("192.0.2.10") and result.connection is None
    assert result.bundle_mids() == ("0",)
    assert media.ice == ICE.__class__(ICE.ufrag, ICE.pwd, ("trickle",))
    assert media.fingerprints == (FINGERPRINT,) and media.setup is sdp.Setup.ACTPASS
    assert media.rtcp_mux and media.rtcp == sdp.Rtcp(50000, "192.0.2.10")
    assert media.candidates == (HOST,) and media.end_of_candidates
    assert [c.payload_type for c in media.codecs] == [c.payload_type for c in original.media[0].codecs]
    assert media.direction is original.direction_for(0)
    assert not media.has("ssrc")
    assert sdp.parse(sdp.write(result)) == result


def test_static_payload_types_get_rtpmap_lines() -> None:
    media = webrtc("linphone-offer").media[0]
    assert "0 PCMU/8000" in media.values("rtpmap") and "18 G729/8000" in media.values("rtpmap")
    assert media.values("rtcp-fb") == ("* trr-int 5000", "* ccm tmmbr")


def test_trickle_and_end_of_candidates_optional() -> None:
    media = sdp.to_webrtc(load("sipp-offer"), ice=ICE, dtls=DTLS, trickle=False).media[0]
    assert not media.has("ice-options") and not media.end_of_candidates
    assert (media.port, media.connection) == (
        9,
        sdp.Connection("0.0.0.0"),
    )  # no candidate yet (RFC 8829 §5.2.1)


def test_codec_filter_on_the_web_side() -> None:
    media = webrtc("pjsua2-offer", codecs=["PCMU", "PCMA"]).media[0]
    assert media.m_line == "audio 50000 UDP/TLS/RTP/SAVPF 0 8 121"


@pytest.mark.parametrize(
    ("name", "expected"),
    [("pjsua2-offer-hold", sdp.Direction.SENDONLY), ("pjsua2-answer-hold", sdp.Direction.RECVONLY)],
)
def test_hold_samples_keep_their_direction(name: str, expected: sdp.Direction) -> None:
    assert webrtc(name).media[0].direction is expected


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        (sdp.Direction.SENDRECV, sdp.Direction.SENDONLY),
        (sdp.Direction.RECVONLY, sdp.Direction.INACTIVE),
        (sdp.Direction.SENDONLY, sdp.Direction.SENDONLY),
        (sdp.Direction.INACTIVE, sdp.Direction.INACTIVE),
    ],
)
def test_rfc2543_hold_becomes_a_direction(declared: sdp.Direction, expected: sdp.Direction) -> None:
    offer = load("sipp-offer")
    held = dataclasses.replace(
        offer, connection=sdp.Connection("0.0.0.0"), media=(offer.media[0].with_direction(declared),)
    )
    result = sdp.to_webrtc(held, ice=ICE, dtls=DTLS, candidates=[HOST])
    assert result.media[0].direction is expected
    assert result.media[0].connection == sdp.Connection("192.0.2.10")


def test_rejected_lines_stay_rejected_and_out_of_bundle() -> None:
    offer = load("pjsua2-offer")
    video = sdp.MediaDescription(
        "video", 0, "RTP/AVP", ("96",), attributes=(sdp.Attribute("rtpmap", "96 H264/90000"),)
    )
    extra = dataclasses.replace(offer, media=(video, offer.media[0], dataclasses.replace(video, port=5000)))
    result = sdp.to_webrtc(extra, ice=ICE, dtls=DTLS, candidates=[HOST])
    assert [(m.media, m.port, m.mid) for m in result.media] == [
        ("video", 0, "0"),
        ("audio", 50000, "1"),
        ("video", 0, "2"),
    ]
    assert result.bundle_mids() == ("1",)
    assert result.media[0].proto == "UDP/TLS/RTP/SAVPF" and not result.media[0].has("ice-ufrag")


def test_mids_mirror_an_offer() -> None:
    active = dataclasses.replace(DTLS, setup=sdp.Setup.ACTIVE)
    result = sdp.to_webrtc(load("pjsua2-answer"), ice=ICE, dtls=active, candidates=[HOST], mids=["audio"])
    assert result.media[0].mid == "audio" and result.bundle_mids() == ("audio",)
    assert result.media[0].setup is sdp.Setup.ACTIVE


def test_session_level_lines_kept_and_bundle_first() -> None:
    result = webrtc("pjsua2-offer")
    assert [str(a) for a in result.attributes] == ["group:BUNDLE 0", "X-nat:0"]
    assert result.bandwidths == (sdp.Bandwidth("AS", 84),) and result.name == "pjmedia"


def test_ipv6_and_mdns_candidates() -> None:
    v6 = sdp.Candidate("2", 1, "udp", 2130706430, "2001:db8::10", 50002)
    mdns = sdp.Candidate("3", 1, "udp", 2130706431, "0b6d2f1c-3b2f-4f6e-9d55-1c2e3f4a5b6c.local", 50004)
    result = sdp.to_webrtc(load("sipp-offer"), ice=ICE, dtls=DTLS, candidates=[mdns, v6])
    media = result.media[0]
    assert media.connection == sdp.Connection("2001:db8::10", "IP6") and media.port == 50002
    assert media.candidates == (mdns, v6)
    assert "a=rtcp:50002 IN IP6 2001:db8::10\r\n" in sdp.write(result)


def test_no_usable_stream_to_webrtc_is_unacceptable() -> None:
    with pytest.raises(sdp.SdpUnacceptable):
        sdp.to_webrtc(load("sipp-offer"), ice=ICE, dtls=DTLS, codecs=["opus"])


def test_round_trip_through_both_translations_keeps_codecs() -> None:
    there = webrtc("baresip-offer")
    back = sdp.to_plain(there, address=ADDRESS, port=PORT, codecs=SIP_CODECS)
    assert [c.rtpmap for c in back.media[0].codecs] == [
        c.rtpmap for c in load("baresip-offer").media[0].codecs
    ]


# The same audio offered twice, RTP/SAVP with a=crypto first and RTP/AVP second (best-effort SRTP by
# capability negotiation, as SBCs and Cisco CUBE send it; RFC 8643 discusses it as the thing OSRTP
# replaces), and a second plain audio stream after them.
SAME_AUDIO_TWICE = (
    "v=0\r\no=sbc 1 1 IN IP4 192.0.2.40\r\ns=-\r\nc=IN IP4 192.0.2.40\r\nt=0 0\r\n"
    "m=audio 40000 RTP/SAVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n"
    "m=audio 40002 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    "m=audio 40004 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"
)


def test_to_webrtc_keeps_one_audio_stream_the_plain_one() -> None:
    result = sdp.to_webrtc(sdp.parse(SAME_AUDIO_TWICE), ice=ICE, dtls=DTLS, candidates=[HOST])
    assert result.media[0].port == 0 and result.media[2].port == 0  # rejected, still there
    assert result.media[1].port != 0 and [c.name for c in result.media[1].codecs] == [
        "PCMU",
        "telephone-event",
    ]
    assert result.get("group") == "BUNDLE 1"  # only the kept stream is bundled
    assert len(result.media) == 3
