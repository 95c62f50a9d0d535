"""Liberal in what we accept (RFC 3264 §5.1, RFC 8866 §5): an unusable rtpmap, fmtp or rtcp-fb line costs
its payload format (or that one parameter), never the description. Offers built from what real systems
send: an iLBC rtpmap without a clock rate (X-Lite/Bria, older Polycom firmware), Polycom's H.224
far-end camera control with a zero rate on a rejected m-line, RFC 4475 §3.1.1.13's ``31 LPC``."""

from __future__ import annotations

import pytest

import sdp

HEAD = "v=0\r\no=phone 1 1 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\n"

ILBC_WITHOUT_RATE = HEAD + (
    "m=audio 49170 RTP/AVP 0 98 101\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:98 iLBC\r\n"
    "a=fmtp:98 mode=30\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-15\r\n"
)
H224_ON_A_REJECTED_LINE = HEAD + (
    "m=audio 49170 RTP/AVP 8 0\r\nm=application 0 RTP/AVP 100\r\na=rtpmap:100 H224/0\r\n"
)
LPC_VIDEO = HEAD + ("m=audio 49170 RTP/AVP 0\r\nm=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n")
ODD_PARAMETERS = HEAD + (
    "m=audio 49170 RTP/AVP 96 0\r\n"
    "a=rtpmap:96 opus/48000/x\r\n"
    "a=fmtp:x y\r\n"
    "a=rtcp-fb:0\r\n"
    "a=rtcp-fb:* nack\r\n"
    "a=rtpmap:97 PCMA/0\r\n"
)


def names(media: sdp.MediaDescription) -> list[str]:
    return [f"{c.payload_type} {c.name}/{c.clock_rate}" for c in media.codecs]


def test_an_unusable_rtpmap_drops_only_its_format() -> None:
    offer = sdp.parse(ILBC_WITHOUT_RATE)
    assert names(offer.media[0]) == ["0 PCMU/8000", "101 telephone-event/8000"]
    answer = sdp.answer(offer, codecs=["PCMU"], transport=sdp.PlainTransport("192.0.2.10", 40000))
    written = sdp.write(answer)
    assert "m=audio 40000 RTP/AVP 0 101" in written
    assert "iLBC" not in written  # never answered with a format we could not read


def test_a_rejected_line_with_a_zero_rate_does_not_fail_the_call() -> None:
    offer = sdp.parse(H224_ON_A_REJECTED_LINE)
    assert offer.media[1].codecs == ()
    answer = sdp.answer(offer, codecs=["PCMU", "PCMA"], transport=sdp.PlainTransport("192.0.2.10", 40000))
    assert [m.port for m in answer.media] == [40000, 0]  # as many m-lines as offered, the second rejected


def test_a_static_payload_type_falls_back_to_rfc_3551() -> None:
    offer = sdp.parse(LPC_VIDEO)
    assert names(offer.media[1]) == ["31 H261/90000"]  # RFC 3551 §6: PT 31 is H261


def test_unusable_parameters_are_dropped_and_the_lines_survive_write() -> None:
    offer = sdp.parse(ODD_PARAMETERS)
    assert names(offer.media[0]) == ["0 PCMU/8000"]  # 96 has no usable rtpmap; 97 is not in the m-line
    assert offer.media[0].codecs[0].rtcp_fb == ()  # a=rtcp-fb:0 has no value: ignored
    assert sdp.write(offer) == ODD_PARAMETERS  # unknown or odd lines are kept as they came


@pytest.mark.parametrize(
    "line",
    [
        "a=rtpmap:96 opus",
        "a=rtpmap:96 opus/0",
        "a=rtpmap:96 opus/48000/x",
        "a=rtpmap:96 op us/8000",
        "a=fmtp:x y",
    ],
)
def test_no_single_codec_line_fails_a_description(line: str) -> None:
    offer = sdp.parse(HEAD + f"m=audio 4000 RTP/AVP 96 0\r\n{line}\r\n")
    assert [c.payload_type for c in offer.media[0].codecs] == [0]


@pytest.mark.parametrize("value", ["-5", "abc", "0", ""])
def test_an_unreadable_ptime_costs_the_preference_not_the_description(value: str) -> None:
    offer = sdp.parse(HEAD + f"m=audio 49170 RTP/AVP 0\r\na=ptime:{value}\r\na=maxptime:x\r\n")
    assert offer.media[0].ptime is None and offer.media[0].maxptime is None
    answer = sdp.answer(offer, codecs=["PCMU/8000"], transport=sdp.PlainTransport("198.51.100.1", 5000))
    assert "ptime" not in sdp.write(answer)  # not echoed back
