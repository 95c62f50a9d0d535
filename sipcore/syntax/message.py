"""SIP requests and responses (RFC 3261 §7) and their header container.

Header values are kept as text, one value per entry (multi-value headers are split on commas
by the parser), under their canonical names; compact forms are expanded (RFC 3261 §7.3.3).
Content-Length is not a header here: it is framing, computed from the body when the message
is written (as h11 does for HTTP).
"""

from __future__ import annotations

import enum
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar, cast

from sipcore.errors import BadRequest, SIPError
from sipcore.syntax.headers import (
    BRANCH_MAGIC_COOKIE,
    CSeq,
    NameAddr,
    Via,
    new_tag,
    parse_cseq,
    parse_name_addr,
    parse_via,
)
from sipcore.syntax.uri import URI

__all__ = [
    "COMPACT_FORMS",
    "REASON_PHRASES",
    "Headers",
    "KeyKind",
    "Message",
    "Request",
    "Response",
    "TransactionKey",
    "add_received",
    "canonical_name",
    "client_transaction_key",
    "error_response",
    "make_response",
    "server_transaction_key",
]

# RFC 3261 §7.3.3 and later RFCs (RFC 3515, 3841, 3892, 4028, 6665, 8224).
# fmt: off
COMPACT_FORMS: dict[str, str] = {
    "a": "Accept-Contact", "b": "Referred-By", "c": "Content-Type", "d": "Request-Disposition",
    "e": "Content-Encoding", "f": "From", "i": "Call-ID", "j": "Reject-Contact", "k": "Supported",
    "l": "Content-Length", "m": "Contact", "n": "Identity-Info", "o": "Event", "r": "Refer-To",
    "s": "Subject", "t": "To", "u": "Allow-Events", "v": "Via", "x": "Session-Expires",
    "y": "Identity",
}
_KNOWN_NAMES = (
    "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow",
    "Allow-Events", "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact",
    "Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length", "Content-Type",
    "CSeq", "Date", "Error-Info", "Event", "Expires", "From", "Identity", "Identity-Info",
    "In-Reply-To", "Max-Forwards", "Min-Expires", "Min-SE", "MIME-Version", "Organization",
    "P-Asserted-Identity", "P-Preferred-Identity", "Path", "Priority", "Privacy",
    "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "RAck", "Reason", "Record-Route",
    "Refer-To", "Referred-By", "Reject-Contact", "Reply-To", "Request-Disposition", "Require",
    "Retry-After", "Route", "RSeq", "Server", "Service-Route", "Session-Expires", "SIP-ETag",
    "SIP-If-Match", "Subject", "Subscription-State", "Supported", "Timestamp", "To", "Unsupported",
    "User-Agent", "Via", "Warning", "WWW-Authenticate",
)
# fmt: on
_CANONICAL = {name.lower(): name for name in _KNOWN_NAMES}
T = TypeVar("T")
_TOKEN = frozenset(string.ascii_letters + string.digits + "-.!%*_+`'~")
# Lowercase name (compact form included) -> lowercase canonical name, for lookups.
_LOOKUP = {**{name: name for name in _CANONICAL}, **{k: v.lower() for k, v in COMPACT_FORMS.items()}}
_KNOWN = frozenset(_KNOWN_NAMES)


def canonical_name(name: str) -> str:
    """Canonical spelling of a header name; compact forms expanded, unknown names kept."""
    lowered = name.lower()
    if lowered in COMPACT_FORMS:
        return COMPACT_FORMS[lowered]
    return _CANONICAL.get(lowered, name)


@dataclass(frozen=True, slots=True)
class Headers:
    """An ordered, immutable list of ``(name, value)``; lookups ignore case."""

    items: tuple[tuple[str, str], ...] = ()
    # Values by lowercase canonical name, built once (lookups are the hot path of the layer).
    _index: dict[str, tuple[str, ...]] | None = field(default=None, init=False, repr=False, compare=False)
    # The first value of Via, CSeq, From, To parsed once (headers are immutable): see first().
    _parsed: dict[str, object] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        canonical = []
        for name, value in self.items:
            if name not in _KNOWN and (not name or not set(name) <= _TOKEN):
                raise ValueError(f"invalid header name {name!r}")
            if "\r" in value or "\n" in value:
                raise ValueError(f"line break in {name} value {value!r}")
            if not value.isascii():
                try:
                    value.encode("utf-8", "surrogateescape")
                except UnicodeEncodeError:
                    raise ValueError(f"{name} value cannot be written: {value!r}") from None
            if name not in _KNOWN:
                name = canonical_name(name)
            if name == "Content-Length":
                raise ValueError("Content-Length is computed from the body, not a header")
            canonical.append((name, value))
        object.__setattr__(self, "items", tuple(canonical))

    def _build_index(self) -> dict[str, tuple[str, ...]]:
        index: dict[str, list[str]] = {}
        for name, value in self.items:
            index.setdefault(name.lower(), []).append(value)
        built = {key: tuple(values) for key, values in index.items()}
        object.__setattr__(self, "_index", built)
        return built

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def get(self, name: str) -> str | None:
        """First value of a header, None when absent."""
        values = self.get_all(name)
        return values[0] if values else None

    def get_all(self, name: str) -> tuple[str, ...]:
        index = self._index if self._index is not None else self._build_index()
        lowered = name.lower()
        return index.get(_LOOKUP.get(lowered, lowered), ())

    def tags(self, *names: str) -> frozenset[str]:
        """The option tags listed in headers ``names`` (Supported, Require...), lower-cased."""
        return frozenset(
            tag.strip().lower() for name in names for value in self.get_all(name) for tag in value.split(",")
        ) - {""}

    def first(self, name: str, parse: Callable[[str], T]) -> T | None:
        """The first value of ``name`` (a canonical name) parsed with ``parse``, which must
        always be the same function for a name; parsed once, then remembered (errors are not)."""
        cache = self._parsed
        if name in cache:
            return cast(T, cache[name])
        values = self.get_all(name)
        if not values:
            return None
        parsed = parse(values[0])
        cache[name] = parsed
        return parsed

    def remember(self, name: str, parsed: object) -> None:
        """Record the parse of the first value of ``name`` (the parser validates it anyway)."""
        self._parsed.setdefault(name, parsed)

    def _derived(self, items: tuple[tuple[str, str], ...], changed: str) -> Headers:
        """New headers that differ from these in ``changed`` only: the parses of the other
        names are still valid and carried over."""
        headers = Headers(items)
        if self._parsed:
            kept = canonical_name(changed)
            headers._parsed.update((k, v) for k, v in self._parsed.items() if k != kept)
        return headers

    def add(self, name: str, value: str) -> Headers:
        """Append a value at the end."""
        return self._derived(self.items + ((name, value),), name)

    def prepend(self, name: str, value: str) -> Headers:
        """Insert a value before the first one of the same name (a Via on top, RFC 3261 §8.1.1.7),
        or at the start when there is none."""
        wanted = canonical_name(name).lower()
        items = list(self.items)
        index = next((i for i, (key, _) in enumerate(items) if key.lower() == wanted), 0)
        items.insert(index, (name, value))
        return self._derived(tuple(items), name)

    def remove(self, name: str) -> Headers:
        wanted = canonical_name(name).lower()
        return self._derived(tuple(item for item in self.items if item[0].lower() != wanted), name)

    def replace(self, name: str, *values: str) -> Headers:
        """Put ``values`` where the first value of ``name`` was (at the end when absent)."""
        wanted = canonical_name(name).lower()
        items = list(self.items)
        index = next((i for i, (key, _) in enumerate(items) if key.lower() == wanted), len(items))
        kept = [item for item in items[:index]] + [
            item for item in items[index:] if item[0].lower() != wanted
        ]
        kept[index:index] = [(name, value) for value in values]
        return self._derived(tuple(kept), name)


_EMPTY = Headers()


def _parse_from(value: str) -> NameAddr:
    return parse_name_addr(value, "From")


def _parse_to(value: str) -> NameAddr:
    return parse_name_addr(value, "To")


def _tag_of_to(headers: Headers) -> str | None:
    to = headers.first("To", _parse_to)
    return to.tag if to is not None else None


class _Accessors:
    """Typed views of the headers every message has (parsed on access)."""

    __slots__ = ()
    headers: Headers

    @property
    def vias(self) -> tuple[Via, ...]:
        return tuple(parse_via(value) for value in self.headers.get_all("Via"))

    @property
    def top_via(self) -> Via | None:
        return self.headers.first("Via", parse_via)

    @property
    def cseq(self) -> CSeq | None:
        return self.headers.first("CSeq", parse_cseq)

    @property
    def from_(self) -> NameAddr | None:
        return self.headers.first("From", _parse_from)

    @property
    def to(self) -> NameAddr | None:
        return self.headers.first("To", _parse_to)

    @property
    def call_id(self) -> str | None:
        return self.headers.get("Call-ID")

    @property
    def contacts(self) -> tuple[NameAddr, ...]:
        """Contact values; () for none and for the REGISTER wildcard ``*``."""
        values = self.headers.get_all("Contact")
        return tuple(parse_name_addr(v, "Contact") for v in values if v.strip() != "*")


@dataclass(frozen=True, slots=True)
class Request(_Accessors):
    """A SIP request (RFC 3261 §7.1)."""

    method: str
    uri: URI
    headers: Headers = field(default=_EMPTY)
    body: bytes = b""

    def __post_init__(self) -> None:
        if not self.method or not set(self.method) <= _TOKEN:
            raise ValueError(f"invalid method {self.method!r}")

    def serialize(self) -> bytes:
        return _serialize(f"{self.method} {self.uri} SIP/2.0", self.headers, self.body)


@dataclass(frozen=True, slots=True)
class Response(_Accessors):
    """A SIP response (RFC 3261 §7.2)."""

    status: int
    reason: str = ""
    headers: Headers = field(default=_EMPTY)
    body: bytes = b""

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 699:
            raise ValueError(f"invalid status code {self.status!r}")
        if any(ch in self.reason for ch in "\r\n"):
            raise ValueError(f"line break in reason phrase {self.reason!r}")

    def serialize(self) -> bytes:
        return _serialize(f"SIP/2.0 {self.status} {self.reason}", self.headers, self.body)


Message = Request | Response


def _serialize(start_line: str, headers: Headers, body: bytes) -> bytes:
    """RFC 3261 §7: start line, one line per header value, Content-Length (always, §20.14),
    an empty line, the body; CRLF throughout."""
    lines = [start_line]
    lines.extend(f"{name}: {value}" for name, value in headers)
    lines.append(f"Content-Length: {len(body)}")
    head = "\r\n".join(lines) + "\r\n\r\n"
    return head.encode("utf-8", "surrogateescape") + body


# RFC 3261 §21 (and RFC 3262, 3903, 4028, 5079, 6665) reason phrases for responses we build.
# fmt: off
REASON_PHRASES: dict[int, str] = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 199: "Early Dialog Terminated", 200: "OK", 202: "Accepted",
    204: "No Notification", 300: "Multiple Choices", 301: "Moved Permanently",
    302: "Moved Temporarily", 305: "Use Proxy", 380: "Alternative Service", 400: "Bad Request",
    401: "Unauthorized", 402: "Payment Required", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 406: "Not Acceptable", 407: "Proxy Authentication Required",
    408: "Request Timeout", 410: "Gone", 412: "Conditional Request Failed",
    413: "Request Entity Too Large", 414: "Request-URI Too Long", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 420: "Bad Extension", 421: "Extension Required",
    422: "Session Interval Too Small", 423: "Interval Too Brief", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    484: "Address Incomplete", 485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 489: "Bad Event", 491: "Request Pending", 493: "Undecipherable",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    513: "Message Too Large", 600: "Busy Everywhere", 603: "Decline",
    604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}
# fmt: on


def _response_from_headers(
    headers: Headers,
    status: int,
    reason: str,
    to_tag: str | None,
    extra: tuple[tuple[str, str], ...] = (),
) -> Response:
    """RFC 3261 §8.2.6.2: copy Via (all, in order), From, To, Call-ID and CSeq; add a To tag
    (except to 100 Trying) when the request had none."""
    items: list[tuple[str, str]] = [("Via", via) for via in headers.get_all("Via")]
    for name in ("From", "To", "Call-ID", "CSeq"):
        value = headers.get(name)
        if value is None:
            continue
        if name == "To" and status != 100 and _tag_of_to(headers) is None:
            value = f"{value};tag={to_tag or new_tag()}"
        items.append((name, value))
    if status == 100:
        # RFC 3261 §8.2.6.1: a 100 Trying copies Timestamp.
        items.extend(("Timestamp", value) for value in headers.get_all("Timestamp"))
    items.extend(extra)
    return Response(status, reason, Headers(tuple(items)))


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: tuple[tuple[str, str], ...] = (),
    body: bytes = b"",
) -> Response:
    """Build a response to ``request`` (RFC 3261 §8.2.6); ``to_tag`` is the dialog's local tag
    (a fresh one when None and the To has none)."""
    response = _response_from_headers(
        request.headers,
        status,
        REASON_PHRASES.get(status, "") if reason is None else reason,
        to_tag,
        headers,
    )
    return Response(response.status, response.reason, response.headers, body)


def error_response(error: SIPError, *, to_tag: str | None = None) -> Response | None:
    """The response owed for a message that failed to parse, or None when it must be dropped
    (a response, an ACK, or a request without the headers a response needs)."""
    if not error.answerable or error.context is None or error.status is None:
        return None
    try:
        return _response_from_headers(
            error.context.headers, error.status, error.reason_phrase, to_tag, error.extra_headers()
        )
    except SIPError:
        # A To header too broken to carry a tag: copy it as it is.
        return _response_from_headers(
            error.context.headers.replace("To"),
            error.status,
            error.reason_phrase,
            to_tag,
            (("To", error.context.headers.get("To") or ""),) + error.extra_headers(),
        )


def add_received(request: Request, source: tuple[str, int]) -> Request:
    """RFC 3261 §18.2.1 and RFC 3581 §4: rewrite ``received`` on the top Via from the real
    source, never trusting the sender's own.

    ``received`` is set to the source IP when it differs from sent-by (always when ``rport`` is
    present, and ``rport`` then gets the source port); when sent-by already is the source IP a
    ``received`` the sender put there is removed, so that a response can never be steered to a
    third party by a forged ``received``."""
    values = request.headers.get_all("Via")
    if not values:
        return request
    host, port = source
    via = request.top_via
    if via is None:
        return request
    rport = via.param("rport")
    if rport is not None:
        via = via.with_param("received", host).with_param("rport", str(port))
    elif via.host.strip("[]").lower() != host.strip("[]").lower():
        via = via.with_param("received", host)
    elif via.param("received") is not None:
        via = via.without_param("received")
    else:
        return request
    headers = request.headers.replace("Via", str(via), *values[1:])
    headers.remember("Via", via)
    return Request(request.method, request.uri, headers, request.body)


class KeyKind(enum.Enum):
    """How a transaction is identified (RFC 3261 §17.2.3)."""

    RFC3261 = "rfc3261"  # branch with the magic cookie
    RFC2543 = "rfc2543"  # older elements: built from the request's fields


@dataclass(frozen=True, slots=True)
class TransactionKey:
    """Hashable transaction identity. ``method`` is that of the request that created the
    transaction: INVITE for an ACK to a non-2xx final response (RFC 3261 §17.2.3)."""

    kind: KeyKind
    method: str
    branch: str = ""
    sent_by: str = ""
    legacy: tuple[str, ...] = ()


def _has_rfc3261_branch(via: Via) -> bool:
    branch = via.branch
    # RFC 3261 §8.1.1.7; a bare magic cookie (RFC 4475 §3.2.1 badbranch) is not unique.
    return branch is not None and branch.startswith(BRANCH_MAGIC_COOKIE) and len(branch) > 7


def server_transaction_key(request: Request, *, cancelled: bool = False) -> TransactionKey:
    """Key of the server transaction a request belongs to (RFC 3261 §17.2.3).

    An ACK maps to its INVITE transaction. With ``cancelled=True`` a CANCEL maps to the
    INVITE it cancels (RFC 3261 §9.2). RFC 2543 requests (no magic cookie) are keyed by
    Request-URI, From tag, Call-ID, CSeq number and top Via; the To tag is left out because the
    ACK carries the tag our response added."""
    via = request.top_via
    cseq = request.cseq
    if via is None or cseq is None:
        raise BadRequest("request without Via or CSeq has no transaction")
    method = request.method
    if method == "ACK" or (cancelled and method == "CANCEL"):
        method = "INVITE"
    host, port = via.sent_by
    sent_by = f"{host.lower()}:{port if port is not None else ''}"
    if _has_rfc3261_branch(via):
        return TransactionKey(KeyKind.RFC3261, method, str(via.branch), sent_by)
    from_ = request.from_
    legacy = (
        str(request.uri),
        (from_.tag or "") if from_ else "",
        request.call_id or "",
        str(cseq.seq),
        str(via),
    )
    return TransactionKey(KeyKind.RFC2543, method, legacy=legacy)


def client_transaction_key(message: Request | Response) -> TransactionKey:
    """Key matching a response to the client transaction that sent the request
    (RFC 3261 §17.1.3): top Via branch and CSeq method."""
    via = message.top_via
    cseq = message.cseq
    if via is None or cseq is None or via.branch is None:
        raise BadRequest("message without Via branch or CSeq matches no client transaction")
    method = message.method if isinstance(message, Request) else cseq.method
    return TransactionKey(KeyKind.RFC3261, method, via.branch)
