"""Stream framing (RFC 3261 §18.3) and keep-alives (RFC 5626 §3.5.1)."""

from __future__ import annotations

import pytest

from sipcore import BadRequest, Framing, MessageTooLarge, ParserLimits, Request, parse_message
from sipcore.syntax.framing import KeepAlive, StreamFramer

MESSAGE = (
    b"MESSAGE sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP pc33.example.com;branch=z9hG4bK776\r\n"
    b"To: <sip:bob@example.com>\r\nFrom: <sip:alice@example.com>;tag=1\r\n"
    b"Call-ID: c1\r\nCSeq: 1 MESSAGE\r\nl: 5\r\n\r\nhello"
)


def test_byte_by_byte() -> None:
    framer = StreamFramer()
    out = []
    for i in range(len(MESSAGE) * 2):
        out += framer.feed((MESSAGE * 2)[i : i + 1])
    assert out == [MESSAGE, MESSAGE] and framer.buffered == 0
    assert isinstance(out[0], bytes)
    request = parse_message(out[0], framing=Framing.STREAM)
    assert isinstance(request, Request) and request.body == b"hello"


def test_keepalives() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n\r\n") == [KeepAlive(ping=True)]
    assert framer.feed(b"\r\n") == [KeepAlive(ping=False)]
    assert framer.feed(b"\r\n\r\n" + MESSAGE + b"\r\n" + MESSAGE[:10]) == [
        KeepAlive(ping=True),
        MESSAGE,
        KeepAlive(ping=False),
    ]
    assert framer.feed(MESSAGE[10:]) == [MESSAGE]


def test_waits_for_the_body() -> None:
    framer = StreamFramer()
    assert framer.feed(MESSAGE[:-2]) == []
    assert framer.buffered == len(MESSAGE) - 2
    assert framer.feed(MESSAGE[-2:]) == [MESSAGE]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (MESSAGE.replace(b"l: 5\r\n", b""), "missing Content-Length"),
        (MESSAGE.replace(b"l: 5", b"l: -5"), "invalid Content-Length"),
        (MESSAGE.replace(b"l: 5", b"l: 5\r\nContent-Length: 6"), "multiple Content-Length"),
    ],
)
def test_unframeable_stream_breaks_the_framer(data: bytes, match: str) -> None:
    framer = StreamFramer()
    with pytest.raises(BadRequest, match=match):
        framer.feed(data)
    with pytest.raises(BadRequest, match=match):
        framer.feed(b"\r\n\r\n")  # stays broken: the connection must be closed


def test_a_complete_message_before_unframeable_octets_is_not_lost() -> None:
    """RFC 4475 §3.1.1.8 on a stream: a whole message, then octets that cannot be framed."""
    framer = StreamFramer()
    trailing = b"INVITE sip:joe@example.com SIP/2.0\r\nContent-Length: nonsense\r\n\r\n"
    assert framer.feed(MESSAGE + trailing) == [MESSAGE]
    assert framer.error is not None and "Content-Length" in framer.error.detail
    with pytest.raises(BadRequest):
        framer.feed(b"\r\n\r\n")  # still broken afterwards: the connection must be closed


def test_limits() -> None:
    framer = StreamFramer(ParserLimits(max_message_size=100))
    with pytest.raises(MessageTooLarge, match="no end of headers"):
        framer.feed(b"INVITE " + b"x" * 200)
    with pytest.raises(MessageTooLarge):
        StreamFramer(ParserLimits(max_message_size=200)).feed(MESSAGE.replace(b"l: 5", b"l: 500"))


def test_large_header_in_small_chunks_is_scanned_linearly() -> None:
    """A 60 KB header trickled 16 bytes at a time is searched once, not once per chunk."""
    head = b"OPTIONS sip:x@y SIP/2.0\r\n" + b"X-Pad: " + b"a" * 60_000 + b"\r\nContent-Length: 0\r\n\r\n"
    framer = StreamFramer()
    out: list[bytes | KeepAlive] = []
    for i in range(0, len(head), 16):
        out += framer.feed(head[i : i + 16])
    assert out == [head]
    assert framer.scanned < 2 * len(head), framer.scanned
    # The same when the end of headers is split across chunks in every possible way.
    for cut in range(len(MESSAGE) - 12, len(MESSAGE) - 3):
        framer = StreamFramer()
        assert framer.feed(MESSAGE[:cut]) + framer.feed(MESSAGE[cut:]) == [MESSAGE]


def test_many_bare_line_feeds_do_not_recurse() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\n" * 100_000) == []
    assert framer.feed(MESSAGE) == [MESSAGE] and framer.buffered == 0


def test_keepalive_split_after_a_partial_scan() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r") == []
    assert framer.feed(b"\n\r\n") == [KeepAlive(ping=True)]
    assert framer.feed(MESSAGE) == [MESSAGE]


def test_large_body_in_small_chunks_reads_the_headers_once() -> None:
    body = b"b" * 60_000
    message = MESSAGE.replace(b"l: 5\r\n\r\nhello", f"l: {len(body)}\r\n\r\n".encode() + body)
    framer = StreamFramer()
    out: list[bytes | KeepAlive] = []
    for i in range(0, len(message), 16):
        out += framer.feed(message[i : i + 16])
    assert out == [message] and framer.scanned < 2 * len(message)
