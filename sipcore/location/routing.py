"""Where SIP messages go (RFC 3261 §8.1.2, §18.2.2; RFC 3581; RFC 3263 in part).

Requests go to the first Route (loose routing, ``;lr``) or else the Request-URI: its host, port
(default 5060) and ``transport`` parameter; whether the port and transport were given decides the DNS
lookups of RFC 3263 (:mod:`sipcore.location.locate`). This module only names the next hop
(:class:`Target`); resolving a host name to addresses is I/O and lives in the asyncio shell
(:func:`gateway.sip.transports.resolver.resolve`).

Responses go back where the request came from: over the same connection on a reliable
transport, else to the source IP (the ``received`` address) and the ``rport`` port of the top
Via (RFC 3581 §4), or its sent-by port (default 5060) without rport (RFC 3261 §18.2.2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from sipcore.errors import TransportError
from sipcore.syntax.headers import Via, is_digits, is_token, parse_name_addr
from sipcore.syntax.message import Request
from sipcore.syntax.uri import URI, SipURI

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_TLS_PORT",
    "Address",
    "Origin",
    "Target",
    "request_target",
    "response_address",
    "uri_target",
]

Address = tuple[str, int]  # (IP literal without brackets, port)

DEFAULT_PORT = 5060
DEFAULT_TLS_PORT = 5061


@dataclass(frozen=True, slots=True)
class Target:
    """A next hop before name resolution: Via transport token, host (name or IP, no brackets),
    port.

    ``port_given`` and ``transport_given`` say whether the URI (or configuration) named them: a
    host name without a port is located through DNS SRV, and without a transport too through NAPTR
    (RFC 3263 §4.1-4.2, :mod:`sipcore.location.locate`); ``port`` is then only the A/AAAA fallback's.
    They do not take part in equality."""

    transport: str
    host: str
    port: int = DEFAULT_PORT
    port_given: bool = field(default=True, compare=False)
    transport_given: bool = field(default=True, compare=False)

    def __post_init__(self) -> None:
        if not is_token(self.transport) or self.transport != self.transport.upper():
            raise ValueError(f"invalid transport {self.transport!r} (expected e.g. 'UDP', 'TCP')")
        if not self.host or self.host.startswith("["):
            raise ValueError(f"invalid host {self.host!r}")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"invalid port {self.port!r}")

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport} {host}:{self.port}"


def uri_target(uri: URI, default_transport: str = "UDP") -> Target:
    """The next hop named by a SIP URI (RFC 3263 §4.1-4.2: what it names; DNS is the shell's)."""
    if not isinstance(uri, SipURI):
        raise TransportError(f"no next hop for {uri}: only sip and sips URIs can be routed")
    transport = (uri.param("transport") or "").upper()
    if uri.scheme == "sips":
        transport = "WSS" if transport == "WS" else "TLS"
    given = bool(transport)
    transport = transport or default_transport
    default_port = DEFAULT_TLS_PORT if transport == "TLS" else DEFAULT_PORT
    return Target(
        transport,
        uri.host.strip("[]"),
        uri.port or default_port,
        port_given=uri.port is not None,
        transport_given=given,
    )


def request_target(request: Request, default_transport: str = "UDP") -> Target:
    """RFC 3261 §8.1.2: the first Route when there is a route set, else the Request-URI.

    A strict router (a first Route without ``lr``, §12.2.1.1) still gets the request, but its
    Request-URI is not rewritten here: that is the dialog's job."""
    routes = request.headers.get_all("Route")
    uri = parse_name_addr(routes[0], "Route").uri if routes else request.uri
    return uri_target(uri, default_transport)


class Origin(Protocol):
    """Where a request came from, as far as routing its responses needs to know."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def reliable(self) -> bool:
        """True when it came on a connection (TCP, TLS, WS): responses go back on it."""


def response_address(via: Via, source: Origin) -> Address:
    """Where a response to a request with top Via ``via`` goes (RFC 3261 §18.2.2, RFC 3581 §4).

    On reliable transports: the source (the connection the request came on). On UDP always the
    source IP: that is what ``received`` holds once the layer has written it (§18.2.1, a
    sender's own is overwritten), and it keeps a forged Via from aiming the response at a third
    party; the port is the source's with ``rport``, else the sent-by port. ``maddr`` is not
    honoured (multicast is not supported)."""
    if source.reliable:
        return source.host, source.port
    rport = via.param("rport")
    if rport is not None:
        port = int(rport) if is_digits(rport) and 0 < int(rport) < 65536 else source.port
    else:
        port = via.port or DEFAULT_PORT
    return source.host, port
