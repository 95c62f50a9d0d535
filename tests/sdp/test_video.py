"""Video m-lines: H.264/VP8/VP9 compatibility, RTCP feedback, repair formats, translation both ways (issue 19).

The offers are captured ones: Chromium 156's audio+video offer and baresip 1.0.0's (vp8/vp9 modules,
fakevideo source) plain RTP/AVP video offer with ``a=rtcp-fb:* nack pli``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

import sdp
from sdp import video
from tests.sdp.samples import DTLS, HOST, ICE, load


def to_plain(offer: sdp.SessionDescription, **options: Any) -> sdp.SessionDescription:
    return sdp.to_plain(offer, address="192.0.2.10", port=44000, codecs=["PCMU", "opus"], **options)


def h264(pt: int, fmtp: str | None, feedback: tuple[str, ...] = ()) -> sdp.Codec:
    return sdp.Codec(pt, "H264", 90000, fmtp=fmtp, rtcp_fb=feedback)


def section(description: sdp.SessionDescription, kind: str) -> sdp.MediaDescription:
    return next(m for m in description.media if m.media == kind)


# ----------------------------------------------------------------------------- compatibility


@pytest.mark.parametrize(
    ("value", "name", "level"),
    [
        ("42e01f", "constrained-baseline", 0x1F),
        ("42001f", "baseline", 0x1F),
        ("4d001f", "main", 0x1F),
        ("4de01f", "constrained-baseline", 0x1F),  # constraint_set0: Baseline decoders take it
        ("58c01f", "constrained-baseline", 0x1F),
        ("640c1f", "constrained-high", 0x1F),
        ("640032", "high", 0x32),
        ("7a001f", "high-422", 0x1F),
        (None, "constrained-baseline", 0x1F),  # absent: as libwebrtc and aiortc read it
    ],
)
def test_h264_profile_of_profile_level_id(value: str | None, name: str, level: int) -> None:
    profile = video.H264Profile.parse(value)
    assert profile is not None and (profile.name, profile.level_idc) == (name, level)


@pytest.mark.parametrize("value", ["42e01", "zz001f", "ff001f", ""])
def test_h264_profile_unreadable_or_unknown(value: str) -> None:
    assert video.H264Profile.parse(value) is None


def test_h264_compatible_needs_same_profile_and_packetization_mode() -> None:
    cb31 = h264(102, "packetization-mode=1;profile-level-id=42e01f")
    assert video.compatible(cb31, h264(99, "profile-level-id=42e02a;packetization-mode=1"))  # level differs
    assert video.compatible(cb31, h264(99, "packetization-mode=1;profile-level-id=4de01f"))  # both CB
    assert not video.compatible(cb31, h264(104, "packetization-mode=0;profile-level-id=42e01f"))
    assert not video.compatible(cb31, h264(104, "packetization-mode=1;profile-level-id=42001f"))  # baseline
    assert not video.compatible(cb31, h264(104, "packetization-mode=1;profile-level-id=640c1f"))
    # no fmtp at all: Constrained Baseline (as libwebrtc reads it), packetization-mode 0 (RFC 6184 §8.1)
    assert video.compatible(h264(34, None), h264(114, "packetization-mode=0;profile-level-id=42e01f"))
    assert not video.compatible(h264(34, None), cb31)
    assert not video.compatible(h264(34, "profile-level-id=nothex"), h264(34, "profile-level-id=nothex"))


def test_vp9_profile_id_and_vp8_and_names() -> None:
    vp9 = sdp.Codec(98, "VP9", 90000, fmtp="profile-id=0")
    assert video.compatible(vp9, sdp.Codec(97, "vp9", 90000))  # absent profile-id is 0
    assert not video.compatible(vp9, sdp.Codec(100, "VP9", 90000, fmtp="profile-id=2"))
    assert video.compatible(sdp.Codec(96, "VP8", 90000, fmtp="max-fs=3600"), sdp.Codec(97, "VP8", 90000))
    assert not video.compatible(sdp.Codec(96, "VP8", 90000), vp9)
    assert not video.compatible(sdp.Codec(96, "VP8", 90000), sdp.Codec(96, "VP8", 48000))


def test_intersect_keeps_offer_order_and_payload_types_and_drops_repair() -> None:
    offered = list(section(load("chromium-offer-audio-video"), "video").codecs)
    available = [h264(126, "profile-level-id=42e01f;packetization-mode=1"), sdp.Codec(100, "VP8", 90000)]
    chosen = video.intersect(offered, available)
    assert [(c.payload_type, c.name) for c in chosen] == [(96, "VP8"), (108, "H264")]
    assert video.intersect(offered, [sdp.Codec(97, "rtx", 90000)]) == []


def test_feedback_expands_the_wildcard_and_filters_per_side() -> None:
    baresip = section(load("baresip-offer-video"), "video")
    assert [c.rtcp_fb for c in video.feedback(baresip)] == [("nack pli",), ("nack pli",)]
    chromium = section(load("chromium-offer-audio-video"), "video").codecs[0]
    assert chromium.rtcp_fb == ("goog-remb", "transport-cc", "ccm fir", "nack", "nack pli")
    assert video.for_sip(chromium).rtcp_fb == ("ccm fir", "nack", "nack pli")
    assert video.for_web(sdp.Codec(96, "VP8", 90000)).rtcp_fb == ("nack pli", "ccm fir")
    assert video.for_web(chromium, ("nack", "goog-remb")).rtcp_fb == ("nack", "nack pli", "ccm fir")


# ---------------------------------------------------------------------- browser -> SIP (to_plain)


def test_to_plain_puts_the_browsers_video_on_its_own_port() -> None:
    offer = load("chromium-offer-audio-video")
    plain = to_plain(offer, video_port=44002)
    audio, vid = plain.media
    assert audio == to_plain(offer).media[0]  # the audio is what it was without video
    assert (vid.media, vid.port, vid.proto) == ("video", 44002, "RTP/AVP")
    assert vid.rtcp == sdp.Rtcp(44003, "192.0.2.10")
    # VP8, the six H.264 and the two VP9: no rtx, red, ulpfec, and AV1 is not in the default list
    assert vid.formats == ("96", "102", "104", "108", "114", "116", "39", "98", "100")
    fmtp = {c.payload_type: c.fmtp for c in vid.codecs}
    assert fmtp[108] == "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
    assert fmtp[100] == "profile-id=2"
    assert all(c.rtcp_fb == ("ccm fir", "nack", "nack pli") for c in vid.codecs)
    for name in ("extmap", "ssrc", "ssrc-group", "mid", "msid", "ice-ufrag", "rtcp-mux", "candidate"):
        assert not vid.has(name), name
    assert not plain.has("group")
    text = sdp.write(plain)
    assert "goog-remb" not in text and "transport-cc" not in text and "rtx/" not in text
    assert sdp.parse(text) == plain


def test_to_plain_carries_bandwidth_imageattr_and_framerate() -> None:
    offer = load("chromium-offer-audio-video")
    extra = [
        sdp.Attribute("imageattr", "* send [x=640,y=480] recv [x=640,y=480]"),
        sdp.Attribute("framerate", "30"),
    ]
    bandwidths = (sdp.Bandwidth("AS", 1000), sdp.Bandwidth("TIAS", 1000000))
    vid = dataclasses.replace(
        offer.media[1], bandwidths=bandwidths, attributes=offer.media[1].attributes + tuple(extra)
    )
    plain = to_plain(offer.with_media([offer.media[0], vid]), video_port=44002, video_proto="RTP/AVPF")
    out = plain.media[1]
    assert out.proto == "RTP/AVPF"
    assert out.bandwidths == bandwidths
    assert out.get("imageattr") == "* send [x=640,y=480] recv [x=640,y=480]" and out.get("framerate") == "30"
    assert "b=TIAS:1000000" in sdp.write(plain)


def test_to_plain_rejects_video_without_a_common_codec_and_audio_goes_on() -> None:
    offer = load("chromium-offer-audio-video")
    plain = to_plain(offer, video_port=44002, video_codecs=["H263"])
    assert plain.media[0].port == 44000
    assert plain.media[1].rejected and plain.media[1].proto == "RTP/AVP"
    assert to_plain(offer).media[1].rejected  # without a video port: audio only, as before


def test_to_plain_video_only_stream_and_a_bad_profile() -> None:
    offer = load("chromium-offer-audio-video")
    video_only = offer.with_media([dataclasses.replace(offer.media[0], port=0), offer.media[1]])
    plain = to_plain(video_only, video_port=44002)
    assert plain.media[0].rejected and plain.media[1].port == 44002
    with pytest.raises(sdp.SdpUnacceptable):
        to_plain(offer, video_port=44002, video_proto="RTP/SAVP")
    with pytest.raises(sdp.SdpUnacceptable):
        to_plain(video_only, video_port=44002, video_codecs=["H263"])


# --------------------------------------------------------------------- SIP -> browser (to_webrtc)


def test_to_webrtc_bundles_a_sip_phones_video() -> None:
    offer = load("baresip-offer-video")
    web = sdp.to_webrtc(offer, ice=ICE, dtls=DTLS, candidates=[HOST], media=("audio", "video"))
    assert web.bundle_mids() == ("0", "1")
    vid = web.media[1]
    assert (vid.port, vid.proto, vid.formats) == (50000, "UDP/TLS/RTP/SAVPF", ("96", "97"))
    assert [c.rtcp_fb for c in vid.codecs] == [("nack pli", "ccm fir")] * 2
    assert [c.fmtp for c in vid.codecs] == ["max-fs=3600", "max-fs=3600"]
    assert "rtcp-fb:*" not in sdp.write(web)
    assert vid.get("framerate") == "15.00" and vid.rtcp_mux and vid.mid == "1"
    audio_only = sdp.to_webrtc(offer, ice=ICE, dtls=DTLS, candidates=[HOST])
    assert audio_only.media[1].rejected and audio_only.bundle_mids() == ("0",)


def test_to_webrtc_rejects_video_without_a_common_codec() -> None:
    offer = load("baresip-offer-video")
    web = sdp.to_webrtc(
        offer, ice=ICE, dtls=DTLS, candidates=[HOST], media=("audio", "video"), video_codecs=["H264"]
    )
    assert not web.media[0].rejected and web.media[1].rejected
    assert web.bundle_mids() == ("0",)


def test_round_trip_browser_offer_sip_answer_browser_answer() -> None:
    """Chromium offers, the SIP phone answers H.264 CB (pm 1) at another level; the browser's answer
    mirrors its mids, keeps the phone's fmtp and gets keyframe feedback."""
    offer = load("chromium-offer-audio-video")
    plain = to_plain(offer, video_port=44002)
    phone = sdp.parse(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\n"
        "m=audio 30000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        "m=video 30002 RTP/AVP 108\r\na=rtpmap:108 H264/90000\r\n"
        "a=fmtp:108 packetization-mode=1;profile-level-id=42e028\r\na=rtcp-fb:* nack pli\r\n"
    )
    assert [c.payload_type for c in video.answered(plain.media[1], phone.media[1])] == [108]
    mids = [m.mid or str(i) for i, m in enumerate(offer.media)]
    web = sdp.to_webrtc(phone, ice=ICE, dtls=DTLS, candidates=[HOST], mids=mids, media=("audio", "video"))
    vid = web.media[1]
    assert vid.formats == ("108",) and vid.mid == "1" and web.bundle_mids() == ("0", "1")
    assert vid.codecs[0].fmtp == "packetization-mode=1;profile-level-id=42e028"
    assert video.answered(offer.media[1], vid) == list(vid.codecs)  # compatible with what Chromium offered


def test_answered_refuses_an_incompatible_answer() -> None:
    offer = section(load("chromium-offer-audio-video"), "video")
    bad = sdp.MediaDescription(
        "video", 30002, "RTP/AVP", ("102", "97"),
        attributes=(
            sdp.Attribute("rtpmap", "102 H264/90000"),
            sdp.Attribute("fmtp", "102 packetization-mode=0;profile-level-id=42001f"),  # 102 is pm 1
            sdp.Attribute("rtpmap", "97 rtx/90000"),
        ),
    )  # fmt: skip
    assert video.answered(offer, bad) == []


def test_answer_section_for_a_sip_phones_offer() -> None:
    """A SIP phone offered video; the browser took VP9 (its answer); our answer to the phone."""
    offer = section(load("baresip-offer-video"), "video")
    browser = [sdp.Codec(97, "VP9", 90000, rtcp_fb=("nack pli", "ccm fir", "goog-remb"))]
    answer = video.answer_section(
        offer, browser, port=44002, address="192.0.2.10", direction=sdp.Direction.SENDRECV
    )
    assert (answer.port, answer.proto, answer.formats) == (44002, "RTP/AVP", ("97",))
    assert answer.codecs[0].fmtp == "max-fs=3600" and answer.codecs[0].rtcp_fb == ("nack pli",)
    assert answer.rtcp == sdp.Rtcp(44003, "192.0.2.10") and answer.get("framerate") == "15.00"
    none = video.answer_section(
        offer, [h264(100, None)], port=44002, address="192.0.2.10", direction=sdp.Direction.SENDRECV
    )
    assert none.rejected and none.formats == offer.formats
