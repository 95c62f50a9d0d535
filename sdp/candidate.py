"""ICE candidates: the a=candidate grammar of RFC 8839 §5.1 with RFC 6544 §4.5 tcptype.

sdp-transform's candidate rule expects ``tcpfield`` where RFC 6544 says ``tcptype`` and stops at the
first extension it does not know, so candidates are parsed here by the RFC grammar instead:

    candidate-attribute = "candidate" ":" foundation SP component-id SP transport SP priority SP
                          connection-address SP port SP cand-type [SP rel-addr] [SP rel-port]
                          *(SP cand-extension)

The address may be an IPv4 or IPv6 address or an FQDN, notably an mDNS ``<uuid>.local`` name
(RFC 8839 §5.1, draft-ietf-mmusic-mdns-ice-candidates); it is kept as data, never resolved here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sdp.errors import SdpParseError

# RFC 8839 §5.1: ice-char = ALPHA / DIGIT / "+" / "/"; foundation = 1*32ice-char.
_FOUNDATION = re.compile(r"[A-Za-z0-9+/]{1,32}\Z")
_TOKEN = re.compile(r"[!#-'*+\-.0-9A-Z^-~]+\Z")
_ADDRESS = re.compile(r"[^\s]+\Z")
TCP_TYPES = ("active", "passive", "so")  # RFC 6544 §4.5


@dataclass(frozen=True, slots=True)
class Candidate:
    """One ICE candidate. ``transport`` is kept as written (``udp``, ``UDP``, ``tcp``); compare ``protocol``."""

    foundation: str
    component: int
    transport: str
    priority: int
    address: str
    port: int
    type: str = "host"
    related_address: str | None = None
    related_port: int | None = None
    tcptype: str | None = None
    extensions: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not _FOUNDATION.match(self.foundation):
            raise SdpParseError(f"invalid candidate foundation (RFC 8839 §5.1): {self.foundation!r}")
        if not 1 <= self.component <= 256:
            raise SdpParseError(f"candidate component must be 1-256: {self.component!r}")
        if not _TOKEN.match(self.transport):
            raise SdpParseError(f"invalid candidate transport: {self.transport!r}")
        if not 0 <= self.priority <= 0xFFFFFFFF:
            raise SdpParseError(f"candidate priority must be 1-2**32-1: {self.priority!r}")
        if not _ADDRESS.match(self.address):
            raise SdpParseError(f"invalid candidate address: {self.address!r}")
        if not 0 <= self.port <= 65535:
            raise SdpParseError(f"candidate port must be 0-65535: {self.port!r}")
        if not _TOKEN.match(self.type):
            raise SdpParseError(f"invalid candidate type: {self.type!r}")
        if self.related_address is not None and not _ADDRESS.match(self.related_address):
            raise SdpParseError(f"invalid candidate raddr: {self.related_address!r}")
        if self.related_port is not None and not 0 <= self.related_port <= 65535:
            raise SdpParseError(f"candidate rport must be 0-65535: {self.related_port!r}")
        if self.tcptype is not None and self.tcptype not in TCP_TYPES:
            raise SdpParseError(f"tcptype must be one of {TCP_TYPES} (RFC 6544 §4.5): {self.tcptype!r}")
        for name, value in self.extensions:
            if not _TOKEN.match(name) or not _ADDRESS.match(value):
                raise SdpParseError(f"invalid candidate extension: {name!r} {value!r}")

    @property
    def protocol(self) -> str:
        """The transport in lower case: ``udp`` or ``tcp``."""
        return self.transport.lower()

    @property
    def is_mdns(self) -> bool:
        """The address is an mDNS name (``<uuid>.local``) that only the peer's network can resolve."""
        return self.address.lower().endswith(".local")

    @property
    def is_ipv6(self) -> bool:
        return ":" in self.address

    @classmethod
    def parse(cls, text: str) -> Candidate:
        """Parse ``candidate:...``, with or without a leading ``a=`` (the browser's JSON form has none)."""
        value = text.strip()
        value = value.removeprefix("a=")
        if not value.startswith("candidate:"):
            raise SdpParseError(f"not a candidate line: {text!r}")
        parts = value[len("candidate:") :].split()
        if len(parts) < 8 or parts[6] != "typ" or len(parts) % 2 != 0:
            raise SdpParseError(f"invalid candidate line (RFC 8839 §5.1): {text!r}")
        try:
            fields = dict(zip(parts[8::2], parts[9::2], strict=False))
            component, priority, port = int(parts[1]), int(parts[3]), int(parts[5])
            rport = int(fields["rport"]) if "rport" in fields else None
        except ValueError:
            raise SdpParseError(f"invalid number in candidate line: {text!r}") from None
        if len(fields) != len(parts[8::2]):
            raise SdpParseError(f"repeated candidate extension: {text!r}")
        extensions = tuple(
            (k, v)
            for k, v in zip(parts[8::2], parts[9::2], strict=False)
            if k not in ("raddr", "rport", "tcptype")
        )
        try:
            return cls(
                foundation=parts[0],
                component=component,
                transport=parts[2],
                priority=priority,
                address=parts[4],
                port=port,
                type=parts[7],
                related_address=fields.get("raddr"),
                related_port=rport,
                tcptype=fields.get("tcptype"),
                extensions=extensions,
            )
        except SdpParseError as exc:
            raise SdpParseError(f"{exc.message} in {text!r}") from None

    def to_sdp(self) -> str:
        """The attribute value without ``a=``: ``candidate:1 1 udp 2130706431 192.0.2.1 5000 typ host``."""
        parts = [
            f"candidate:{self.foundation}",
            str(self.component),
            self.transport,
            str(self.priority),
            self.address,
            str(self.port),
            "typ",
            self.type,
        ]
        if self.related_address is not None:
            parts += ["raddr", self.related_address]
        if self.related_port is not None:
            parts += ["rport", str(self.related_port)]
        if self.tcptype is not None:
            parts += ["tcptype", self.tcptype]
        for name, ext in self.extensions:
            parts += [name, ext]
        return " ".join(parts)

    def __str__(self) -> str:
        return self.to_sdp()
