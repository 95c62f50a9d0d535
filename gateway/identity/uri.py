"""Just enough SIP URI handling for the identity map (RFC 3261 §19.1): scheme, user, host, port.

Parameters and headers are dropped; `gateway/sip` owns full URI parsing. Accepts a bare URI
(`sip:1001@pbx.example.org;transport=udp`) or a name-addr (`"Alice" <sip:1001@pbx>;tag=x`).
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Final

from gateway.identity.errors import IdentityError

# What a dialed SIP URI may hold (RFC 3261 §25.1): a user of unreserved characters, escapes and the
# user-unreserved ones that cannot confuse a parser (not `;`, `?`, `/`, `:`), a host, a port, and only
# the parameters that do not change where a proxy sends the request: `maddr` would make the PBX relay
# the call to any host (§16.5), URI headers (`?Route=...`) inject headers.
_DIAL_USER_CHARS: Final = frozenset(string.ascii_letters + string.digits + "-_.!~*'()&=+$,%")
_DIAL_HOST_CHARS: Final = frozenset(string.ascii_letters + string.digits + "-._[]:")
_DIAL_PARAMS: Final = frozenset({"user", "transport"})
_DIAL_PARAM_VALUE_CHARS: Final = frozenset(string.ascii_letters + string.digits + "-_.")


@dataclass(frozen=True, slots=True)
class SipAddress:
    """`sip:user@host[:port]`, the host lower-cased (RFC 3261 §19.1.4: hosts compare case-insensitively)."""

    scheme: str
    user: str | None
    host: str
    port: int | None = None

    def __post_init__(self) -> None:
        if self.scheme not in ("sip", "sips"):
            raise IdentityError(f"expected a sip: or sips: URI, got scheme {self.scheme!r}")
        if not self.host or any(c in self.host for c in " <>@;?"):
            raise IdentityError(f"bad host {self.host!r} in SIP URI")
        if self.host != self.host.lower():
            object.__setattr__(self, "host", self.host.lower())
        if self.user == "":
            raise IdentityError("empty user part in SIP URI")
        if self.port is not None and not 1 <= self.port <= 65535:
            raise IdentityError(f"bad port {self.port!r} in SIP URI")

    @classmethod
    def parse(cls, text: str) -> SipAddress:
        raw = text.strip()
        if "<" in raw:
            start, end = raw.find("<"), raw.find(">")
            if end < start:
                raise IdentityError(f"unclosed '<' in {text!r}")
            raw = raw[start + 1 : end]
        scheme, colon, rest = raw.partition(":")
        if not colon:
            raise IdentityError(f"not a SIP URI: {text!r}")
        rest = rest.split(";", 1)[0].split("?", 1)[0]
        user: str | None = None
        if "@" in rest:
            user, rest = rest.rsplit("@", 1)
            user = user.split(":", 1)[0]  # drop a password (deprecated, RFC 3261 §19.1.1)
        host, port = rest, None
        if host.startswith("["):  # IPv6 reference
            close = host.find("]")
            if close < 0:
                raise IdentityError(f"unclosed '[' in {text!r}")
            host, tail = host[: close + 1], host[close + 1 :]
            if tail:
                port = _port(tail, text)
        elif ":" in host:
            host, tail = host.split(":", 1)
            port = _port(":" + tail, text)
        try:
            return cls(scheme.lower(), user, host, port)
        except IdentityError as exc:
            raise IdentityError(f"{exc} in {text!r}") from None

    @classmethod
    def parse_dialed(cls, text: str) -> SipAddress:
        """A SIP URI a web user dialed, parsed strictly: the address it names is all it may hold.

        Unlike `parse` (lenient, for headers the gateway receives), nothing is dropped: a name-addr,
        a password, a second `@`, URI headers or parameters other than `user` and `transport` raise
        IdentityError, so that the policy checks exactly the address the INVITE goes to.
        """
        scheme, colon, rest = text.strip().partition(":")
        if not colon or scheme.lower() not in ("sip", "sips"):
            raise IdentityError(f"not a SIP URI: {text[:80]!r}")
        if "?" in rest:
            raise IdentityError(f"URI headers are not allowed in a dialed SIP URI: {text[:80]!r}")
        rest, _, param_text = rest.partition(";")
        user, at, hostport = rest.rpartition("@")
        if not at or not user:
            raise IdentityError(f"a dialed SIP URI needs a user part: {text[:80]!r}")
        bad = set(user) - _DIAL_USER_CHARS
        if bad:
            raise IdentityError(f"character {min(bad)!r} not allowed in the user part of {text[:80]!r}")
        if any(not _is_escape(user[i + 1 : i + 3]) for i, ch in enumerate(user) if ch == "%"):
            raise IdentityError(f"bad %-escape in the user part of {text[:80]!r}")
        if set(hostport) - _DIAL_HOST_CHARS:
            raise IdentityError(f"bad host in {text[:80]!r}")
        for param in param_text.split(";") if param_text else ():
            name, _, value = param.partition("=")
            if name.lower() not in _DIAL_PARAMS or not value or set(value) - _DIAL_PARAM_VALUE_CHARS:
                raise IdentityError(f"URI parameter {param[:40]!r} is not allowed in a dialed SIP URI")
        return cls.parse(text)

    @property
    def aor(self) -> str:
        """The address of record: `sip:user@host` without port (the key the PBX registers)."""
        return f"{self.scheme}:{self.user}@{self.host}" if self.user else f"{self.scheme}:{self.host}"

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        user = f"{self.user}@" if self.user else ""
        return f"{self.scheme}:{user}{self.host}{port}"


def _port(tail: str, text: str) -> int:
    if not tail.startswith(":") or not tail[1:].isdigit():
        raise IdentityError(f"bad port in {text!r}")
    return int(tail[1:])


def _is_escape(text: str) -> bool:
    return len(text) == 2 and all(c in string.hexdigits for c in text)
