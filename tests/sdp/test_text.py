"""Real-time text m-lines (RFC 4103, issue 68 item 1): what an offer's ``m=text`` says, our offer and answer.

The offers are written as text phones send them: RFC 4103 §6's own example (T.140 98, RED 100 with two
generations) beside audio, a phone without redundancy, and one whose RED names another payload type.
"""

from __future__ import annotations

import pytest

import sdp
from sdp import text

RFC_4103 = """v=0
o=rtt 2890844526 2890844526 IN IP4 192.0.2.40
s=-
c=IN IP4 192.0.2.40
t=0 0
m=audio 49170 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
m=text 11000 RTP/AVP 100 98
a=rtpmap:98 t140/1000
a=rtpmap:100 red/1000
a=fmtp:100 98/98/98
a=sendrecv
"""


def text_line(body: str, proto: str = "RTP/AVP") -> sdp.MediaDescription:
    offer = sdp.parse(f"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n{body}")
    return offer.media[0]


def test_the_rfc_4103_offer_gives_t140_red_and_two_generations() -> None:
    offer = sdp.parse(RFC_4103)
    assert text.text_index(offer) == 1
    assert text.text_format(offer.media[1]) == text.TextFormat(98, 100, 2)
    assert text.text_format(offer.media[0]) is None  # the audio


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("m=text 11000 RTP/AVP 98\r\na=rtpmap:98 t140/1000\r\n", text.TextFormat(98)),
        (  # RED with one generation
            "m=text 11000 RTP/AVP 101 99\r\na=rtpmap:99 T140/1000\r\na=rtpmap:101 RED/1000\r\na=fmtp:101 99/99\r\n",
            text.TextFormat(99, 101, 1),
        ),
        (  # RED naming another payload type: the text goes on without it
            "m=text 11000 RTP/AVP 100 98\r\na=rtpmap:98 t140/1000\r\na=rtpmap:100 red/1000\r\na=fmtp:100 0/98\r\n",
            text.TextFormat(98),
        ),
        (  # RED without its fmtp
            "m=text 11000 RTP/AVP 100 98\r\na=rtpmap:98 t140/1000\r\na=rtpmap:100 red/1000\r\n",
            text.TextFormat(98),
        ),
        ("m=text 0 RTP/AVP 98\r\na=rtpmap:98 t140/1000\r\n", None),  # rejected
        ("m=text 11000 RTP/AVP 98\r\na=rtpmap:98 t140/8000\r\n", None),  # not T.140's clock
        ("m=text 11000 RTP/SAVP 98\r\na=rtpmap:98 t140/1000\r\n", None),  # no key for the text
        ("m=audio 11000 RTP/AVP 98\r\na=rtpmap:98 t140/1000\r\n", None),
    ],
)
def test_text_format_of_an_m_line(body: str, expected: text.TextFormat | None) -> None:
    assert text.text_format(text_line(body)) == expected


def test_the_answer_keeps_the_offers_payload_types_and_redundancy() -> None:
    offer = sdp.parse(RFC_4103)
    answer = text.answer_section(offer.media[1], "203.0.113.5", 40002)
    written = sdp.write(offer.with_media([offer.media[0], answer]))
    assert "m=text 40002 RTP/AVP 100 98\r\n" in written
    assert "a=rtpmap:100 red/1000\r\na=fmtp:100 98/98/98\r\na=rtpmap:98 t140/1000\r\n" in written
    assert "a=rtcp:40003 IN IP4 203.0.113.5\r\n" in written and "a=sendrecv\r\n" in written
    assert text.text_format(sdp.parse(written).media[1]) == text.TextFormat(98, 100, 2)


def test_an_unusable_text_line_is_answered_with_port_0() -> None:
    offered = text_line("m=text 11000 RTP/AVP 98\r\na=rtpmap:98 t140/8000\r\n")
    answer = text.answer_section(offered, "203.0.113.5", 40002)
    assert answer.rejected and answer.media == "text" and answer.formats == ("98",)


def test_our_offer_is_red_with_two_generations_then_t140() -> None:
    section = text.offer_section("203.0.113.5", 40010)
    assert section.m_line == "text 40010 RTP/AVP 100 98"
    assert text.text_format(section) == text.TextFormat(98, 100, 2)
    assert text.text_format(text.offer_section("2001:db8::5", 40010, generations=0)) == text.TextFormat(98)
    assert text.offer_section("2001:db8::5", 40010).connection == sdp.Connection("2001:db8::5", "IP6")


@pytest.mark.parametrize(
    ("t140", "red", "generations"), [(128, None, 0), (98, 98, 2), (98, 100, 0), (98, None, 2), (98, 100, 9)]
)
def test_a_bad_text_format_is_refused_naming_the_value(t140: int, red: int | None, generations: int) -> None:
    with pytest.raises(sdp.SdpParseError):
        text.TextFormat(t140, red, generations)


CHROME_WITH_DCMAP = """v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0 1
m=audio 9 UDP/TLS/RTP/SAVPF 111
c=IN IP4 0.0.0.0
a=mid:0
a=rtpmap:111 opus/48000/2
m=application 9 UDP/DTLS/SCTP webrtc-datachannel
c=IN IP4 0.0.0.0
a=mid:1
a=sctp-port:5000
{dcmap}"""


@pytest.mark.parametrize(
    ("dcmap", "asks"),
    [
        ('a=dcmap:1 label="t140";subprotocol="t140"', True),  # RFC 8865 §5.1's form
        ("a=dcmap:2 subprotocol=t140", True),
        ('a=dcmap:1 label="chat";subprotocol="chat"', False),
        ('a=dcmap:1 label="t140"', False),  # the label says nothing: the subprotocol does
        ("a=sendrecv", False),
    ],
)
def test_a_browser_asks_for_t140_with_a_dcmap_line(dcmap: str, asks: bool) -> None:
    offer = sdp.parse(CHROME_WITH_DCMAP.format(dcmap=dcmap).replace("\n", "\r\n") + "\r\n")
    assert text.asks_for_t140(offer) is asks
