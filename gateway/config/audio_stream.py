"""The `audio_stream` section of gateway.yaml: live audio of calls streamed to an app over a WebSocket
(speech to text, bots; issue 37 item 4; gateway/runtime/audio_streams/, docs/operations.md "Live audio
streams").

    audio_stream:
      url: wss://bot.example.org/listen   # where each stream connects (ws:// or wss://)
      token: {env: AUDIO_STREAM_TOKEN}    # sent as Authorization: Bearer <token> (optional)
      sample_rate: 16000                  # 8000 | 16000
      encoding: pcm16                     # pcm16 (interleaved stereo) | opus (one packet per leg)
      policy: never                       # never: only by API | always: every answered call
      inject: none                        # the app's audio to: none | sip | web | both
      overrides:                          # first match wins: a web user, and/or the SIP party's number
        - user: alice
          policy: always
        - to: "7xxx"
          policy: always
          inject: sip
      allowed_targets: [bot.example.org, "10.1.2.3:9000", 10.20.0.0/16]

`allowed_targets` says where a stream may connect (the configured urls and an admin's): a pattern is a
host name or IP address (any port), `host:port` (`[v6]:port`), or a network in CIDR form (any port). A
name matches the url's host as written; an address or network matches an address in the url, and each
address a url's name resolves to when the stream connects (so a name whose addresses only a network
lists is checked then). Left empty (the default), any target is allowed as before but link-local
addresses (169.254.0.0/16, fe80::/10: cloud metadata services), in the url or resolved; a pattern that
lists one allows it.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, fields, replace
from typing import Annotated, Final
from urllib.parse import urlsplit

from gateway.config.errors import InvalidValue
from gateway.config.secret import Secret
from gateway.config.values import FloatRange, IntRange, IPNetwork, Parse
from gateway.identity.patterns import DialPattern

SAMPLE_RATES: Final = (8000, 16000)
ENCODINGS: Final = ("pcm16", "opus")
INJECT: Final = ("none", "sip", "web", "both")


class StreamPolicy(enum.StrEnum):
    NEVER = "never"  # only when asked (admin API, /ws, HTTP API)
    ALWAYS = "always"  # every call once answered


def stream_url(value: object) -> str:
    """A ws:// or wss:// URL with a host."""
    if not isinstance(value, str):
        raise TypeError(f"expected a ws:// or wss:// URL, got {value!r}")
    parts = urlsplit(value)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"expected a ws:// or wss:// URL, got {value!r}")
    return value


def _sample_rate(value: object) -> int:
    if isinstance(value, bool) or value not in SAMPLE_RATES:
        raise ValueError(f"expected one of {list(SAMPLE_RATES)}, got {value!r}")
    return int(value)


def _choice(options: tuple[str, ...]) -> Parse:
    def parse(value: object) -> str:
        if not isinstance(value, str) or value.lower() not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {value!r}")
        return value.lower()

    return Parse(parse)


@dataclass(frozen=True, slots=True)
class TargetPattern:
    """One of `allowed_targets`: a host (a name, lower case, or an address) with an optional port, or a
    network (any port)."""

    host: str | None = None
    port: int | None = None
    network: IPNetwork | None = None

    def __post_init__(self) -> None:
        if (self.host is None) == (self.network is None):
            raise ValueError(f"a target pattern is a host or a network, got {self!r}")
        if self.port is not None and not 1 <= self.port <= 65535:
            raise ValueError(f"expected a port 1-65535, got {self.port!r}")

    @property
    def names_host(self) -> bool:
        """Whether it names a host by name (not an address or network)."""
        return self.host is not None and _address(self.host) is None

    def matches(self, host: str, port: int) -> bool:
        """Whether a connection to ``host`` (a url's host as written, or an address) and ``port`` fits."""
        if self.port is not None and port != self.port:
            return False
        address = _address(host)
        if self.network is not None:
            return address is not None and address.version == self.network.version and address in self.network
        if address is not None:
            return address == _address(self.host or "")
        return host.lower().rstrip(".") == self.host


def parse_target(value: object) -> TargetPattern:
    """`host`, `host:port`, `[v6]:port` or a network `a.b.c.d/n`, `v6/n`."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a host, host:port or network (CIDR), got {value!r}")
    text = value.strip().lower()
    if "/" in text:
        try:
            return TargetPattern(network=ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"expected a network such as 10.0.0.0/8, got {value!r}") from None
    host, port = text, None
    if text.startswith("["):  # [v6] or [v6]:port
        host, _, rest = text[1:].partition("]")
        port = _port(rest[1:], value) if rest.startswith(":") else None
        if "]" not in text or (rest and port is None) or _address(host) is None:
            raise ValueError(f"expected [IPv6 address]:port, got {value!r}")
    elif text.count(":") == 1:
        host, raw = text.split(":")
        port = _port(raw, value)
    host = host.rstrip(".")
    if not host or any(c in host for c in "/@?# "):
        raise ValueError(f"expected a host, host:port or network (CIDR), got {value!r}")
    return TargetPattern(host=str(_address(host) or host), port=port)


def _port(text: str, value: object) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"expected a port 1-65535 in {value!r}")
    return int(text)


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def address_allowed(url_host: str, port: int, address: str, allowed: tuple[TargetPattern, ...]) -> bool:
    """Whether a stream to a url of host ``url_host`` and ``port`` may connect to ``address`` (the url's
    own, or one its name resolved to): listed by an address or network pattern; else not link-local,
    and, with `allowed` set, the url's name listed."""
    if any(p.matches(address, port) for p in allowed if not p.names_host):
        return True
    ip = _address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:  # ::ffff:169.254.x.y
        ip = ip.ipv4_mapped
    if ip is None or ip.is_link_local:
        return False
    return not allowed or any(p.matches(url_host, port) for p in allowed if p.names_host)


def target_refusal(url: str, allowed: tuple[TargetPattern, ...]) -> str | None:
    """Why a stream may not go to ``url`` as written (None: it may, until its name resolves)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "wss" else 80)
    except ValueError:
        return f"{url!r} has no valid port"
    if _address(host) is not None:
        ok = address_allowed(host, port, host, allowed)
    else:  # a name: listed by name, or left to the addresses it resolves to (networks, or no list)
        ok = not allowed or any(p.matches(host, port) or not p.names_host for p in allowed)
    if ok:
        return None
    if not allowed:
        return f"{host} is a link-local address, refused unless audio_stream.allowed_targets lists it"
    return f"{host}:{port} is not in audio_stream.allowed_targets"


SampleRate = Annotated[int, Parse(_sample_rate)]
Encoding = Annotated[str, _choice(ENCODINGS)]
InjectTo = Annotated[str, _choice(INJECT)]
StreamUrl = Annotated[str, Parse(stream_url)]


@dataclass(frozen=True, slots=True)
class StreamOverride:
    """What differs for the calls of one web user (`user`) and/or to or from numbers matching `to` (a
    dial pattern on the SIP party's number); unset keys keep the section's."""

    user: str | None = None
    to: DialPattern | None = None
    url: StreamUrl | None = None
    policy: StreamPolicy | None = None
    sample_rate: SampleRate | None = None
    encoding: Encoding | None = None
    inject: InjectTo | None = None

    def __post_init__(self) -> None:
        if self.user is None and self.to is None:
            raise InvalidValue("user", "an override names a user, a number pattern (to), or both")

    def matches(self, user: str | None, number: str | None) -> bool:
        if self.user is not None and self.user != user:
            return False
        return self.to is None or (number is not None and self.to.matches(number))


@dataclass(frozen=True, slots=True)
class AudioStreamSection:
    url: StreamUrl | None = None  # none: a stream needs a url from the admin API
    token: Secret | None = None
    policy: StreamPolicy = StreamPolicy.NEVER
    sample_rate: SampleRate = 8000
    encoding: Encoding = "pcm16"
    inject: InjectTo = "none"
    queue_frames: Annotated[int, IntRange(5, 3000)] = 50  # frames waiting for the socket (1 s)
    connect_timeout: Annotated[float, FloatRange(0.1, 60.0)] = 5.0
    reconnect_attempts: Annotated[int, IntRange(0, 100)] = 3  # after a lost connection; then give up
    backoff: Annotated[float, FloatRange(0.01, 60.0)] = 0.5  # s before the first retry, doubling
    max_streams: Annotated[int, IntRange(1, 100_000)] = 100  # at once on this instance
    overrides: tuple[StreamOverride, ...] = ()
    # where streams may connect (module note); empty: anywhere but link-local addresses
    allowed_targets: tuple[Annotated[TargetPattern, Parse(parse_target)], ...] = ()

    def __post_init__(self) -> None:
        for name, url in (
            ("url", self.url),
            *((f"overrides[{i}].url", o.url) for i, o in enumerate(self.overrides)),
        ):
            why = target_refusal(url, self.allowed_targets) if url is not None else None
            if why is not None:
                raise InvalidValue(name, why)
        for index, override in enumerate(self.overrides):
            if override.policy is StreamPolicy.ALWAYS and (override.url or self.url) is None:
                raise InvalidValue(f"overrides[{index}].url", "policy always needs a url (here or above)")
        if self.policy is StreamPolicy.ALWAYS and self.url is None:
            raise InvalidValue("url", "policy always needs a url")

    def for_call(self, user: str | None, number: str | None) -> AudioStreamSection:
        """The section as it applies to a call of web user `user` with SIP party `number`."""
        for override in self.overrides:
            if override.matches(user, number):
                changes = {
                    f.name: getattr(override, f.name)
                    for f in fields(override)
                    if f.name not in ("user", "to") and getattr(override, f.name) is not None
                }
                return replace(self, overrides=(), **changes)
        return self
