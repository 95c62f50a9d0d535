"""RFC 3261 §8.2.1-§8.2.3 checks of a UAS (sipcore/dialogs/inspection.py), with RFC 4475's messages."""

from __future__ import annotations

import pytest

from sipcore.dialogs.inspection import KNOWN_METHODS, refuse_accept, refuse_body, refuse_method
from sipcore.syntax.message import Request
from sipcore.syntax.parser import parse_message

ALLOW = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO")


def message(head: str, body: str = "") -> Request:
    text = head.strip().replace("\n", "\r\n") + f"\r\nContent-Length: {len(body.encode())}\r\n\r\n" + body
    parsed = parse_message(text.encode())
    assert isinstance(parsed, Request)
    return parsed


# RFC 4475 §3.3.6 (invut): a body of a type nobody understands
INVUT = message(
    """
INVITE sip:user@example.com SIP/2.0
Contact: <sip:caller@host5.example.net>
To: sip:j.user@example.com
From: sip:caller@example.net;tag=8392034
Max-Forwards: 70
Call-ID: invut.0ha0isndaksdjadsfij34n23d
CSeq: 235448 INVITE
Via: SIP/2.0/UDP somehost.example.com;branch=z9hG4bKkdjuw
Content-Type: application/unknownformat
""",
    '<audio>\r\n <pcmu port="443"/>\r\n</audio>\r\n',
)
SDP = "v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\nm=audio 49217 RTP/AVP 0\r\n"
# RFC 4475 §3.3.15 (sdp01): an Accept that excludes what the answer would carry
SDP01 = message(
    """
INVITE sip:user@example.com SIP/2.0
To: sip:j_user@example.com
Contact: <sip:caller@host15.example.net>
From: sip:caller@example.net;tag=234
Max-Forwards: 5
Call-ID: sdp01.ndaksdj9342dasdd
Accept: text/nobodyknowsthis
CSeq: 8 INVITE
Via: SIP/2.0/UDP 60.3.5.1;branch=z9hG4bKkdjuw
Content-Type: application/sdp
""",
    SDP,
)
PLAIN = """
INVITE sip:user@example.com SIP/2.0
To: sip:j_user@example.com
From: sip:caller@example.net;tag=234
Call-ID: plain.1
CSeq: 8 INVITE
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKplain
Max-Forwards: 70
"""


def test_unknown_content_type_is_415_with_accept() -> None:
    assert refuse_body(INVUT, ("application/sdp",)) == (415, (("Accept", "application/sdp"),))
    assert refuse_body(SDP01, ("application/sdp",)) is None


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ("Content-Type: Application/SDP; charset=utf-8\n", SDP, None),  # types compare case-insensitively
        ("", SDP, None),  # no Content-Type: taken as what the method expects
        ("Content-Type: text/plain\n", "", None),  # no body: nothing to read
        ("Content-Type: application/sdp\nContent-Encoding: gzip\n", SDP, 415),
        ("Content-Type: application/sdp\nContent-Encoding: identity\n", SDP, None),
        ("Content-Type: multipart/mixed;boundary=x\n", "--x--\r\n", 415),
    ],
)
def test_bodies(headers: str, body: str, expected: int | None) -> None:
    refusal = refuse_body(message(PLAIN + headers, body), ("application/sdp",))
    assert (refusal[0] if refusal else None) == expected


def test_an_unknown_encoding_names_the_one_we_apply() -> None:
    refusal = refuse_body(message(PLAIN + "Content-Encoding: gzip\n", ""), ("application/sdp",))
    assert refusal == (415, (("Accept-Encoding", "identity"),))


def test_accept_without_sdp_is_406() -> None:
    refusal = refuse_accept(SDP01, "application/sdp")
    assert refusal is not None and refusal[0] == 406
    assert refusal[1][0] == ("Accept", "application/sdp")
    assert refusal[1][1][0] == "Warning" and "application/sdp" in refusal[1][1][1]  # issue 33: says why


@pytest.mark.parametrize(
    "accept",
    ["application/sdp", "application/*", "*/*", "text/html, application/SDP;level=1", "text/plain, */*"],
)
def test_accept_that_admits_sdp(accept: str) -> None:
    assert refuse_accept(message(PLAIN + f"Accept: {accept}\n"), "application/sdp") is None


def test_no_accept_header_admits_sdp() -> None:
    assert refuse_accept(message(PLAIN), "application/sdp") is None


def test_methods() -> None:
    assert refuse_method("INVITE", ALLOW) is None
    assert refuse_method("SUBSCRIBE", ALLOW) == (405, (("Allow", ", ".join(ALLOW)),))  # known: 405 (§8.2.1)
    assert refuse_method("NEWMETHOD", ALLOW) == (501, (("Allow", ", ".join(ALLOW)),))  # unknown (§21.5.2)
    assert {"REGISTER", "PRACK", "UPDATE", "REFER", "MESSAGE", "NOTIFY", "PUBLISH"} <= KNOWN_METHODS
