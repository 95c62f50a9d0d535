"""The single-line values of a session description (RFC 8866 §5): attributes, o=, c=, b=, a=rtcp,
and the direction attribute of RFC 3264 §5.1. Each is frozen and validated, quoting the bad value."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from enum import Enum

from sdp import _grammar
from sdp.errors import SdpParseError

# RFC 8866 §9: token-char = %x21 / %x23-27 / %x2A-2B / %x2D-2E / %x30-39 / %x41-5A / %x5E-7E
TOKEN = re.compile(r"[!#-'*+\-.0-9A-Z^-~]+\Z")
_PROTO = re.compile(r"[!#-'*+\-./0-9A-Z^-~]+\Z")  # proto = token *("/" token)
_NO_BREAK = re.compile(r"[^\r\n\0]*\Z")
_VISIBLE = re.compile(r"[!-~]+\Z")  # non-ws-string for addresses and user names (RFC 8866 §9)
RTP_PROTOS = frozenset(
    {
        "RTP/AVP",
        "RTP/AVPF",
        "RTP/SAVP",
        "RTP/SAVPF",
        "UDP/TLS/RTP/SAVP",
        "UDP/TLS/RTP/SAVPF",
        "TCP/TLS/RTP/SAVP",
        "TCP/TLS/RTP/SAVPF",
        "TCP/RTP/AVP",
        "TCP/RTP/AVPF",
    }
)


class Direction(Enum):
    """The media direction attribute (RFC 3264 §5.1; sendrecv when none is given)."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    @classmethod
    def of(cls, *, sends: bool, receives: bool) -> Direction:
        return _BY_FLAGS[(sends, receives)]

    def reversed(self) -> Direction:
        """What the other side says for the same stream (RFC 3264 §6.1: sendonly is answered recvonly)."""
        return Direction.of(sends=self.receives, receives=self.sends)

    def limited_to(self, policy: Direction) -> Direction:
        """This direction, sending or receiving only where ``policy`` allows it too."""
        return Direction.of(sends=self.sends and policy.sends, receives=self.receives and policy.receives)

    def on_hold(self) -> Direction:
        """The direction a holder offers (RFC 3264 §8.4): sendrecv -> sendonly, recvonly -> inactive."""
        return Direction.of(sends=self.sends, receives=False)


_BY_FLAGS = {
    (True, True): Direction.SENDRECV,
    (True, False): Direction.SENDONLY,
    (False, True): Direction.RECVONLY,
    (False, False): Direction.INACTIVE,
}
DIRECTION_NAMES = frozenset(d.value for d in Direction)


@dataclass(frozen=True, slots=True)
class Attribute:
    """One ``a=`` line: ``a=<name>`` (value None, a property attribute) or ``a=<name>:<value>``."""

    name: str
    value: str | None = None

    def __post_init__(self) -> None:
        if not TOKEN.match(self.name):
            raise SdpParseError(f"invalid attribute name (RFC 8866 §5.13): {self.name!r}")
        if self.value is not None and not _NO_BREAK.match(self.value):
            raise SdpParseError(f"line break inside attribute value: {self.value!r}")

    @classmethod
    def parse(cls, content: str) -> Attribute:
        """Parse the text after ``a=``; the value is kept exactly (``msid-semantic: WMS`` keeps its space)."""
        name, sep, value = content.partition(":")
        try:
            return cls(name, value if sep else None)
        except SdpParseError:
            raise SdpParseError(f"invalid attribute line: 'a={content}'") from None

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


@dataclass(frozen=True, slots=True)
class Connection:
    """``c=IN IP4 192.0.2.1`` (RFC 8866 §5.7); the address keeps any multicast ``/ttl`` suffix."""

    address: str
    address_type: str = "IP4"
    net_type: str = "IN"

    def __post_init__(self) -> None:
        if (
            self.address_type not in ("IP4", "IP6")
            or self.net_type != "IN"
            or not _VISIBLE.match(self.address)
        ):
            raise SdpParseError(f"invalid connection: 'c={self}'")

    @classmethod
    def for_address(cls, address: str) -> Connection:
        return cls(address, "IP6" if ":" in address else "IP4")

    @classmethod
    def parse(cls, content: str) -> Connection:
        found = _grammar.match("c", "connection", content)
        if found is None or not found["ip"]:
            raise SdpParseError(f"invalid connection line: 'c={content}'")
        return cls(found["ip"], f"IP{found['version']}")

    @property
    def is_hold(self) -> bool:
        """``c=IN IP4 0.0.0.0``: the RFC 2543 way to put a call on hold (RFC 3264 §8.4)."""
        return self.address == "0.0.0.0"

    def __str__(self) -> str:
        return f"{self.net_type} {self.address_type} {self.address}"


@dataclass(frozen=True, slots=True)
class Bandwidth:
    """``b=AS:84`` (RFC 8866 §5.8); any bwtype token is kept, sdp-transform only knows five."""

    type: str
    value: int

    def __post_init__(self) -> None:
        if not TOKEN.match(self.type) or ":" in self.type or not 0 <= self.value < 2**64:
            raise SdpParseError(f"invalid bandwidth: 'b={self.type}:{self.value}'")

    @classmethod
    def parse(cls, content: str) -> Bandwidth:
        kind, _, value = content.partition(":")
        if not value.isdigit() or not value.isascii():
            raise SdpParseError(f"invalid bandwidth line: 'b={content}'")
        return cls(kind, int(value))

    def __str__(self) -> str:
        return f"{self.type}:{self.value}"


@dataclass(frozen=True, slots=True)
class Origin:
    """``o=<username> <sess-id> <sess-version> IN IP4 <address>`` (RFC 8866 §5.2); sess-id kept as text."""

    username: str = "-"
    session_id: str = "0"
    session_version: int = 0
    address: str = "0.0.0.0"
    address_type: str = "IP4"
    net_type: str = "IN"

    def __post_init__(self) -> None:
        ok = (
            _VISIBLE.match(self.username)
            and self.session_id.isdigit()
            and self.session_id.isascii()
            and 0 <= self.session_version < 2**64
            and self.address_type in ("IP4", "IP6")
            and self.net_type == "IN"
            and _VISIBLE.match(self.address)
        )
        if not ok:
            raise SdpParseError(f"invalid origin: 'o={self}'")

    @classmethod
    def parse(cls, content: str) -> Origin:
        found = _grammar.match("o", "origin", content)
        if found is None or not found["sessionId"] or not found["sessionVersion"] or not found["username"]:
            raise SdpParseError(f"invalid origin line: 'o={content}'")
        return cls(
            found["username"] or "-",
            found["sessionId"] or "0",
            int(found["sessionVersion"] or 0),
            found["address"] or "",
            f"IP{found['ipVer']}",
            found["netType"] or "",
        )

    def next_version(self) -> Origin:
        """The origin of a changed description (RFC 3264 §8: the version goes up by one)."""
        return dataclasses.replace(self, session_version=self.session_version + 1)

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.net_type} {self.address_type} {self.address}"
        )


@dataclass(frozen=True, slots=True)
class Rtcp:
    """``a=rtcp:<port> [IN IP4 <address>]`` (RFC 3605 §2.1)."""

    port: int
    address: str | None = None

    def to_sdp(self) -> str:
        values: dict[str, object] = {"port": self.port}
        if self.address is not None:
            values.update(netType="IN", ipVer=6 if ":" in self.address else 4, address=self.address)
        return _grammar.format_line("a", "rtcp", values).removeprefix("rtcp:")
