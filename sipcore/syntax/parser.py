"""Parse SIP messages from bytes (RFC 3261 §7, §18.3, §20, §25).

``parse_message`` takes one whole message (a UDP datagram, or what
:class:`sipcore.syntax.framing.StreamFramer` cut from a stream) and returns a
:class:`~sipcore.syntax.message.Request` or :class:`~sipcore.syntax.message.Response`, or raises a
:class:`~sipcore.errors.SIPError` carrying the status to answer and what was read
(:class:`~sipcore.errors.ParseContext`), never any other exception.

Strict where RFC 3261 says reject (start line, CSeq, Via, From/To syntax, mandatory headers,
CSeq method, Content-Length), lenient where phones are sloppy and the RFC allows it: bare LF line
ends, trailing white space after the request line, a missing Max-Forwards (RFC 3261 §8.2 does
not ask a UAS to reject it), the Date header (not interpreted), empty list elements.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

from sipcore.errors import (
    BadExtension,
    BadRequest,
    EntityTooLarge,
    MessageTooLarge,
    ParseContext,
    SIPError,
    VersionNotSupported,
)
from sipcore.syntax.headers import (
    is_token,
    parse_cseq,
    parse_max_forwards,
    parse_name_addr,
    parse_via,
    split_commas,
)
from sipcore.syntax.message import Headers, Request, Response, canonical_name
from sipcore.syntax.uri import URI, parse_request_uri

__all__ = ["DEFAULT_LIMITS", "Framing", "ParserLimits", "parse_message", "peek_request"]

logger = logging.getLogger(__name__)


class Framing(enum.Enum):
    """How the message was delimited on the wire (RFC 3261 §18.3)."""

    DATAGRAM = "datagram"  # UDP: the datagram ends the message, Content-Length optional
    STREAM = "stream"  # TCP/TLS: Content-Length is mandatory and exact


@dataclass(frozen=True, slots=True)
class ParserLimits:
    """Size limits; going over one raises MessageTooLarge (513) or, for the body,
    EntityTooLarge (413)."""

    max_message_size: int = 65535
    max_headers: int = 256
    max_line_length: int = 8192
    max_body_size: int = 65535

    def __post_init__(self) -> None:
        for name in ("max_message_size", "max_headers", "max_line_length", "max_body_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")


DEFAULT_LIMITS = ParserLimits()

# Headers whose grammar is a comma-separated list (RFC 3261 §7.3.1, §25.1 and extensions).
# Others are never split: WWW-Authenticate, Authorization, Date, ... contain commas.
MULTI_VALUE_HEADERS = frozenset(
    name.lower()
    for name in (
        "Accept",
        "Accept-Contact",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Allow-Events",
        "Call-Info",
        "Contact",
        "Content-Encoding",
        "Content-Language",
        "Error-Info",
        "In-Reply-To",
        "P-Asserted-Identity",
        "P-Preferred-Identity",
        "Path",
        "Proxy-Require",
        "Reason",
        "Record-Route",
        "Reject-Contact",
        "Request-Disposition",
        "Require",
        "Route",
        "Service-Route",
        "Supported",
        "Unsupported",
        "Via",
        "Warning",
    )
)
# Headers that may appear once only (RFC 3261 §7.3.1; RFC 4475 §3.3.8/§3.3.9: 400).
SINGLE_VALUE_HEADERS = ("From", "To", "Call-ID", "CSeq", "Max-Forwards")
# The headers every request and response carries (RFC 3261 §8.1.1, §8.2.6.2).
MANDATORY_HEADERS = ("Via", "From", "To", "Call-ID", "CSeq")


def _check_call_id(value: str) -> None:
    # RFC 3261 §25.1 callid = word [ "@" word ]: no white space.
    if not value or _SPACE.search(value):
        raise BadRequest(f"invalid Call-ID {value!r}")


def _name_addr(header: str) -> Callable[[str], object]:
    def check(value: str) -> object:
        return parse_name_addr(value, header)

    return check


def _contact(value: str) -> object:
    return None if value.strip() == "*" else parse_name_addr(value, "Contact")


# Table of header validators: each raises BadRequest naming the header and value.
VALIDATORS: dict[str, Callable[[str], object]] = {
    "Via": parse_via,
    "From": _name_addr("From"),
    "To": _name_addr("To"),
    "Contact": _contact,
    "Route": _name_addr("Route"),
    "Record-Route": _name_addr("Record-Route"),
    "CSeq": parse_cseq,
    "Max-Forwards": parse_max_forwards,
    "Call-ID": _check_call_id,
}

# Validated values the message keeps for its accessors (the first of each; see Headers.first).
_REMEMBERED = frozenset(("Via", "CSeq", "From", "To"))

_HEAD_END = re.compile(rb"\r?\n\r?\n")
_LINE_END = re.compile(r"\r?\n")
_VERSION = re.compile(r"SIP/[0-9]+\.[0-9]+\Z", re.IGNORECASE | re.ASCII)
_STATUS = re.compile(r"[1-6][0-9][0-9]\Z", re.ASCII)
_SPACE = re.compile(r"\s")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(slots=True)
class _StartLine:
    is_request: bool
    method: str | None
    parts: list[str]


def _split_start_line(line: str) -> _StartLine:
    if line.startswith("SIP/") or line.upper().startswith("SIP/"):
        parts = line.split(" ", 2)
        return _StartLine(False, None, parts)
    # RFC 3261 §7.1: single SP between elements; trailing white space is tolerated
    # (RFC 4475 §3.1.2.10 allows a liberal element to ignore it).
    parts = line.rstrip(" \t").split(" ")
    return _StartLine(True, parts[0] if parts and is_token(parts[0]) else None, parts)


def _header_lines(
    head: str, limits: ParserLimits, errors: list[SIPError]
) -> tuple[str, list[tuple[str, str]], MessageTooLarge | None]:
    """Start line, unfolded ``(name, value)`` lines (RFC 3261 §7.3.1 folding) and the 513 due when a
    header line is too long or there are too many: the lines over the limits are left out, so that the
    rest can still say whom to answer (an over-long start line cannot: raised at once)."""
    start, *rest = _LINE_END.split(head)
    longest = limits.max_line_length
    if len(start) > longest:
        raise MessageTooLarge(f"line longer than {longest} bytes: {start[:40]!r}...")
    too_large: MessageTooLarge | None = None
    too_long = next((line for line in rest if len(line) > longest), None)
    if too_long is not None:
        too_large = MessageTooLarge(f"line longer than {longest} bytes: {too_long[:40]!r}...")
        rest = [line for line in rest if len(line) <= longest]
    unfolded: list[str] = []
    for line in rest:
        if line[:1] in (" ", "\t"):
            if not unfolded:
                errors.append(BadRequest(f"continuation line without header {line!r}"))
                continue
            unfolded[-1] = unfolded[-1].rstrip(" \t") + " " + line.lstrip(" \t")
        else:
            unfolded.append(line)
    fields: list[tuple[str, str]] = []
    for line in unfolded:
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")  # HCOLON = *( SP / HTAB ) ":" SWS
        if not colon or not is_token(name) or "\r" in value or "\n" in value:
            errors.append(BadRequest(f"invalid header line {line[:80]!r}"))
            continue
        fields.append((canonical_name(name), value.strip(" \t")))
    if len(fields) > limits.max_headers:
        too_large = too_large or MessageTooLarge(
            f"more than {limits.max_headers} header fields ({len(fields)})"
        )
        fields = fields[: limits.max_headers]
    return start, fields, too_large


def _split_values(fields: list[tuple[str, str]], errors: list[SIPError]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name, value in fields:
        if name.lower() not in MULTI_VALUE_HEADERS:
            out.append((name, value))
            continue
        try:
            # Empty list elements are dropped (lenient, as RFC 9110 §5.6.1 asks of recipients).
            pieces = [piece for piece in split_commas(value, name) if piece] or [""]
        except BadRequest as exc:
            errors.append(exc)
            pieces = [value]
        out.extend((name, piece) for piece in pieces)
    return out


def _content_length(values: list[str], errors: list[SIPError]) -> int | None:
    if not values:
        return None
    if len(values) > 1:
        errors.append(BadRequest(f"multiple Content-Length values {values!r}"))
    text = values[0]
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        errors.append(BadRequest(f"invalid Content-Length {text!r}"))
        return None
    return int(text)


def _status_line(start: _StartLine) -> tuple[int, str]:
    """RFC 3261 §7.2 Status-Line = SIP-Version SP Status-Code SP Reason-Phrase."""
    parts = start.parts
    if not _VERSION.match(parts[0]):
        raise BadRequest(f"invalid Status-Line {' '.join(parts)[:80]!r}")
    if parts[0].upper() != "SIP/2.0":
        raise VersionNotSupported(f"unsupported SIP version {parts[0]!r}")
    if len(parts) < 2 or not _STATUS.match(parts[1]):
        raise BadRequest(f"invalid status code {parts[1] if len(parts) > 1 else ''!r}")
    # An empty Reason-Phrase is valid (RFC 4475 §3.1.1.13), with or without its SP.
    reason = parts[2] if len(parts) > 2 else ""
    # RFC 3261 §25.1 Reason-Phrase = *(reserved / unreserved / escaped / UTF8-NONASCII /
    # UTF8-CONT / SP / HTAB): no control characters.
    if _CONTROL.search(reason):
        raise BadRequest(f"control character in Reason-Phrase {reason[:80]!r}")
    return int(parts[1]), reason


def _request_line(start: _StartLine) -> tuple[str, URI]:
    """RFC 3261 §7.1 Request-Line = Method SP Request-URI SP SIP-Version."""
    parts = start.parts
    if len(parts) != 3 or start.method is None:
        raise BadRequest(f"invalid Request-Line {' '.join(parts)[:80]!r}")
    if not _VERSION.match(parts[2]):
        raise BadRequest(f"invalid SIP version {parts[2]!r}")
    if parts[2].upper() != "SIP/2.0":
        raise VersionNotSupported(f"unsupported SIP version {parts[2]!r}")
    return start.method, parse_request_uri(parts[1])


def _first_broken(headers: Headers, names: Iterable[str]) -> BadRequest | None:
    """The error of the first of these headers that its validator refuses, if any."""
    for name in names:
        validator = VALIDATORS.get(name)
        if validator is None:
            continue
        for value in headers.get_all(name):
            try:
                validator(value)
            except BadRequest as exc:
                return exc
    return None


def parse_message(
    data: bytes,
    *,
    framing: Framing = Framing.DATAGRAM,
    limits: ParserLimits = DEFAULT_LIMITS,
    supported: Collection[str] | None = frozenset(),
) -> Request | Response:
    """Parse one SIP message.

    ``supported`` is the set of option tags the UA supports; a request whose Require names
    others is refused with 420 (RFC 3261 §8.2.2.3). ``None`` skips that check.
    """
    head, body = _split_message(data, limits)
    errors: list[SIPError] = []
    start_text, fields, too_large = _header_lines(head, limits, errors)
    start = _split_start_line(start_text)
    fields = _split_values(fields, errors)
    length = _content_length([v for n, v in fields if n == "Content-Length"], errors)
    headers = Headers(tuple((n, v) for n, v in fields if n != "Content-Length"))
    context = ParseContext(start.is_request, start.method, headers)
    request_line, status_line = _start_line(start, headers, context)
    _validate_headers(headers, errors)
    body = _frame_body(body, length, framing, limits, errors)
    if too_large is not None:  # before what the left-out lines may have caused (a missing header)
        raise too_large.with_context(context)
    if errors:
        raise errors[0].with_context(context)
    if request_line is not None:
        method, uri = request_line
        return _finish_request(Request(method, uri, headers, body), context, supported)
    return Response(status_line[0], status_line[1], headers, body)


def _split_message(data: bytes, limits: ParserLimits) -> tuple[str, bytes]:
    """The message's head (start line and header fields, as text) and its body bytes."""
    if len(data) > limits.max_message_size:
        raise MessageTooLarge(f"message of {len(data)} bytes over {limits.max_message_size}")
    # RFC 3261 §7.5: CRLFs before the start line are ignored (keep-alives, RFC 5626 §3.5.1).
    data = data.lstrip(b"\r\n")
    match = _HEAD_END.search(data)
    if match is not None:
        head_bytes, body = data[: match.start()], data[match.end() :]
    elif data.endswith(b"\n"):
        head_bytes, body = data.rstrip(b"\r\n"), b""  # lenient: no empty line after headers
    else:
        raise BadRequest("no empty line after the header fields")
    return head_bytes.decode("utf-8", "surrogateescape"), body


def _start_line(
    start: _StartLine, headers: Headers, context: ParseContext
) -> tuple[tuple[str, URI] | None, tuple[int, str]]:
    """The Request-Line's method and URI (None for a response), or the Status-Line's code and reason.
    A broken start line raises, with the error the response must carry (RFC 3261 §8.2.6.1)."""
    try:
        if start.is_request:
            return _request_line(start), (0, "")
        return None, _status_line(start)
    except SIPError as exc:
        missing = next((name for name in MANDATORY_HEADERS if headers.get(name) is None), None)
        if missing is not None and exc.status != 400:
            # A 416 (say) copies From/To/Call-ID/CSeq/Via into its response (RFC 3261 §8.2.6.1): a request
            # lacking one is malformed first, and gets the 400 that names it.
            raise BadRequest(f"missing {missing} header").with_context(context) from None
        # so is one whose copied header is broken (its response would be too); not a 505, which answers
        # a Via of another SIP version too (RFC 4475 §3.3.14)
        if exc.status not in (400, 505):
            broken = _first_broken(headers, MANDATORY_HEADERS)
            if broken is not None:
                raise broken.with_context(context) from None
        raise exc.with_context(context) from None


def _validate_headers(headers: Headers, errors: list[SIPError]) -> None:
    """Each header with a validator checked (the first of a name remembered parsed, when the message's
    accessors read it), single-value headers appearing once, the mandatory ones present (RFC 3261 §8.1.1):
    what is wrong goes to `errors`."""
    seen: set[str] = set()
    for name, value in headers:
        validator = VALIDATORS.get(name)
        if validator is not None:
            first = name not in seen
            seen.add(name)
            try:
                parsed = validator(value)
            except BadRequest as exc:
                errors.append(exc)
            else:
                if first and name in _REMEMBERED:
                    headers.remember(name, parsed)  # the message's accessors need not parse again
    for name in SINGLE_VALUE_HEADERS:
        if len(headers.get_all(name)) > 1:
            errors.append(BadRequest(f"more than one {name} header"))
    for name in MANDATORY_HEADERS:
        if headers.get(name) is None:
            errors.append(BadRequest(f"missing {name} header"))


def _frame_body(
    body: bytes, length: int | None, framing: Framing, limits: ParserLimits, errors: list[SIPError]
) -> bytes:
    if length is not None and length > limits.max_body_size:
        raise EntityTooLarge(f"body of {length} bytes over {limits.max_body_size}")
    if length is None:
        if framing is Framing.STREAM:
            # RFC 3261 §18.3: Content-Length MUST be used with stream transports.
            errors.append(BadRequest("missing Content-Length on a stream transport"))
        return body
    if len(body) < length:
        # RFC 3261 §18.3: fewer bytes than Content-Length over UDP: 400.
        errors.append(BadRequest(f"Content-Length {length} larger than body of {len(body)} bytes"))
        return body
    if len(body) > length and framing is Framing.STREAM:
        errors.append(BadRequest(f"{len(body) - length} bytes after the body"))
    # RFC 3261 §18.3: extra bytes of a datagram past Content-Length are discarded.
    return body[:length]


def _finish_request(request: Request, context: ParseContext, supported: Collection[str] | None) -> Request:
    cseq = request.cseq
    if cseq is not None and cseq.method != request.method:
        # RFC 3261 §8.1.1.5 / RFC 4475 §3.1.2.17: the CSeq method matches the request's.
        raise BadRequest(f"CSeq method {cseq.method!r} does not match {request.method!r}", context=context)
    if supported is not None and request.method not in ("ACK", "CANCEL"):
        required: list[str] = []
        for value in request.headers.get_all("Require"):
            required.extend(tag.strip() for tag in value.split(",") if tag.strip())
        unsupported = tuple(tag for tag in required if tag not in supported)
        if unsupported:
            raise BadExtension(unsupported, context=context)
    logger.debug("parsed %s request %s", request.method, request.call_id)
    return request


# The headers a stateless answer and a dialog lookup need (RFC 3261 §8.2.6.2, §12.2.2).
_ROUTING_HEADERS = frozenset(("via", "v", "from", "f", "to", "t", "call-id", "i", "cseq"))


def peek_request(data: bytes, limits: ParserLimits = DEFAULT_LIMITS) -> Request | None:
    """A light view of a request: its start line and the top Via, From, To, Call-ID and CSeq
    only, read without validating the rest, so that a source policy can refuse it before the
    full parse costs anything. None for a response or anything that does not read cleanly (the
    full parse then says what is wrong)."""
    if len(data) > limits.max_message_size:
        return None
    data = data.lstrip(b"\r\n")
    match = _HEAD_END.search(data)
    head = data[: match.start()] if match is not None else data
    lines = _LINE_END.split(head.decode("utf-8", "surrogateescape"))
    start = _split_start_line(lines[0])
    if not start.is_request:
        return None
    items: list[tuple[str, str]] = []
    try:
        method, uri = _request_line(start)
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            name = name.rstrip(" \t").lower()
            if not colon or name not in _ROUTING_HEADERS or len(line) > limits.max_line_length:
                continue
            canonical = canonical_name(name)
            value = value.strip(" \t")
            if canonical == "Via":
                if any(n == "Via" for n, _ in items):
                    continue
                value = split_commas(value, "Via")[0]
            items.append((canonical, value))
        return Request(method, uri, Headers(tuple(items)))
    except (SIPError, ValueError):
        return None
