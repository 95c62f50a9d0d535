"""Value types of gateway.yaml: enums, host[:port], IP addresses and networks, ICE URLs, ranges.

A field's type says how its YAML value is read (see `gateway.config.loader`):
  * an Enum: a string matched case-insensitively against the members' values;
  * a class with `from_config(value) -> instance` (`HostPort`, `DialPattern`, ...);
  * `Annotated[T, IntRange(...)]` / `Annotated[T, FloatRange(...)]`: a number within bounds;
  * `Annotated[T, Parse(function)]`: `function(value)` builds the value or raises ValueError.
Every parser raises ValueError with a message that quotes the bad value; the loader adds the key path.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Final

from gateway.config.errors import InvalidValue

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Transport(enum.StrEnum):
    UDP = "udp"
    TCP = "tcp"
    TLS = "tls"
    WS = "ws"  # reserved
    WSS = "wss"  # reserved


SUPPORTED_TRANSPORTS: Final = frozenset({Transport.UDP, Transport.TCP, Transport.TLS})


class SrtpMode(enum.StrEnum):
    """SDES-SRTP on the SIP leg (RFC 4568): never, when the far end offers or accepts it, or always."""

    OFF = "off"
    OPTIONAL = "optional"
    REQUIRED = "required"


class OpusFec(enum.StrEnum):
    """In-band FEC of the gateway's Opus encoder towards the browser (gateway/media/codecs/opus_settings.py):
    turned on while the browser's RTCP receiver reports show loss, always, or never."""

    AUTO = "auto"
    ON = "on"
    OFF = "off"


class RealtimeText(enum.StrEnum):
    """RFC 4103 real-time text on the SIP leg, bridged to an RFC 8865 T.140 data channel (gateway/media/text):
    answered when the SIP side offers it and offered when the browser's offer asks for it (``answer``),
    offered on every browser call that carries a data channel too (``offer``), or never (``off``)."""

    ANSWER = "answer"
    OFFER = "offer"
    OFF = "off"


def parse_realtime_text(value: object) -> RealtimeText:
    """`answer`, `offer` or `off` (a bare YAML off/false is off, on/true is answer)."""
    if isinstance(value, bool):
        return RealtimeText.ANSWER if value else RealtimeText.OFF
    if isinstance(value, str) and value.lower() in {m.value for m in RealtimeText}:
        return RealtimeText(value.lower())
    raise ValueError(f"expected answer, offer or off, got {value!r}")


def parse_opus_fec(value: object) -> OpusFec:
    """`auto`, `on` or `off` (YAML 1.1 reads a bare on/off, true/false as a boolean: taken as on/off)."""
    if isinstance(value, bool):
        return OpusFec.ON if value else OpusFec.OFF
    if isinstance(value, str) and value.lower() in {m.value for m in OpusFec}:
        return OpusFec(value.lower())
    raise ValueError(f"expected auto, on or off, got {value!r}")


class G711ToWeb(enum.StrEnum):
    """Who conceals a G.711 phone's lost packets for a browser that has Opus as well
    (gateway/media/codecs/conceal_choice.py): chosen per call from the phone leg's loss (``auto``), the
    browser (``forward``: G.711 passed through), or the gateway (``transcode``: to Opus after our
    concealment)."""

    AUTO = "auto"
    FORWARD = "forward"
    TRANSCODE = "transcode"


class FollowRedirects(enum.StrEnum):
    """Which 3xx redirects of an outbound call are followed (gateway/calls/setup/redirects.py)."""

    OFF = "off"  # none: the call ends "redirected"
    PBX = "pbx"  # targets on the PBX's own hosts, whose user the web user's dial patterns allow
    POLICY = "policy"  # also any target the web user's allow_outbound allows as if dialled


class WebCalls(enum.StrEnum):
    """How a web user's call to another web user of this gateway is placed (gateway/runtime/web_calls.py)."""

    DIRECT = "direct"  # rung by the gateway itself (its own SIP listener), both legs WebRTC; no PBX
    P2P = "p2p"  # rung the same way, but the browsers' media flows between them: the gateway signals only
    PBX = "pbx"  # like any other number: through the PBX


class Codec(enum.StrEnum):
    """Audio codecs the media layer forwards or transcodes; names as in SDP rtpmap."""

    PCMU = "PCMU"
    PCMA = "PCMA"
    G722 = "G722"
    G729 = "G729"  # SIP leg only, through libbcg729 (gateway/media/codecs/g729.py); not in the defaults
    OPUS = "opus"


def check_leg_codecs(leg: str, codecs: tuple[Codec, ...]) -> None:
    """``codecs.<leg>``: each codec once; G729 on the SIP leg only (browsers have no G.729)."""
    for index, codec in enumerate(codecs):
        if codecs.index(codec) != index:
            raise InvalidValue(f"{leg}[{index}]", f"codec {codec.value!r} listed twice")
        if leg == "webrtc" and codec is Codec.G729:
            raise InvalidValue(f"{leg}[{index}]", "G729 is for the SIP leg only")


class VideoCodec(enum.StrEnum):
    """Video codecs passed through between the legs (never decoded; issue 19); names as in SDP rtpmap."""

    H264 = "H264"
    VP8 = "VP8"
    VP9 = "VP9"


class DtmfMode(enum.StrEnum):
    RFC4733 = "rfc4733"  # telephone-event RTP packets (RFC 4733)
    INFO = "info"  # SIP INFO with application/dtmf-relay


class LogLevel(enum.StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


class LogFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


def check_transport(key: str, transport: Transport) -> None:
    if transport not in SUPPORTED_TRANSPORTS:
        raise InvalidValue(
            key, f"transport {transport.value!r} is reserved for a later release; use udp, tcp or tls for now"
        )


@dataclass(frozen=True, slots=True)
class IntRange:
    low: int
    high: int


@dataclass(frozen=True, slots=True)
class FloatRange:
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class Parse:
    function: Callable[[object], object]


Port = Annotated[int, IntRange(1, 65535)]

_HOSTNAME: Final = re.compile(
    r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)


def check_host(host: str) -> str:
    """`host` if it is an IP address or an RFC 1123 host name, else ValueError quoting it."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if _HOSTNAME.fullmatch(host) is None:
        raise ValueError(f"expected a host name or IP address, got {host!r}")
    return host


@dataclass(frozen=True, slots=True)
class HostPort:
    """`host[:port]` (IPv6 as `[::1]:5060`); the port is None where the protocol default applies."""

    host: str
    port: int | None = None

    def __post_init__(self) -> None:
        try:
            check_host(self.host)
        except ValueError as exc:
            raise InvalidValue("", str(exc)) from None
        if self.port is not None and not 1 <= self.port <= 65535:
            raise InvalidValue("", f"expected a port 1-65535, got {self.port!r}")

    @classmethod
    def from_config(cls, value: object) -> HostPort:
        if not isinstance(value, str) or not value:
            raise ValueError(f"expected host[:port], got {value!r}")
        host, port = value, None
        if value.startswith("["):
            close = value.find("]")
            rest = value[close + 1 :] if close > 0 else "?"
            host = value[1:close]
            if rest:
                if not rest.startswith(":") or not rest[1:].isdigit():
                    raise ValueError(f"expected host[:port], got {value!r}")
                port = int(rest[1:])
        elif value.count(":") == 1:
            host, port_text = value.split(":")
            if not port_text.isdigit():
                raise ValueError(f"expected host[:port] with a numeric port, got {value!r}")
            port = int(port_text)
        try:
            return cls(host, port)
        except InvalidValue as exc:
            raise ValueError(f"{exc.problems[0][1]} (in {value!r})") from None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


def parse_ip(value: object) -> IPAddress:
    if not isinstance(value, str):
        raise TypeError(f"expected an IP address, got {value!r}")
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"expected an IP address (not a host name), got {value!r}") from None


def parse_network(value: object) -> IPNetwork:
    if not isinstance(value, str):
        raise TypeError(f"expected an IP address or CIDR network, got {value!r}")
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        detail = f" ({exc})" if "host bits" in str(exc) else ""
        raise ValueError(f"expected an IP address or CIDR network, got {value!r}{detail}") from None


ICE_SCHEMES: Final = ("stun", "stuns", "turn", "turns")
_ICE_URL: Final = re.compile(
    r"(?P<scheme>[a-z]+):(?P<host>\[[0-9A-Fa-f:.]+\]|[^:?\[\]/@]+)(:(?P<port>\d{1,5}))?"
    r"(\?transport=(?P<transport>udp|tcp))?"
)


def parse_ice_url(value: object) -> str:
    """An ICE server URL (RFC 7064 stun/stuns, RFC 7065 turn/turns): `turn:host:3478?transport=udp`."""
    if not isinstance(value, str):
        raise TypeError(f"expected a stun:/stuns:/turn:/turns: URL, got {value!r}")
    match = _ICE_URL.fullmatch(value)
    scheme = value.split(":", 1)[0].lower() if ":" in value else ""
    if scheme not in ICE_SCHEMES:
        raise ValueError(f"expected a URL with scheme stun:, stuns:, turn: or turns:, got {value!r}")
    if match is None or (match["port"] and not 1 <= int(match["port"]) <= 65535):
        raise ValueError(
            f"malformed ICE server URL {value!r} (expected scheme:host[:port][?transport=udp|tcp])"
        )
    if match["transport"] and scheme.startswith("stun"):
        raise ValueError(f"'?transport=' is only defined for turn:/turns: URLs, got {value!r}")
    return value


_ORIGIN: Final = re.compile(r"(https?)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?/?", re.I)


def normalize_origin(value: str) -> str | None:
    """A web origin (RFC 6454 §6.2) as compared: scheme://host[:port] in lower case, the scheme's default
    port dropped; None when ``value`` is not one (``null``, a path, another scheme)."""
    found = _ORIGIN.fullmatch(value.strip())
    if found is None:
        return None
    scheme, host, port = found.group(1).lower(), found.group(2).lower(), found.group(3)
    default = {"http": "80", "https": "443"}[scheme]
    return f"{scheme}://{host}" + (f":{int(port)}" if port and port != default else "")
