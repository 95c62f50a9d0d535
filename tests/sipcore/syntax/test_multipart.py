"""Multipart bodies (sipcore/syntax/multipart.py): the SDP part of a SIP-I/SIP-T INVITE (issue 67 item 6)."""

from __future__ import annotations

import pytest

from sipcore.syntax.multipart import sdp_part, with_sdp_body
from sipcore.syntax.parser import parse_message

SDP = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8\r\n"
ISUP = b"\x01\x00\x49\x00\x00\x03\x02\x00\x07\x04\x10\x00\x33\x63\x21\x43\x00\x00\x03"


def sip_i(disposition: str = "signal;handling=optional", boundary: str = "unique-boundary-1") -> bytes:
    """A SIP-I INVITE as carriers send it (RFC 3204 §3: SDP and ISUP in multipart/mixed)."""
    body = (
        f"--{boundary}\r\nContent-Type: application/sdp\r\n\r\n".encode()
        + SDP
        + f"\r\n--{boundary}\r\nContent-Type: application/ISUP;version=itu-t92+\r\n"
        f"Content-Disposition: {disposition}\r\n\r\n".encode()
        + ISUP
        + f"\r\n--{boundary}--\r\n".encode()
    )
    head = (
        "INVITE sip:1001@192.0.2.9 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-1\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:+4930123@192.0.2.1>;tag=a\r\nTo: <sip:1001@192.0.2.9>\r\n"
        "Call-ID: sipi-1\r\nCSeq: 1 INVITE\r\nContact: <sip:192.0.2.1>\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/mixed;boundary="{boundary}"\r\nContent-Length: {len(body)}\r\n\r\n'
    )
    return head.encode() + body


def test_a_sip_i_invite_is_read_as_its_sdp() -> None:
    message = with_sdp_body(parse_message(sip_i()))
    assert message.body == SDP
    assert message.headers.get("Content-Type") == "application/sdp"
    assert parse_message(message.serialize()).body == SDP  # and stays a valid message


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        # a required part the gateway cannot read: the body stays, refused 415 as a whole
        ('multipart/mixed;boundary="b"', b"--b\r\nContent-Type: application/isup\r\n"
         b"Content-Disposition: signal;handling=required\r\n\r\nx\r\n--b\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n--b--"),
        ('multipart/mixed;boundary="b"', b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--"),  # no SDP
        ('multipart/mixed;boundary="b"', b"--b\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n"
         b"--b\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n--b--"),  # two SDPs: which one?
        ("multipart/mixed", b"--b\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n--b--"),  # no boundary
        ("multipart/alternative;boundary=b", b"--b\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n--b--"),
        ('multipart/mixed;boundary="b"', b"--b"),  # cut off
    ],
)  # fmt: skip
def test_bodies_it_cannot_take_stay_as_they_came(content_type: str, body: bytes) -> None:
    assert sdp_part(content_type, body) is None


def test_isup_without_a_disposition_and_a_bare_lf_body_are_taken() -> None:
    """Liberal: a part with no Content-Disposition is not taken as required, and LF line ends work."""
    body = b"preamble\n--x\nContent-Type: application/sdp\n\nv=0\n--x\nContent-Type: application/isup\n\n\x01\n--x--\n"
    assert sdp_part("Multipart/Mixed; boundary=x", body) == b"v=0"
    message = parse_message(sip_i(disposition="signal"))
    assert with_sdp_body(message).body == SDP
    required = parse_message(sip_i(disposition="signal;handling=required"))
    assert with_sdp_body(required) is required
