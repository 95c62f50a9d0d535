"""SIP, SIPS and tel URIs (RFC 3261 §19.1, §25.1; RFC 3966), and other absolute URIs.

The user and password of a SIP URI are kept unescaped (``%75se%72`` is ``user``, RFC 3261
§19.1.2) and escaped again when written; URI parameters and headers are kept as written (their
names compare case-insensitively, RFC 3261 §19.1.4) so that unknown ones survive untouched.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from sipcore.errors import BadRequest, UnsupportedURIScheme

__all__ = [
    "URI",
    "AbsoluteURI",
    "SipURI",
    "TelURI",
    "parse_request_uri",
    "parse_uri",
    "percent_decode",
]

# RFC 3261 §25.1 character classes.
_ALNUM = frozenset(string.ascii_letters + string.digits)
_UNRESERVED = _ALNUM | frozenset("-_.!~*'()")
_USER_CHARS = _UNRESERVED | frozenset("&=+$,;?/")
_PASSWORD_CHARS = _UNRESERVED | frozenset("&=+$,")
_PARAM_CHARS = _UNRESERVED | frozenset("[]/:&+$%")
_HEADER_CHARS = _UNRESERVED | frozenset("[]/?:+$%")
_HOST_CHARS = _ALNUM | frozenset("-._")
_IPV6_CHARS = frozenset(string.hexdigits + ":.")
_SCHEME_CHARS = _ALNUM | frozenset("+-.")
_HEX = frozenset(string.hexdigits)
# RFC 3966 §3: visual separators, digits, and the characters of local numbers/parameters.
_TEL_CHARS = _ALNUM | frozenset("+-.()*#;=%[]/:&$_~!'")
# Absolute URIs (RFC 3986 §2): anything visible but quotes, angle brackets and spaces.
_OPAQUE_FORBIDDEN = frozenset(' "<>\\^`{|}') | frozenset(chr(c) for c in range(0x20)) | {"\x7f"}

SIP_SCHEMES = frozenset({"sip", "sips"})
REQUEST_URI_SCHEMES = frozenset({"sip", "sips", "tel"})

Param = tuple[str, str | None]


def _check_escapes(text: str, what: str) -> None:
    index = text.find("%")
    while index != -1:
        if len(text) < index + 3 or not set(text[index + 1 : index + 3]) <= _HEX:
            raise BadRequest(f"invalid escape in {what} {text!r}")
        index = text.find("%", index + 3)


def percent_decode(text: str, what: str = "URI") -> str:
    """Undo %XX escapes (RFC 3261 §19.1.2); bytes that are not UTF-8 survive as surrogates."""
    if "%" not in text:
        return text
    _check_escapes(text, what)
    out = bytearray()
    i = 0
    while i < len(text):
        if text[i] == "%":
            out.append(int(text[i + 1 : i + 3], 16))
            i += 3
        else:
            out += text[i].encode("utf-8", "surrogateescape")
            i += 1
    return out.decode("utf-8", "surrogateescape")


def _escape(text: str, allowed: frozenset[str]) -> str:
    if allowed.issuperset(text):
        return text
    return "".join(
        ch if ch in allowed else "".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogateescape"))
        for ch in text
    )


def _validate(text: str, allowed: frozenset[str], what: str, *, empty_ok: bool = False) -> None:
    if not text and not empty_ok:
        raise BadRequest(f"empty {what}")
    if allowed.issuperset(text) and "%" not in text:
        return
    bad = set(text) - allowed - {"%"}
    if bad:
        raise BadRequest(f"invalid character {min(bad)!r} in {what} {text!r}")
    _check_escapes(text, what)


def _parse_params(text: str, allowed: frozenset[str], what: str) -> tuple[Param, ...]:
    params: list[Param] = []
    for item in text.split(";"):
        name, sep, value = item.partition("=")
        _validate(name, allowed, f"{what} name")
        if sep:
            _validate(value, allowed, f"{what} value")
        params.append((name, value if sep else None))
    return tuple(params)


def _format_params(params: tuple[Param, ...]) -> str:
    return "".join(f";{name}" if value is None else f";{name}={value}" for name, value in params)


def _param(params: tuple[Param, ...], name: str) -> str | None:
    """The value of a parameter ('' for a flag), None when absent; names are case-insensitive."""
    lowered = name.lower()
    for key, value in params:
        if key.lower() == lowered:
            return "" if value is None else value
    return None


@dataclass(frozen=True, slots=True)
class SipURI:
    """A sip: or sips: URI (RFC 3261 §19.1.1)."""

    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: tuple[Param, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    scheme: str = "sip"

    def __post_init__(self) -> None:
        if self.scheme not in SIP_SCHEMES:
            raise ValueError(f"SipURI scheme must be sip or sips, not {self.scheme!r}")
        _validate_host(self.host)
        if self.port is not None and not 0 <= self.port <= 65535:
            raise ValueError(f"invalid port {self.port!r}")
        if self.password is not None and self.user is None:
            raise ValueError(f"password without user in {self.host!r}")
        try:
            for name, value in self.params:
                _validate(name, _PARAM_CHARS, "URI parameter name")
                if value is not None:
                    _validate(value, _PARAM_CHARS, "URI parameter value")
            for name, value in self.headers:
                _validate(name, _HEADER_CHARS, "URI header name")
                _validate(value, _HEADER_CHARS, "URI header value", empty_ok=True)
        except BadRequest as exc:
            raise ValueError(exc.detail) from None

    def param(self, name: str) -> str | None:
        return _param(self.params, name)

    def with_params(self, **params: str | None) -> SipURI:
        """Replace or add parameters (None value: a flag such as ``lr``)."""
        lowered = {k.lower() for k in params}
        kept = tuple(p for p in self.params if p[0].lower() not in lowered)
        return SipURI(
            self.host,
            self.user,
            self.password,
            self.port,
            kept + tuple(params.items()),
            self.headers,
            self.scheme,
        )

    @property
    def hostport(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        userinfo = ""
        if self.user is not None:
            userinfo = _escape(self.user, _USER_CHARS)
            if self.password is not None:
                userinfo += ":" + _escape(self.password, _PASSWORD_CHARS)
            userinfo += "@"
        headers = "&".join(f"{k}={v}" for k, v in self.headers)
        tail = f"?{headers}" if headers else ""
        return f"{self.scheme}:{userinfo}{self.hostport}{_format_params(self.params)}{tail}"


@dataclass(frozen=True, slots=True)
class TelURI:
    """A tel: URI (RFC 3966): a number and its parameters."""

    number: str
    params: tuple[Param, ...] = ()

    def __post_init__(self) -> None:
        if not self.number or not set(self.number) <= _TEL_CHARS - {";"}:
            raise ValueError(f"invalid telephone number {self.number!r}")

    @property
    def scheme(self) -> str:
        return "tel"

    def param(self, name: str) -> str | None:
        return _param(self.params, name)

    def __str__(self) -> str:
        return f"tel:{self.number}{_format_params(self.params)}"


@dataclass(frozen=True, slots=True)
class AbsoluteURI:
    """Any other absolute URI (RFC 3261 §25.1 absoluteURI), kept opaque."""

    scheme: str
    rest: str

    def __post_init__(self) -> None:
        if not self.scheme or not set(self.scheme) <= _SCHEME_CHARS or not self.scheme[0].isalpha():
            raise ValueError(f"invalid URI scheme {self.scheme!r}")
        if not self.rest or set(self.rest) & _OPAQUE_FORBIDDEN:
            raise ValueError(f"invalid URI {self.scheme}:{self.rest!r}")

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"


URI = SipURI | TelURI | AbsoluteURI


def _validate_host(host: str) -> None:
    if host.startswith("["):
        # RFC 3261 §25.1 IPv6reference.
        if not host.endswith("]") or len(host) < 4 or not set(host[1:-1]) <= _IPV6_CHARS:
            raise ValueError(f"invalid IPv6 reference {host!r}")
        return
    if not host or not set(host) <= _HOST_CHARS or host.startswith((".", "-")):
        raise ValueError(f"invalid host {host!r}")


def _parse_hostport(text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        end = text.find("]")
        host, rest = (text[: end + 1], text[end + 1 :]) if end != -1 else (text, "")
    else:
        host, colon, port_text = text.partition(":")
        rest = colon + port_text
    port: int | None = None
    if rest:
        if not rest.startswith(":") or not (rest[1:].isascii() and rest[1:].isdigit()) or len(rest) > 6:
            raise BadRequest(f"invalid port in {text!r}")
        port = int(rest[1:])
    try:
        _validate_host(host)
        if port is not None and port > 65535:
            raise ValueError(f"invalid port {port!r}")
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return host, port


def _parse_sip(scheme: str, rest: str) -> SipURI:
    user = password = None
    at = rest.find("@")
    if at != -1:
        userinfo, rest = rest[:at], rest[at + 1 :]
        user_text, colon, password_text = userinfo.partition(":")
        _validate(user_text, _USER_CHARS, "URI user")
        user = percent_decode(user_text)
        if colon:
            _validate(password_text, _PASSWORD_CHARS, "URI password", empty_ok=True)
            password = percent_decode(password_text)
    rest, qmark, header_text = rest.partition("?")
    hostport, semi, param_text = rest.partition(";")
    host, port = _parse_hostport(hostport)
    params = _parse_params(param_text, _PARAM_CHARS, "URI parameter") if semi else ()
    headers: list[tuple[str, str]] = []
    if qmark:
        for item in header_text.split("&"):
            name, eq, value = item.partition("=")
            if not eq:
                raise BadRequest(f"invalid URI header {item!r}")
            _validate(name, _HEADER_CHARS, "URI header name")
            _validate(value, _HEADER_CHARS, "URI header value", empty_ok=True)
            headers.append((name, value))
    try:
        return SipURI(host, user, password, port, params, tuple(headers), scheme)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def parse_uri(text: str) -> URI:
    """Parse a URI as found in a Request-URI or inside ``<>`` (RFC 3261 §19.1, §25.1)."""
    scheme, colon, rest = text.partition(":")
    if not colon or not scheme or not set(scheme) <= _SCHEME_CHARS or not scheme[0].isalpha():
        raise BadRequest(f"invalid URI {text!r}")
    scheme = scheme.lower()
    if scheme in SIP_SCHEMES:
        return _parse_sip(scheme, rest)
    try:
        if scheme == "tel":
            number, semi, param_text = rest.partition(";")
            params = _parse_params(param_text, _TEL_CHARS - {";", "="}, "tel parameter") if semi else ()
            return TelURI(number, params)
        return AbsoluteURI(scheme, rest)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def parse_request_uri(text: str) -> URI:
    """Parse a Request-URI: sip, sips and tel only (RFC 3261 §8.2.2.1: else 416), no URI
    headers (RFC 3261 §19.1.1 table: headers are not allowed in a Request-URI)."""
    scheme = text.partition(":")[0].lower()
    uri = parse_uri(text)
    if scheme not in REQUEST_URI_SCHEMES:
        raise UnsupportedURIScheme(f"unsupported URI scheme {scheme!r} in Request-URI")
    if isinstance(uri, SipURI) and uri.headers:
        raise BadRequest(f"headers not allowed in Request-URI {text!r}")
    return uri
