"""Property tests: write/parse keep the meaning of generated descriptions; any input raises only SdpError."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sdp
from tests.conftest import examples
from tests.sdp.samples import NAMES, text

_TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.+!#$%&'*^`{|}~"
tokens = st.text(_TOKEN_CHARS, min_size=1, max_size=12)
values = st.text(st.characters(blacklist_characters="\r\n\0", blacklist_categories=["Cs"]), max_size=30).map(
    str.rstrip
)
ice_chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"
addresses = st.one_of(
    st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str), st.uuids().map(lambda u: f"{u}.local")
)

candidates = st.builds(
    sdp.Candidate,
    foundation=st.text(ice_chars, min_size=1, max_size=32),
    component=st.integers(1, 256),
    transport=st.sampled_from(["udp", "UDP", "tcp"]),
    priority=st.integers(0, 2**32 - 1),
    address=addresses,
    port=st.integers(0, 65535),
    type=st.sampled_from(["host", "srflx", "prflx", "relay"]),
    related_address=st.none() | st.ip_addresses(v=4).map(str),
    related_port=st.none() | st.integers(0, 65535),
    tcptype=st.none() | st.sampled_from(["active", "passive", "so"]),
    extensions=st.lists(
        st.tuples(
            st.sampled_from(["generation", "network-id", "ufrag", "x-ext"]),
            st.text(ice_chars, min_size=1, max_size=8),
        ),
        max_size=3,
        unique_by=lambda kv: kv[0],
    ).map(tuple),
)


@st.composite
def codecs(draw: st.DrawFn) -> list[sdp.Codec]:
    pts = draw(st.lists(st.integers(0, 127), min_size=1, max_size=6, unique=True))
    result = []
    for pt in pts:
        name = draw(
            st.sampled_from(["PCMU", "PCMA", "G722", "opus", "telephone-event", "speex", "X-Codec.1"])
        )
        rate = draw(st.sampled_from([8000, 16000, 48000, 90000]))
        channels = draw(st.sampled_from([1, 2]))
        fmtp = draw(st.none() | st.sampled_from(["0-16", "minptime=10;useinbandfec=1", "mode=30", "apt=96"]))
        result.append(sdp.Codec(pt, name, rate, channels, fmtp))
    return result


generic_attributes = st.builds(
    sdp.Attribute,
    name=tokens.filter(
        lambda n: (
            n
            not in {
                "rtpmap",
                "fmtp",
                "rtcp-fb",
                "candidate",
                "rtcp",
                "ptime",
                "fingerprint",
                "setup",
                "ice-ufrag",
                "ice-pwd",
                "group",
                "mid",
                "ice-options",
            }
        )
    ),
    value=st.none() | values,
)


@st.composite
def media_sections(draw: st.DrawFn) -> sdp.MediaDescription:
    codec_list = draw(codecs())
    attributes: list[sdp.Attribute] = []
    for codec in codec_list:
        attributes.append(sdp.Attribute("rtpmap", codec.rtpmap))
        if codec.fmtp is not None:
            attributes.append(sdp.Attribute("fmtp", f"{codec.payload_type} {codec.fmtp}"))
    attributes += [
        sdp.Attribute("candidate", c.to_sdp().removeprefix("candidate:"))
        for c in draw(st.lists(candidates, max_size=3))
    ]
    attributes += draw(st.lists(generic_attributes, max_size=4))
    attributes = draw(st.permutations(attributes))
    if draw(st.booleans()):
        attributes.append(sdp.Attribute(draw(st.sampled_from(sdp.Direction)).value))
    return sdp.MediaDescription(
        media=draw(st.sampled_from(["audio", "video"])),
        port=draw(st.integers(0, 65535)),
        proto=draw(st.sampled_from(["RTP/AVP", "UDP/TLS/RTP/SAVPF", "RTP/SAVP"])),
        formats=tuple(str(c.payload_type) for c in codec_list),
        connection=draw(
            st.none() | addresses.filter(lambda a: not a.endswith(".local")).map(sdp.Connection.for_address)
        ),
        bandwidths=tuple(
            draw(
                st.lists(
                    st.builds(sdp.Bandwidth, st.sampled_from(["AS", "TIAS", "X-YZ"]), st.integers(0, 10**6)),
                    max_size=2,
                )
            )
        ),
        attributes=tuple(attributes),
    )


descriptions = st.builds(
    sdp.SessionDescription,
    origin=st.builds(
        sdp.Origin,
        username=tokens,
        session_id=st.integers(0, 2**64).map(str),
        session_version=st.integers(0, 2**63),
        address=st.ip_addresses(v=4).map(str),
    ),
    name=values.filter(bool),
    connection=st.none() | st.ip_addresses(v=4).map(lambda a: sdp.Connection(str(a))),
    attributes=st.lists(generic_attributes, max_size=4).map(tuple),
    media=st.lists(media_sections(), max_size=3).map(tuple),
)


@settings(max_examples=examples(200), suppress_health_check=[HealthCheck.too_slow])
@given(descriptions)
def test_parse_write_round_trip(description: sdp.SessionDescription) -> None:
    written = sdp.write(description)
    assert written.endswith("\r\n") and "\n" not in written.replace("\r\n", "")
    assert sdp.parse(written) == description
    assert sdp.write(sdp.parse(written)) == written


@settings(max_examples=examples(200))
@given(candidates)
def test_candidate_round_trip(candidate: sdp.Candidate) -> None:
    assert sdp.Candidate.parse(candidate.to_sdp()) == candidate
    init = sdp.candidate_from_json(json.loads(json.dumps(sdp.candidate_to_json(candidate, mid="0", index=0))))
    assert init.candidate == candidate


def _only_sdp_errors(data: str | bytes) -> None:
    try:
        description = sdp.parse(data)
    except sdp.SdpError as exc:
        assert exc.sip_status == 400 and str(exc)
        return
    sdp.write(description)
    sdp.classify(description)


@settings(max_examples=examples(300))
@given(st.text(max_size=400))
def test_any_text_raises_only_sdp_errors(data: str) -> None:
    _only_sdp_errors(data)


@settings(max_examples=examples(200))
@given(st.binary(max_size=400))
def test_any_bytes_raise_only_sdp_errors(data: bytes) -> None:
    _only_sdp_errors(data)


line_texts = st.text(st.sampled_from("vosctmab=:/ 0123456789aeiprRTPAVPUDLS-*.\t"), max_size=40)


@settings(max_examples=examples(400), suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(NAMES), st.data())
def test_mutated_samples_raise_only_sdp_errors(name: str, data: st.DataObject) -> None:
    lines = text(name).split("\r\n")
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(lines) - 1))
        action = data.draw(st.sampled_from(["replace", "truncate", "insert", "delete", "tail"]))
        if action == "replace":
            lines[index] = data.draw(line_texts)
        elif action == "truncate":
            lines[index] = lines[index][: data.draw(st.integers(0, len(lines[index])))]
        elif action == "insert":
            lines.insert(index, lines[index][:2] + data.draw(line_texts))
        elif action == "delete" and len(lines) > 1:
            del lines[index]
        else:
            lines[index] = lines[index] + data.draw(line_texts)
    mutated = "\r\n".join(lines)
    try:
        description = sdp.parse(mutated)
    except sdp.SdpError:
        return
    assert sdp.parse(sdp.write(description)) == description
    _translations_raise_only_sdp_errors(description)


def _translations_raise_only_sdp_errors(description: sdp.SessionDescription) -> None:
    from tests.sdp.samples import DTLS, HOST, ICE, SIP_CODECS

    calls: list[Callable[[], sdp.SessionDescription]] = [
        lambda: sdp.to_plain(description, address="192.0.2.10", port=40000, codecs=SIP_CODECS),
        lambda: sdp.to_webrtc(description, ice=ICE, dtls=DTLS, candidates=[HOST]),
        lambda: sdp.answer(description, codecs=SIP_CODECS, transport=sdp.PlainTransport("192.0.2.10", 40000)),
        lambda: sdp.answer(description, codecs=SIP_CODECS, transport=sdp.WebRtcTransport(ICE, DTLS, (HOST,))),
    ]
    for call in calls:
        try:
            result = call()
        except sdp.SdpError:
            continue
        assert sdp.parse(sdp.write(result)) == result


@settings(max_examples=examples(300))
@given(st.text(max_size=300))
def test_any_sdpfrag_raises_only_sdp_errors(data: str) -> None:
    try:
        fragment = sdp.decode_sdpfrag(data)
    except sdp.SdpError:
        return
    assert sdp.decode_sdpfrag(sdp.encode_sdpfrag(fragment)) == fragment


@settings(max_examples=examples(300))
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(
                st.sampled_from(["candidate", "sdpMid", "sdpMLineIndex", "usernameFragment", "x"]),
                inner,
                max_size=4,
            )
        ),
        max_leaves=8,
    )
)
def test_any_json_candidate_raises_only_sdp_errors(data: object) -> None:
    with contextlib.suppress(sdp.SdpError):
        sdp.candidate_from_json(data)
