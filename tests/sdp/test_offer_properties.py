"""Property test: for any offer a real system could send (built from RFC 8866's grammar with the odd
parts real systems add: unknown attributes, unusable rtpmaps, several or rejected m-lines, T.38,
SRTP profiles, IPv6, hold), the gateway's SDP functions answer or raise the package's own error with
a SIP status, never another exception."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sdp
from tests.conftest import examples
from tests.sdp.samples import DTLS, HOST, ICE, SIP_CODECS

STATIC = ["0", "8", "9", "18", "3", "13", "31", "34"]
DYNAMIC = [str(pt) for pt in (96, 97, 98, 100, 101, 110, 111, 126, 127)]
RTPMAPS = [
    "PCMU/8000", "PCMA/8000", "G722/8000", "opus/48000/2", "telephone-event/8000", "telephone-event/48000",
    "iLBC", "H224/0", "LPC", "G729/8000", "speex/16000", "H264/90000", "VP8/90000", "CN/8000", "x/y/z",
    "AMR-WB/16000/1", "red/48000/2", "opus/48000/x", "telephone-event",
]  # fmt: skip
ATTRIBUTES = [
    "sendrecv", "sendonly", "recvonly", "inactive", "ptime:20", "ptime:30", "maxptime:40", "rtcp:40001",
    "rtcp-mux", "fmtp:101 0-15", "fmtp:111 minptime=10;useinbandfec=1", "fmtp:98 mode=30", "fmtp:x y",
    "rtcp-fb:111 transport-cc", "rtcp-fb:* nack", "rtcp-fb:0", "x-unknown:whatever", "T38FaxVersion:0",
    "crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
    "fingerprint:sha-256 " + ":".join(["AB"] * 32), "setup:actpass", "mid:0", "silenceSupp:off - - - -",
]  # fmt: skip


@st.composite
def media_sections(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["audio", "audio", "audio", "video", "image", "application"]))
    port = draw(st.sampled_from([0, 4000, 40000, 65534]))
    if kind == "image":
        proto, formats = "udptl", ["t38"]
    elif kind == "application" and draw(st.booleans()):
        proto, formats = "UDP/DTLS/SCTP", ["webrtc-datachannel"]
    else:
        proto = draw(st.sampled_from(["RTP/AVP", "RTP/AVPF", "RTP/SAVP", "RTP/SAVPF", "UDP/TLS/RTP/SAVPF"]))
        formats = draw(st.lists(st.sampled_from(STATIC + DYNAMIC), min_size=1, max_size=6, unique=True))
    lines = [f"m={kind} {port} {proto} {' '.join(formats)}"]
    if draw(st.booleans()):
        lines.append(
            draw(st.sampled_from(["c=IN IP4 192.0.2.7", "c=IN IP6 2001:db8::7", "c=IN IP4 0.0.0.0"]))
        )
    for fmt in formats:
        if fmt.isdigit() and draw(st.booleans()):
            lines.append(f"a=rtpmap:{fmt} {draw(st.sampled_from(RTPMAPS))}")
    lines += [f"a={a}" for a in draw(st.lists(st.sampled_from(ATTRIBUTES), max_size=5))]
    return "\r\n".join(lines)


@st.composite
def offers(draw: st.DrawFn) -> str:
    family, address = draw(
        st.sampled_from([("IP4", "192.0.2.5"), ("IP6", "2001:db8::5"), ("IP4", "0.0.0.0")])
    )
    head = [
        "v=0",
        f"o=phone {draw(st.integers(0, 2**40))} 1 IN {family} {address}",
        "s=-",
        f"c=IN {family} {address}",
        "t=0 0",
    ]
    head += [f"a={a}" for a in draw(st.lists(st.sampled_from(ATTRIBUTES[:4] + ["x-session:1"]), max_size=2))]
    media = draw(st.lists(media_sections(), min_size=0, max_size=4))
    return "\r\n".join(head + media) + "\r\n"


def must_answer_or_refuse(call: object) -> None:
    try:
        call()  # type: ignore[operator]
    except sdp.SdpError as exc:
        assert exc.sip_status in (400, 488), exc


@settings(max_examples=examples(400), suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(offers())
def test_any_real_world_offer_is_answered_or_refused_with_a_sip_status(offer: str) -> None:
    try:
        description = sdp.parse(offer)
    except sdp.SdpError as exc:
        assert exc.sip_status == 400, exc
        return
    plain = sdp.PlainTransport("192.0.2.10", 40000)
    web = sdp.WebRtcTransport(ICE, DTLS, (HOST,))
    for call in (
        lambda: sdp.check_audio_offer(description, SIP_CODECS),
        lambda: sdp.write(sdp.answer(description, codecs=SIP_CODECS, transport=plain)),
        lambda: sdp.write(sdp.answer(description, codecs=SIP_CODECS, transport=web)),
        lambda: sdp.write(sdp.to_plain(description, address="192.0.2.10", port=40000, codecs=SIP_CODECS)),
        lambda: sdp.write(sdp.to_webrtc(description, ice=ICE, dtls=DTLS, candidates=[HOST])),
        lambda: sdp.classify(description),
    ):
        must_answer_or_refuse(call)
