"""The identity map's SIP address: scheme, user, host, port, read with the SIP core's URI parser.

There is one SIP URI parser in the gateway, :func:`sipcore.syntax.uri.parse_uri`; this module only
projects its result onto what identifies a user (RFC 3261 §19.1.4: the user part compares after
%-unescaping, so ``sip:%61lice@host`` is alice; hosts compare case-insensitively, so the host is
kept lower-cased). Two readings of a URI text:

- :meth:`SipAddress.parse`, for addresses the gateway is given (config, Request-URI, To): a bare
  URI or a name-addr (``"Alice" <sip:1001@pbx>;tag=x``); URI parameters and a password are not
  part of an address and are left out. URI headers (``?Subject=x``) are an error: RFC 3261
  §19.1.1 allows them in none of the places an address comes from.
- :meth:`SipAddress.parse_dialed`, for a SIP URI a web user dialed: nothing may be left out, so
  that the outbound policy checks exactly the address the INVITE goes to.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Final

from gateway.identity.errors import IdentityError
from sipcore.errors import SIPError
from sipcore.syntax.headers import parse_name_addr
from sipcore.syntax.uri import SipURI, parse_uri

__all__ = ["SipAddress", "dialed_sip_uri"]

# What a dialed SIP URI may hold (RFC 3261 §25.1), checked on top of the SIP core's grammar: a user
# of unreserved characters, escapes and the user-unreserved ones that cannot confuse a parser (not
# `;`, `?`, `/`, `:`), even once unescaped; and only the parameters that do not change where a proxy
# sends the request: `maddr` would make the PBX relay the call to any host (§16.5), URI headers
# (`?Route=...`) inject headers.
_DIAL_USER_CHARS: Final = frozenset(string.ascii_letters + string.digits + "-_.!~*'()&=+$,#")
_DIAL_PARAMS: Final = frozenset({"user", "transport"})
_DIAL_PARAM_VALUE_CHARS: Final = frozenset(string.ascii_letters + string.digits + "-_.")


def dialed_sip_uri(text: str) -> str | None:
    """The SIP URI that dialed `text` names, or None when it names none (a number, a name).

    A `sip:` or `sips:` URI (any case) is taken as it is and `user@host` gets `sip:` in front; what
    comes back is still to be checked with :meth:`SipAddress.parse_dialed`. The one place the
    gateway tells a dialed SIP URI from a number (the outbound policy, dialing, finding a web user).
    """
    if text.lower().startswith(("sip:", "sips:")):
        return text
    if "@" in text:
        return f"sip:{text}"
    return None


@dataclass(frozen=True, slots=True)
class SipAddress:
    """`sip:user@host[:port]`, the user unescaped and the host lower-cased."""

    scheme: str
    user: str | None
    host: str
    port: int | None = None

    def __post_init__(self) -> None:
        if self.scheme not in ("sip", "sips"):
            raise IdentityError(f"expected a sip: or sips: URI, got scheme {self.scheme!r}")
        if self.user == "":
            raise IdentityError("empty user part in SIP URI")
        if self.port is not None and not 1 <= self.port <= 65535:
            raise IdentityError(f"bad port {self.port!r} in SIP URI")
        try:
            SipURI(self.host, self.user, port=self.port, scheme=self.scheme)  # the core's host grammar
        except ValueError as exc:
            raise IdentityError(f"bad host in SIP URI: {exc}") from None
        if self.host != self.host.lower():
            object.__setattr__(self, "host", self.host.lower())

    @classmethod
    def from_uri(cls, uri: SipURI) -> SipAddress:
        """The address of a URI the SIP core has parsed (parameters and password left out)."""
        return cls(uri.scheme, uri.user, uri.host, uri.port)

    @classmethod
    def parse(cls, text: str) -> SipAddress:
        """A bare SIP URI or a name-addr; IdentityError quoting `text` when it is neither."""
        uri = _parse(text)
        if uri.headers:
            raise IdentityError(f"URI headers are not part of an address: {text[:80]!r}")
        return cls._from_parsed(uri, text)

    @classmethod
    def parse_dialed(cls, text: str) -> SipAddress:
        """A SIP URI a web user dialed, parsed strictly: the address it names is all it may hold.

        Unlike `parse`, nothing is left out: a name-addr, a password, URI headers or parameters
        other than `user` and `transport` raise IdentityError, and so does a user part whose
        characters (escaped or not) could change how a proxy reads the URI.
        """
        scheme = text.strip().partition(":")[0]
        if scheme.lower() not in ("sip", "sips"):
            raise IdentityError(f"not a SIP URI: {text[:80]!r}")
        uri = _parse(text, name_addr=False)
        if uri.headers:
            raise IdentityError(f"URI headers are not allowed in a dialed SIP URI: {text[:80]!r}")
        if uri.user is None:
            raise IdentityError(f"a dialed SIP URI needs a user part: {text[:80]!r}")
        if uri.password is not None:
            raise IdentityError(f"character ':' not allowed in the user part of {text[:80]!r}")
        bad = set(uri.user) - _DIAL_USER_CHARS
        if bad:
            raise IdentityError(f"character {min(bad)!r} not allowed in the user part of {text[:80]!r}")
        for name, value in uri.params:
            if name.lower() not in _DIAL_PARAMS or not value or set(value) - _DIAL_PARAM_VALUE_CHARS:
                shown = name if value is None else f"{name}={value}"
                raise IdentityError(f"URI parameter {shown[:40]!r} is not allowed in a dialed SIP URI")
        return cls._from_parsed(uri, text)

    @classmethod
    def _from_parsed(cls, uri: SipURI, text: str) -> SipAddress:
        try:
            return cls.from_uri(uri)
        except IdentityError as exc:
            raise IdentityError(f"{exc} in {text[:80]!r}") from None

    @property
    def aor(self) -> str:
        """The address of record: `sip:user@host` without port (the key the PBX registers)."""
        return str(SipURI(self.host, self.user, scheme=self.scheme))

    def __str__(self) -> str:
        return str(SipURI(self.host, self.user, port=self.port, scheme=self.scheme))


def _parse(text: str, *, name_addr: bool = True) -> SipURI:
    """The SIP core's reading of `text`, as a sip:/sips: URI; IdentityError otherwise."""
    raw = text.strip()
    try:
        uri = parse_name_addr(raw, "address").uri if name_addr and "<" in raw else parse_uri(raw)
    except SIPError as exc:
        raise IdentityError(f"{exc.detail} in {text[:80]!r}") from None
    if not isinstance(uri, SipURI):
        raise IdentityError(f"expected a sip: or sips: URI, got {text[:80]!r}")
    return uri
