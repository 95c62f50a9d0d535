"""Cut SIP messages out of a byte stream (TCP, TLS), RFC 3261 §18.3.

Feed the framer whatever chunks the socket gives; it returns each complete message as bytes
(to hand to ``parse_message(..., framing=Framing.STREAM)``) and reports RFC 5626 §3.5.1
keep-alives between messages: a double CRLF is a ping (answer with a single CRLF), a single
CRLF a pong. A ping split across two reads is seen as two pongs.

On a stream, Content-Length is mandatory (RFC 3261 §18.3): without it, or past the size limits,
the stream cannot be framed any more, the framer raises, and stays broken (close the
connection).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sipcore.errors import BadRequest, MessageTooLarge, SIPError
from sipcore.syntax.parser import DEFAULT_LIMITS, ParserLimits

__all__ = ["KeepAlive", "StreamFramer"]

_HEAD_END = re.compile(rb"\r?\n\r?\n")
# Content-Length or its compact form l (RFC 3261 §7.3.3, §20.14), at the start of a line.
_CONTENT_LENGTH = re.compile(
    rb"^(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*?)[ \t]*\r?$", re.IGNORECASE | re.MULTILINE
)


@dataclass(frozen=True, slots=True)
class KeepAlive:
    """A keep-alive between messages (RFC 5626 §3.5.1): ping (CRLFCRLF) or pong (CRLF)."""

    ping: bool


class StreamFramer:
    """Incremental framer for one stream connection (sans-I/O)."""

    def __init__(self, limits: ParserLimits = DEFAULT_LIMITS) -> None:
        self._limits = limits
        self._buffer = bytearray()
        self._error: SIPError | None = None
        # Where the search for the end of the headers resumes: the buffer before it holds no
        # blank line (RFC 3261 §18.3), so a header trickled in byte by byte is scanned once.
        self._scan_from = 0
        self.scanned = 0  # bytes searched for the end of headers so far (a work counter)
        self._message_end: int | None = None  # once the headers are read: where the body ends

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a message."""
        return len(self._buffer)

    @property
    def error(self) -> SIPError | None:
        """Why the stream cannot be framed any more, once it cannot (close the connection then)."""
        return self._error

    def feed(self, data: bytes) -> list[bytes | KeepAlive]:
        """Add received bytes; return the complete messages and keep-alives now available.

        When the bytes after complete messages cannot be framed (RFC 4475 §3.1.1.8: a whole message
        and then trailing octets), the complete messages are returned and ``error`` is set: they are
        not lost with what follows. With nothing complete before it, the error is raised; once set,
        every later ``feed`` raises it."""
        if self._error is not None:
            raise self._error
        self._buffer += data
        out: list[bytes | KeepAlive] = []
        try:
            while True:
                item = self._next()
                if item is None:
                    return out
                out.append(item)
        except SIPError as exc:
            self._error = exc
            if out:
                return out
            raise

    def _next(self) -> bytes | KeepAlive | None:
        buffer = self._buffer
        if self._message_end is not None:
            return self._take(self._message_end)
        # Between messages: keep-alives, and (leniently) bare LFs, skipped in a loop so that any
        # number of them costs no recursion. Mid-header the buffer starts with the start line,
        # so these checks cost nothing there.
        skip = 0
        while skip < len(buffer) and buffer[skip] == 0x0A:
            skip += 1
        if skip:
            del buffer[:skip]
            self._scan_from = 0
        if buffer.startswith(b"\r\n\r\n"):
            del buffer[:4]
            self._scan_from = 0
            return KeepAlive(ping=True)
        if buffer.startswith(b"\r\n"):
            del buffer[:2]
            self._scan_from = 0
            return KeepAlive(ping=False)
        # A match can start up to 3 bytes before the end of what was scanned ("\r\n\r" + "\n").
        start = max(0, self._scan_from - 3)
        match = _HEAD_END.search(buffer, start)
        self.scanned += len(buffer) - start
        if match is None:
            self._scan_from = len(buffer)
            if len(buffer) > self._limits.max_message_size:
                raise MessageTooLarge(f"no end of headers within {self._limits.max_message_size} bytes")
            return None
        self._scan_from = match.start()
        head = bytes(buffer[: match.start()])
        lengths = {value.strip() for value in _CONTENT_LENGTH.findall(head)}
        if not lengths:
            raise BadRequest("missing Content-Length on a stream transport")
        if len(lengths) > 1:
            raise BadRequest(f"multiple Content-Length values {sorted(lengths)!r}")
        text = lengths.pop()
        if not text.isdigit() or len(text) > 10:
            raise BadRequest(f"invalid Content-Length {text.decode('latin-1')!r}")
        end = match.end() + int(text)
        if end > self._limits.max_message_size:
            raise MessageTooLarge(f"message of {end} bytes over {self._limits.max_message_size}")
        self._message_end = end
        return self._take(end)

    def _take(self, end: int) -> bytes | None:
        """The message ending at ``end`` once its body is all here."""
        if len(self._buffer) < end:
            return None
        message = bytes(self._buffer[:end])
        del self._buffer[:end]
        self._scan_from = 0
        self._message_end = None
        return message
