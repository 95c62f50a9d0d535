"""Value objects validate and quote bad values; parse errors are 400 and quote the offending line."""

from __future__ import annotations

import dataclasses

import pytest

import sdp
from tests.sdp.samples import text

HEAD = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n"


@pytest.mark.parametrize(
    ("body", "quoted"),
    [
        ("", "empty"),
        ("o=- 1 1 IN IP4 192.0.2.1\r\n", "v=0"),
        ("v=1\r\n", "v=1"),
        ("v=0\r\ns=-\r\n", "missing origin"),
        (HEAD + "x=unknown\r\n", "x=unknown"),
        (HEAD + "o=- 2 2 IN IP4 192.0.2.1\r\n", "o=- 2 2"),
        (HEAD + "c=IN IP7 192.0.2.1\r\n", "c=IN IP7"),
        (HEAD + "c=IN IP4\r\n", "c=IN IP4"),
        (HEAD + "b=AS:lots\r\n", "b=AS:lots"),
        (HEAD.replace("t=0 0", "t=now"), "t=now"),
        (HEAD + "m=audio\r\n", "m=audio"),
        (HEAD + "m=audio 99999 RTP/AVP 0\r\n", "m=audio 99999"),
        (HEAD + "m=audio 4000 RTP/AVP PCMU\r\n", "PCMU"),
        (HEAD + "m=audio 4000 RTP/AVP 200\r\n", "200"),
        (HEAD + "m=audio 4000 RTP/AVP 0\r\nt=0 0\r\n", "t=0 0"),
        (HEAD + "m=audio 4000 RTP/AVP 0\r\nc=IN IP4 1.2.3.4\r\nc=IN IP4 1.2.3.5\r\n", "c=IN IP4 1.2.3.5"),
        (HEAD + "a=\r\n", "a="),
        (HEAD + "a=bad name:1\r\n", "a=bad name:1"),
        (HEAD + "m=audio 4000 RTP/AVP 0\r\na=rtcp:abc\r\n", "a=rtcp:abc"),
        (
            HEAD + "m=audio 4000 RTP/AVP 0\r\na=candidate:1 1 udp 1 192.0.2.1 5000 host\r\n",
            "candidate:1 1 udp 1 192.0.2.1 5000 host",
        ),
        (HEAD + "m=audio 4000 RTP/AVP 0\r\na=candidate:1 1 udp 1 192.0.2.1 5000 typ host raddr\r\n", "raddr"),
        (HEAD + "a=fingerprint:sha-256 AB:CD\r\n", "AB:CD"),
        (HEAD + "a=fingerprint:sha-256\r\n", "a=fingerprint:sha-256"),
        (HEAD + "a=setup:sideways\r\n", "a=setup:sideways"),
        (HEAD + "a=ice-ufrag:ab\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n", "'ab'"),
        (HEAD + "a=ice-ufrag:abcd\r\na=ice-pwd:short\r\n", "'short'"),
        (HEAD + "a=x\rinjected:1\r\n", "injected"),
    ],
)
def test_parse_errors_quote_the_line(body: str, quoted: str) -> None:
    with pytest.raises(sdp.SdpParseError) as caught:
        sdp.parse(body)
    assert caught.value.sip_status == 400
    assert quoted in str(caught.value)


def test_a_line_that_is_not_type_equals_value_is_skipped() -> None:
    """Bria 4 writes ``mid:1`` without ``a=`` (issue 33): the line is skipped, the rest is read."""
    parsed = sdp.parse(HEAD + "hello\r\nm=audio 4000 RTP/AVP 0\r\nmid:1\r\na=sendrecv\r\n")
    assert [str(a) for a in parsed.media[0].attributes] == ["sendrecv"]
    assert parsed.media[0].mid is None


def test_bytes_are_decoded() -> None:
    assert sdp.parse(text("sipp-offer").encode()) == sdp.parse(text("sipp-offer"))
    with pytest.raises(sdp.SdpParseError, match="UTF-8"):
        sdp.parse(b"v=0\r\n\xff")


def test_a_text_read_again_is_parsed_once_and_errors_are_never_remembered() -> None:
    offer = text("chromium-offer-audio")
    first = sdp.parse(offer)
    assert sdp.parse(offer) is first  # immutable: the call's later readings share it
    assert sdp.parse(offer.encode()) is first
    assert sdp.parse(offer.replace("\r\n", "\n")) == first  # another text: parsed again, equal
    for _ in range(2):
        with pytest.raises(sdp.SdpParseError, match="a=setup:sideways"):
            sdp.parse(HEAD + "a=setup:sideways\r\n")
    huge = offer + "a=x-filler:" + "y" * (20 << 10) + "\r\n"  # over 16 KiB: parsed every time
    assert sdp.parse(huge) is not sdp.parse(huge) and sdp.parse(huge) == sdp.parse(huge)


def test_trailing_whitespace_and_blank_lines_are_tolerated() -> None:
    messy = text("sipp-offer").replace("\r\n", " \r\n") + "\r\n\r\n"
    assert sdp.parse(messy) == sdp.parse(text("sipp-offer"))


def test_error_hierarchy() -> None:
    assert issubclass(sdp.SdpParseError, sdp.SdpError) and issubclass(sdp.SdpUnacceptable, sdp.SdpError)
    assert sdp.SdpParseError("x").sip_status == 400 and sdp.SdpUnacceptable("x").sip_status == 488
    assert sdp.SdpError("x", sip_status=415).sip_status == 415
    assert str(sdp.SdpUnacceptable("no codec")) == "no codec"


@pytest.mark.parametrize(
    ("build", "quoted"),
    [
        (lambda: sdp.Codec(128, "PCMU", 8000), "128"),
        (lambda: sdp.Codec(0, "PC MU", 8000), "PC MU"),
        (lambda: sdp.Codec(0, "PCMU", 0), "0"),
        (lambda: sdp.Candidate("1", 0, "udp", 1, "192.0.2.1", 1), "0"),
        (lambda: sdp.Candidate("1", 1, "udp", 1, "192.0.2.1", 70000), "70000"),
        (lambda: sdp.Candidate("1", 1, "udp", 1, "192.0.2.1", 1, tcptype="sideways"), "sideways"),
        (
            lambda: sdp.Candidate("foundation with space", 1, "udp", 1, "192.0.2.1", 1),
            "foundation with space",
        ),
        (lambda: sdp.IceParameters("abc", "abcdefghijklmnopqrstuvwx"), "'abc'"),
        (lambda: sdp.IceParameters("abcd", "abcdefghijklmnopqrstuv!"), "abcdefghijklmnopqrstuv!"),
        (lambda: sdp.Fingerprint("sha-256", "AB:CD"), "AB:CD"),
        (lambda: sdp.Fingerprint("sha-256", "zz"), "zz"),
        (lambda: sdp.DtlsParameters(()), "fingerprint"),
        (lambda: sdp.Attribute("a b"), "a b"),
        (lambda: sdp.Attribute("x", "1\r\n2"), "1\\r\\n2"),
        (lambda: sdp.Connection("192.0.2.1", "IP5"), "IP5"),
        (lambda: sdp.Origin(session_id="x"), "x"),
        (lambda: sdp.Bandwidth("AS", -1), "-1"),
        (lambda: sdp.MediaDescription("audio", 70000, "RTP/AVP"), "70000"),
        (lambda: sdp.MediaDescription("audio", 1, "RTP/AVP", ("x",)), "'x'"),
        (lambda: sdp.CodecSpec.parse("opus/fast"), "opus/fast"),
        (lambda: sdp.TrickleMedia("a b"), "a b"),
        (lambda: sdp.IceCandidateInit(None), "sdpMid"),
    ],
)
def test_value_objects_validate(build: object, quoted: str) -> None:
    with pytest.raises(sdp.SdpParseError) as caught:
        build()  # type: ignore[operator]
    assert quoted in str(caught.value)


def test_value_objects_are_frozen() -> None:
    codec = sdp.Codec(0, "PCMU", 8000)
    with pytest.raises(dataclasses.FrozenInstanceError):
        codec.name = "PCMA"  # type: ignore[misc]


@pytest.mark.parametrize("direction", list(sdp.Direction))
def test_direction_table(direction: sdp.Direction) -> None:
    assert direction.reversed().reversed() is direction
    assert direction.limited_to(sdp.Direction.SENDRECV) is direction
    assert direction.limited_to(sdp.Direction.INACTIVE) is sdp.Direction.INACTIVE
    assert sdp.Direction.of(sends=direction.sends, receives=direction.receives) is direction
    assert not direction.on_hold().receives


def test_setup_answers() -> None:
    assert sdp.Setup.ACTPASS.answer() is sdp.Setup.ACTIVE
    assert sdp.Setup.ACTIVE.answer() is sdp.Setup.PASSIVE
    assert sdp.Setup.PASSIVE.answer() is sdp.Setup.ACTIVE
    assert sdp.Setup.parse(" ACTPASS") is sdp.Setup.ACTPASS


def test_codec_helpers() -> None:
    opus = sdp.Codec(111, "opus", 48000, 2, "minptime=10; useinbandfec=1")
    assert opus.rtpmap == "111 opus/48000/2" and str(sdp.Codec(0, "PCMU", 8000)) == "0 PCMU/8000"
    assert opus.parameters == {"minptime": "10", "useinbandfec": "1"}
    assert sdp.Codec(101, "telephone-event", 8000, fmtp="0-16").parameters == {"0-16": None}
    assert opus.same_format(sdp.Codec(96, "OPUS", 48000, 2)) and not opus.same_format(
        sdp.Codec(96, "opus", 48000)
    )
    assert sdp.STATIC_PAYLOAD_TYPES[9] == ("G722", 8000, 1)
    assert sdp.CodecSpec.parse("opus/48000/2") == sdp.CodecSpec("opus", 48000, 2)


def test_editing_helpers() -> None:
    offer = sdp.parse(text("pjsua2-offer"))
    media = offer.media[0].without("ssrc", "rtcp").with_direction(sdp.Direction.INACTIVE)
    assert not media.has("ssrc") and not media.has("rtcp")
    assert media.direction is sdp.Direction.INACTIVE and media.values("sendrecv") == ()
    assert media.attributes[0].name == "inactive"  # replaced in place
    assert offer.origin.next_version().session_version == offer.origin.session_version + 1
    assert offer.without("X-nat").attributes == ()
    assert offer.with_media([]).media == ()


def test_codecs_and_candidates_are_computed_once_per_value() -> None:
    """A call's setup reads an offer's codecs a dozen times (issue 38): the typed views are kept with
    the (immutable) section; an edit makes a new section that computes its own; equality, hashing and
    repr ignore them."""
    described = (
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8\r\n"
        "c=IN IP4 192.0.2.1\r\na=candidate:1 1 udp 2130706431 192.0.2.1 4000 typ host\r\n"
    )
    section = sdp.parser._parse(described).media[0]
    fresh = sdp.parser._parse(described).media[0]
    assert section.codecs is section.codecs and section.candidates is section.candidates
    assert [c.name for c in section.codecs] == ["PCMU", "PCMA"] and len(section.candidates) == 1
    assert fresh == section and hash(fresh) == hash(section) and repr(fresh) == repr(section)
    edited = dataclasses.replace(section, formats=("8",)).without("candidate")
    assert [c.name for c in edited.codecs] == ["PCMA"] and edited.candidates == ()
    assert [c.name for c in section.codecs] == ["PCMU", "PCMA"]


def test_fingerprints_and_ice_credentials_are_read_once_per_value_at_both_levels() -> None:
    """An offer's fingerprints and ICE credentials are read by its check, its pruning and the HTTP API's
    session (issue 64): kept with the (immutable) value like its codecs; an edited one reads its own."""
    described = (
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\na=ice-ufrag:sess\r\n"
        "a=ice-pwd:sessionpasswordsessionpass\r\na=fingerprint:sha-256 " + ":".join(["AB"] * 32) + "\r\n"
        "m=audio 4000 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 192.0.2.1\r\na=ice-ufrag:medi\r\n"
        "a=ice-pwd:mediapasswordmediapassword\r\na=fingerprint:sha-256 " + ":".join(["01"] * 32) + "\r\n"
    )
    offer = sdp.parser._parse(described)
    section = offer.media[0]
    for level in (offer, section):
        assert level.ice is level.ice and level.fingerprints is level.fingerprints
    assert (offer.ice and offer.ice.ufrag, section.ice and section.ice.ufrag) == ("sess", "medi")
    assert [f.value[:2] for f in offer.fingerprints + section.fingerprints] == ["AB", "01"]
    assert sdp.parser._parse(described) == offer  # equality ignores what was read
    edited = section.without("ice-ufrag", "fingerprint").with_attributes(
        [*section.without("ice-ufrag", "fingerprint").attributes, sdp.Attribute("ice-ufrag", "next")]
    )
    assert edited.ice is not None and edited.ice.ufrag == "next" and edited.fingerprints == ()
    bare = offer.without("ice-ufrag", "fingerprint")
    assert bare.ice is None and bare.fingerprints == () and offer.ice is not None
    dtls = offer.with_media([edited]).dtls_for(0)  # the session's fingerprint now
    assert dtls is not None and dtls.fingerprints == offer.fingerprints
    assert (
        bare.with_media([edited]).dtls_for(0) is None and bare.with_media([edited]).ice_for(0) == edited.ice
    )


def test_a_mid_is_a_token_named_once() -> None:
    """Issue 67 item 19: an offer with an empty a=mid was taken, and aiortc failed on it only when the
    answer was set (after the phone had answered). RFC 5888 §4: a mid is a tag (a token), unique in the session:
    refused at parse (400), naming the line."""
    offer = text("chromium-offer-audio")
    mid = next(line for line in offer.split("\r\n") if line.startswith("a=mid:"))
    for bad in ("a=mid:", "a=mid: ", "a=mid:a b", "a=mid:x\x7f"):
        with pytest.raises(sdp.SdpParseError, match=r"a=mid must be a tag \(RFC 5888 §4\)"):
            sdp.parse(offer.replace(mid, bad))
    video = text("chromium-offer-audio-video")
    mids = [line for line in video.split("\r\n") if line.startswith("a=mid:")]
    with pytest.raises(sdp.SdpParseError, match=rf"{mids[0]} names two media sections"):
        sdp.parse(video.replace(mids[1], mids[0]).replace("a=group:BUNDLE", "a=x-group:BUNDLE"))
