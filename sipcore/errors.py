"""Errors of the SIP package.

Every error the SIP core raises on network input is a :class:`SIPError`. Like h11's
``ProtocolError.error_status_hint``, each subclass carries the status code the peer must be
told (RFC 3261 §21), and, when the failure happened while parsing a message, a
:class:`ParseContext` holding what could be read of it, so that the UA can decide whether the
message can be answered at all (a request with Via, From, To, Call-ID and CSeq) or must be
dropped (a malformed response, RFC 3261 §16.3/§18.1.2), and build that answer
(:func:`sipcore.syntax.message.error_response`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sipcore.syntax.message import Headers

__all__ = [
    "BadExtension",
    "BadRequest",
    "DigestError",
    "EntityTooLarge",
    "MessageTooLarge",
    "ParseContext",
    "SIPError",
    "TransportError",
    "Unreachable",
    "UnsupportedURIScheme",
    "VersionNotSupported",
]

# The headers without which no response can reach and match its request: Via routes it back and
# CSeq names the transaction (RFC 3261 §8.2.6.2, §17.1.3). From, To and Call-ID are copied when
# present; a request missing them still gets its 400 (RFC 4475 §3.3.1).
_ANSWER_HEADERS = ("Via", "CSeq")
_MAX_REASON = 120


@dataclass(frozen=True, slots=True)
class ParseContext:
    """What was read of a message before it was found malformed."""

    is_request: bool
    method: str | None
    headers: Headers

    @property
    def answerable(self) -> bool:
        """A request whose headers allow a response to be built and matched (RFC 3261 §8.2.6)."""
        if not self.is_request or self.method == "ACK":
            # Responses are never answered; an ACK gets no response (RFC 3261 §17.2.3).
            return False
        return all(self.headers.get(name) is not None for name in _ANSWER_HEADERS)


class SIPError(Exception):
    """Base of every error of the SIP package.

    ``status`` is the SIP status code to answer with (None where there is nothing to answer,
    as for digest errors), ``detail`` a human-readable text quoting the bad value.
    """

    status: int | None = 400
    phrase: str = "Bad Request"

    def __init__(self, detail: str, *, context: ParseContext | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.context = context

    @property
    def answerable(self) -> bool:
        """True when a response can (and should) be sent for the failed message."""
        return self.status is not None and self.context is not None and self.context.answerable

    @property
    def reason_phrase(self) -> str:
        """Reason-Phrase for the error response: the standard phrase and the detail, made safe
        for a status line (RFC 3261 §25.1 Reason-Phrase: no CR/LF, no control characters)."""
        text = f"{self.phrase}: {self.detail}"
        cleaned = "".join(ch if ch.isprintable() else "?" for ch in text)
        return cleaned[:_MAX_REASON]

    def extra_headers(self) -> tuple[tuple[str, str], ...]:
        """Headers the error response must carry besides the copied ones."""
        return ()

    def with_context(self, context: ParseContext) -> SIPError:
        """Attach parse context, keeping the first one set."""
        if self.context is None:
            self.context = context
        return self


class BadRequest(SIPError):
    """Malformed message (400, RFC 3261 §21.4.1)."""

    status = 400
    phrase = "Bad Request"


class EntityTooLarge(SIPError):
    """Body larger than accepted (413, RFC 3261 §21.4.11)."""

    status = 413
    phrase = "Request Entity Too Large"


class MessageTooLarge(SIPError):
    """Message, header count or line length over the limits (513, RFC 3261 §21.5.7)."""

    status = 513
    phrase = "Message Too Large"


class VersionNotSupported(SIPError):
    """SIP version other than SIP/2.0 (505, RFC 3261 §21.5.6)."""

    status = 505
    phrase = "Version Not Supported"


class UnsupportedURIScheme(SIPError):
    """Request-URI scheme the UA does not handle (416, RFC 3261 §8.2.2.1)."""

    status = 416
    phrase = "Unsupported URI Scheme"


class BadExtension(SIPError):
    """Require names option tags we do not support (420, RFC 3261 §8.2.2.3)."""

    status = 420
    phrase = "Bad Extension"

    def __init__(self, unsupported: tuple[str, ...], *, context: ParseContext | None = None) -> None:
        super().__init__(f"unsupported option tags {', '.join(unsupported)!r}", context=context)
        self.unsupported = unsupported

    def extra_headers(self) -> tuple[tuple[str, str], ...]:
        # RFC 3261 §8.2.2.3: the 420 lists the tags in an Unsupported header.
        return (("Unsupported", ", ".join(self.unsupported)),)


class DigestError(SIPError):
    """A challenge cannot be answered (unknown algorithm, bad parameters, wrong credentials)."""

    status = None
    phrase = "Digest Error"


class TransportError(SIPError):
    """A message could not be sent (RFC 3261 §18.4); clients see it as a 503 (as pjsip does)."""

    status = 503
    phrase = "Service Unavailable"


class Unreachable(TransportError):
    """The peer cannot be reached at all: ICMP host/port unreachable for UDP (RFC 3261 §18.4), a TCP
    connection refused. The transaction fails with a 503 whose reason phrase says so, at once."""

    phrase = "Destination Unreachable"


class CertificateRejected(TransportError):
    """A TLS peer whose certificate does not verify (RFC 5922): the transaction fails with a 503 whose
    reason phrase says so, never over a plain fallback."""

    phrase = "TLS certificate rejected"
