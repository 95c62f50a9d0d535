"""Just enough SIP URI handling for the identity map (RFC 3261 §19.1): scheme, user, host, port.

Parameters and headers are dropped; `gateway/sip` owns full URI parsing. Accepts a bare URI
(`sip:1001@pbx.example.org;transport=udp`) or a name-addr (`"Alice" <sip:1001@pbx>;tag=x`).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.identity.errors import IdentityError


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
