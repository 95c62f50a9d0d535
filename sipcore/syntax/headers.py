"""Typed values of the SIP headers the UA reads (RFC 3261 §20, grammar in §25.1).

Messages keep header values as text (so that unknown headers and unusual spellings survive);
these functions parse the values the transaction layer and the UA need into frozen value
objects, and write them back with ``str()``. Malformed values raise :class:`BadRequest` naming
the header and quoting the value.
"""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass

from sipcore.errors import BadRequest, SIPError
from sipcore.syntax.uri import URI, SipURI, parse_uri

__all__ = [
    "BRANCH_MAGIC_COOKIE",
    "WARN_AGENT",
    "CSeq",
    "NameAddr",
    "Via",
    "new_branch",
    "new_call_id",
    "new_tag",
    "parse_cseq",
    "parse_max_forwards",
    "parse_name_addr",
    "parse_params",
    "parse_via",
    "quote",
    "split_commas",
    "unquote",
    "warning_value",
]

# RFC 3261 §8.1.1.7: branches of RFC 3261 elements start with this.
BRANCH_MAGIC_COOKIE = "z9hG4bK"
# RFC 3261 §25.1 token.
TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + "-.!%*_+`'~")
MAX_CSEQ = 2**32 - 1  # RFC 3261 §8.1.1.5: a 32-bit unsigned integer.
_PARAM_VALUE_EXTRA = frozenset("[]:")  # host values (IPv6 references) in gen-value
_SENT_PROTOCOL = re.compile(r"([^\s/]+)\s*/\s*([^\s/]+)\s*/\s*([^\s/;]+)\s+(.*)\Z", re.DOTALL)
_CSEQ = re.compile(r"([0-9]{1,12})\s+(\S+)\Z")
# The rest of a quoted-string after its opening quote: qdtext and quoted-pairs (RFC 3261 §25.1).
_QUOTED_REST = re.compile(r'(?:[^"\\]|\\.)*"', re.DOTALL)

Param = tuple[str, str | None]


def _non_ascii(word: str) -> set[str]:
    return {ch for ch in word if ord(ch) > 127 and ch.isprintable()}


def is_digits(text: str) -> bool:
    """ASCII digits only (str.isdigit also accepts '²' and other digits int() refuses)."""
    return bool(text) and text.isascii() and text.isdigit()


def is_token(text: str) -> bool:
    return bool(text) and set(text) <= TOKEN_CHARS


def quote(text: str) -> str:
    """A quoted-string (RFC 3261 §25.1), escaping backslash and double quote."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


WARN_AGENT = "sip-webrtc-gateway"  # a pseudonym (RFC 3261 §20.43 warn-agent)


def warning_value(code: int, text: str, agent: str = WARN_AGENT) -> str:
    """A Warning header value (RFC 3261 §20.43): ``305 agent "text"``; the text is made printable,
    quoted and kept short."""
    if not 300 <= code <= 399:
        raise ValueError(f"a warn-code is 3xx, not {code!r}")
    printable = "".join(ch if ch.isprintable() else " " for ch in text)[:200]
    return f"{code} {agent} {quote(printable)}"


def warning_headers(error: SIPError) -> tuple[tuple[str, str], ...]:
    """The Warning (399 miscellaneous, RFC 3261 §20.43) of a refusal for ``error``, with its detail in
    full: the reason phrase is cut short, the Warning tells the sender's log what was wrong."""
    return (("Warning", warning_value(399, error.detail)),)


def unquote(text: str) -> str:
    """Undo :func:`quote`; a value that is not quoted is returned unchanged."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1], flags=re.DOTALL)
    return text


def _quoted_end(text: str, start: int, header: str) -> int:
    """Index just after the quoted-string opening at ``start``."""
    match = _QUOTED_REST.match(text, start + 1)
    if match is None:
        raise BadRequest(f"unterminated quoted string in {header} {text!r}")
    return match.end()


def split_commas(text: str, header: str = "header") -> list[str]:
    """Split a header value on commas outside quoted strings and ``<>`` (RFC 3261 §7.3.1)."""
    if "," not in text:
        if '"' in text:
            _check_quotes(text, header)
        return [text.strip()]
    if '"' not in text and "<" not in text:
        return [part.strip() for part in text.split(",")]
    parts: list[str] = []
    start = i = 0
    in_angle = False
    while i < len(text):
        ch = text[i]
        if ch == '"':
            i = _quoted_end(text, i, header)
            continue
        if ch == "<":
            in_angle = True
        elif ch == ">":
            in_angle = False
        elif ch == "," and not in_angle:
            parts.append(text[start:i].strip())
            start = i + 1
        i += 1
    parts.append(text[start:].strip())
    return parts


def _check_quotes(text: str, header: str) -> None:
    """Raise as the splitters do when a quoted-string in ``text`` is not terminated."""
    i = text.find('"')
    while i != -1:
        i = text.find('"', _quoted_end(text, i, header))


def _split_semis(text: str, header: str) -> list[str]:
    if '"' not in text:
        return text.split(";")
    parts: list[str] = []
    start = i = 0
    while i < len(text):
        if text[i] == '"':
            i = _quoted_end(text, i, header)
            continue
        if text[i] == ";":
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def parse_params(text: str, header: str) -> tuple[Param, ...]:
    """Parse ``*( SEMI generic-param )`` (RFC 3261 §25.1); ``text`` starts at the first ';'.

    Values are kept as written (a quoted-string keeps its quotes)."""
    text = text.strip()
    if not text:
        return ()
    if not text.startswith(";"):
        raise BadRequest(f"invalid parameters in {header} {text!r}")
    params: list[Param] = []
    for item in _split_semis(text[1:], header):
        name, eq, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not is_token(name):
            raise BadRequest(f"invalid parameter {item.strip()!r} in {header}")
        if eq:
            quoted = value.startswith('"') and value.endswith('"') and len(value) >= 2
            if not quoted and not (value and set(value) <= TOKEN_CHARS | _PARAM_VALUE_EXTRA):
                raise BadRequest(f"invalid value of parameter {name!r} in {header}: {value!r}")
        params.append((name, value if eq else None))
    return tuple(params)


def format_params(params: tuple[Param, ...]) -> str:
    return "".join(f";{name}" if value is None else f";{name}={value}" for name, value in params)


def get_param(params: tuple[Param, ...], name: str) -> str | None:
    """The (unquoted) value of a parameter, '' for a flag, None when absent."""
    lowered = name.lower()
    for key, value in params:
        if key.lower() == lowered:
            return "" if value is None else unquote(value)
    return None


def _set_param(params: tuple[Param, ...], name: str, value: str | None) -> tuple[Param, ...]:
    lowered = name.lower()
    if any(key.lower() == lowered for key, _ in params):
        return tuple((k, value) if k.lower() == lowered else (k, v) for k, v in params)
    return params + ((name, value),)


@dataclass(frozen=True, slots=True)
class Via:
    """One Via value (RFC 3261 §20.42), with RFC 3581 rport/received."""

    transport: str
    host: str
    port: int | None = None
    params: tuple[Param, ...] = ()

    def __post_init__(self) -> None:
        if not is_token(self.transport):
            raise ValueError(f"invalid Via transport {self.transport!r}")
        if not self.host or set(self.host) & set(" \t;,"):
            raise ValueError(f"invalid Via host {self.host!r}")

    def param(self, name: str) -> str | None:
        return get_param(self.params, name)

    def with_param(self, name: str, value: str | None) -> Via:
        return Via(self.transport, self.host, self.port, _set_param(self.params, name, value))

    def without_param(self, name: str) -> Via:
        lowered = name.lower()
        kept = tuple((k, v) for k, v in self.params if k.lower() != lowered)
        return Via(self.transport, self.host, self.port, kept)

    @property
    def branch(self) -> str | None:
        return self.param("branch")

    @property
    def sent_by(self) -> tuple[str, int | None]:
        return self.host, self.port

    def __str__(self) -> str:
        hostport = self.host if self.port is None else f"{self.host}:{self.port}"
        return f"SIP/2.0/{self.transport} {hostport}{format_params(self.params)}"


def parse_via(value: str) -> Via:
    """Parse one Via value (after comma splitting)."""
    match = _SENT_PROTOCOL.match(value.strip())
    if match is None:
        raise BadRequest(f"invalid Via {value!r}")
    name, version, transport, rest = match.groups()
    if name.upper() != "SIP" or version != "2.0":
        raise BadRequest(f"invalid Via protocol {name}/{version!r}")
    sent_by, semi, param_text = rest.partition(";")
    sent_by = sent_by.strip()
    if sent_by.startswith("["):
        end = sent_by.find("]") + 1
        host, port_text = sent_by[:end], sent_by[end:].strip()
    else:
        host, colon, port_text = sent_by.partition(":")
        port_text = colon + port_text
    host, port_text = host.strip(), port_text.strip()
    port: int | None = None
    if port_text:
        digits = port_text[1:].strip()
        if not port_text.startswith(":") or not is_digits(digits) or int(digits) > 65535:
            raise BadRequest(f"invalid Via port in {value!r}")
        port = int(digits)
    params = parse_params(semi + param_text, "Via")
    try:
        return Via(transport.upper(), host, port, params)
    except ValueError as exc:
        raise BadRequest(f"invalid Via {value!r}: {exc}") from None


@dataclass(frozen=True, slots=True)
class CSeq:
    """CSeq (RFC 3261 §20.16)."""

    seq: int
    method: str

    def __post_init__(self) -> None:
        if not 0 <= self.seq <= MAX_CSEQ:
            raise ValueError(f"invalid CSeq number {self.seq!r}")
        if not is_token(self.method):
            raise ValueError(f"invalid CSeq method {self.method!r}")

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


def parse_cseq(value: str) -> CSeq:
    match = _CSEQ.match(value.strip())
    if match is None or int(match.group(1)) > MAX_CSEQ or not is_token(match.group(2)):
        raise BadRequest(f"invalid CSeq {value!r}")
    return CSeq(int(match.group(1)), match.group(2))


def parse_max_forwards(value: str) -> int:
    """Max-Forwards (RFC 3261 §20.22): an integer 0-255."""
    text = value.strip()
    if not is_digits(text) or len(text) > 5 or int(text) > 255:
        raise BadRequest(f"invalid Max-Forwards {value!r}")
    return int(text)


@dataclass(frozen=True, slots=True)
class NameAddr:
    """A name-addr or addr-spec with header parameters: From, To, Contact, Route, Record-Route
    (RFC 3261 §20.10, §20.20, §20.39, §20.34, §20.30)."""

    uri: URI
    display_name: str | None = None
    params: tuple[Param, ...] = ()

    def param(self, name: str) -> str | None:
        return get_param(self.params, name)

    def with_param(self, name: str, value: str | None) -> NameAddr:
        return NameAddr(self.uri, self.display_name, _set_param(self.params, name, value))

    @property
    def tag(self) -> str | None:
        return self.param("tag")

    def __str__(self) -> str:
        # Always the name-addr form: the <> rule (RFC 3261 §20.10) then never bites.
        display = f"{quote(self.display_name)} " if self.display_name is not None else ""
        return f"{display}<{self.uri}>{format_params(self.params)}"


def _display_name(text: str, value: str, header: str) -> str | None:
    text = text.strip()
    if not text:
        return None
    if text.startswith('"'):
        end = _quoted_end(text, 0, header)
        if text[end:].strip():
            raise BadRequest(f"invalid display name in {header} {value!r}")
        return unquote(text[:end])
    # RFC 3261 §25.1 display-name = *(token LWS) / quoted-string; leniently, unquoted UTF-8
    # letters are accepted too (phones send "Jürgen <sip:...>"), separators are not.
    if not all(set(word) <= TOKEN_CHARS | _non_ascii(word) for word in text.split()):
        raise BadRequest(f"invalid display name in {header} {value!r}")
    return " ".join(text.split())


def parse_name_addr(value: str, header: str = "From") -> NameAddr:
    """Parse name-addr / addr-spec with parameters (RFC 3261 §20.10).

    In the addr-spec form (no ``<>``) everything after the first ';' is a header parameter, and
    the URI may not contain ',' or '?'."""
    text = value.strip()
    i = 0
    while True:  # the first '<' outside a quoted display name
        angle, quote_at = text.find("<", i), text.find('"', i)
        if quote_at != -1 and (angle == -1 or quote_at < angle):
            i = _quoted_end(text, quote_at, header)
            continue
        i = angle if angle != -1 else len(text)
        break
    if i < len(text):
        display = _display_name(text[:i], value, header)
        end = text.find(">", i)
        if end == -1:
            raise BadRequest(f"unterminated <> in {header} {value!r}")
        uri_text, rest = text[i + 1 : end], text[end + 1 :]
        if uri_text != uri_text.strip():
            raise BadRequest(f"whitespace inside <> in {header} {value!r}")
    else:
        if '"' in text:
            raise BadRequest(f"display name without <> in {header} {value!r}")
        display = None
        uri_text, semi, rest = text.partition(";")
        uri_text, rest = uri_text.strip(), semi + rest
        if set(uri_text) & set(",? \t"):
            raise BadRequest(f"URI with ',', '?' or spaces must be in <> in {header} {value!r}")
    try:
        uri = parse_uri(uri_text)
    except BadRequest as exc:
        raise BadRequest(f"invalid URI in {header} {value!r}: {exc.detail}") from None
    params = parse_params(rest, header)
    if any(name.lower() == "tag" and not tag for name, tag in params):
        # RFC 3261 §25.1: tag-param = "tag" EQUAL token; without one a dialog id would be empty
        raise BadRequest(f"tag parameter without a value in {header} {value!r}")
    return NameAddr(uri, display, params)


def new_branch() -> str:
    """A fresh branch parameter (RFC 3261 §8.1.1.7): the magic cookie and 96 random bits."""
    return BRANCH_MAGIC_COOKIE + secrets.token_hex(12)


def new_tag() -> str:
    """A From/To tag with at least 32 bits of randomness (RFC 3261 §19.3)."""
    return secrets.token_hex(8)


def new_call_id(host: str | None = None) -> str:
    """A globally unique Call-ID (RFC 3261 §8.1.1.4), ``random@host`` when a host is given."""
    local = secrets.token_hex(16)
    return f"{local}@{host}" if host else local


def is_sip_uri(uri: URI) -> bool:
    return isinstance(uri, SipURI)
