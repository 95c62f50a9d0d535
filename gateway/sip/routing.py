"""Where SIP messages go (RFC 3261 §8.1.2, §18.2.2; RFC 3581; RFC 3263 in part).

Requests go to the first Route (loose routing, ``;lr``) or else the Request-URI: its host, port
(default 5060) and ``transport`` parameter. Host names are resolved with the event loop's
``getaddrinfo`` (A/AAAA). RFC 3263 NAPTR and SRV lookups are not done: a PBX reached through SRV
records must be configured with its host and port.

Responses go back where the request came from: over the same connection on a reliable
transport, else to the source IP (the ``received`` address) and the ``rport`` port of the top
Via (RFC 3581 §4), or its sent-by port (default 5060) without rport (RFC 3261 §18.2.2).
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

from gateway.sip.headers import Via, is_digits, is_token, parse_name_addr
from gateway.sip.message import Request
from gateway.sip.transport import Address, Source, TransportError, address_family
from gateway.sip.uri import URI, SipURI

__all__ = ["DEFAULT_PORT", "Target", "request_target", "resolve", "response_address", "uri_target"]

DEFAULT_PORT = 5060
DEFAULT_TLS_PORT = 5061


@dataclass(frozen=True, slots=True)
class Target:
    """A next hop before name resolution: Via transport token, host (name or IP, no brackets),
    port."""

    transport: str
    host: str
    port: int = DEFAULT_PORT

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
    """The next hop named by a SIP URI (RFC 3263 §4.1-4.2 without NAPTR/SRV)."""
    if not isinstance(uri, SipURI):
        raise TransportError(f"no next hop for {uri}: only sip and sips URIs can be routed")
    transport = (uri.param("transport") or "").upper()
    if uri.scheme == "sips":
        transport = "WSS" if transport == "WS" else "TLS"
    transport = transport or default_transport
    default_port = DEFAULT_TLS_PORT if transport == "TLS" else DEFAULT_PORT
    return Target(transport, uri.host.strip("[]"), uri.port or default_port)


def request_target(request: Request, default_transport: str = "UDP") -> Target:
    """RFC 3261 §8.1.2: the first Route when there is a route set, else the Request-URI.

    A strict router (a first Route without ``lr``, §12.2.1.1) still gets the request, but its
    Request-URI is not rewritten here: that is the dialog's job."""
    routes = request.headers.get_all("Route")
    uri = parse_name_addr(routes[0], "Route").uri if routes else request.uri
    return uri_target(uri, default_transport)


def response_address(via: Via, source: Source) -> Address:
    """Where a response to a request with top Via ``via`` goes (RFC 3261 §18.2.2, RFC 3581 §4).

    On reliable transports: the source (the connection the request came on). On UDP always the
    source IP: that is what ``received`` holds once the layer has written it (§18.2.1, a
    sender's own is overwritten), and it keeps a forged Via from aiming the response at a third
    party; the port is the source's with ``rport``, else the sent-by port. ``maddr`` is not
    honoured (multicast is not supported)."""
    if source.transport.reliable:
        return source.address
    rport = via.param("rport")
    if rport is not None:
        port = int(rport) if is_digits(rport) and 0 < int(rport) < 65536 else source.port
    else:
        port = via.port or DEFAULT_PORT
    return source.host, port


async def resolve(target: Target) -> list[Address]:
    """IP addresses of the target's host, in getaddrinfo order, duplicates removed."""
    try:
        address_family(target.host)
    except ValueError:
        pass
    else:
        return [(target.host, target.port)]
    loop = asyncio.get_running_loop()
    kind = socket.SOCK_DGRAM if target.transport == "UDP" else socket.SOCK_STREAM
    try:
        infos = await loop.getaddrinfo(target.host, target.port, type=kind)
    except OSError as exc:
        raise TransportError(f"cannot resolve {target.host!r}: {exc}") from None
    out: list[Address] = []
    for _, _, _, _, sockaddr in infos:
        address = (str(sockaddr[0]), int(sockaddr[1]))
        if address not in out:
            out.append(address)
    if not out:
        raise TransportError(f"no address for {target.host!r}")
    return out
