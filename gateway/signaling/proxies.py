"""The client's address behind the reverse proxies the operator names (`http.trusted_proxies`).

Behind HAProxy or nginx every request comes from the proxy's address, so everything keyed on the address
(the login throttle, the per-address caps of sockets and requests, rate limits, the logs) would treat all
clients as one: one client guessing passwords would slow everyone's logins, one flood would use up
everyone's per-address cap. For a request whose peer is a trusted proxy, the client is the rightmost
`X-Forwarded-For` address that is not itself a trusted proxy: each proxy appends the address it got the
request from, so the entries left of that one were written by the client and prove nothing (the same rule
as nginx's `real_ip_recursive on` and aiohttp-remotes' `XForwardedStrict`). From any other peer the header
is ignored: a client cannot choose its own address. Our own deploy/haproxy.cfg sets `option forwardfor`.

The middleware runs before every other one (cluster forwarding, Origin checks) and hands the handlers a
clone of the request whose `remote` is the client.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web
from aiohttp.typedefs import Middleware

logger = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [2001:db8::1]:port (RFC 7239 style, as some proxies write)
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # 192.0.2.1:port
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def client_address(peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]) -> str | None:
    """The client of a request from `peer` carrying these `X-Forwarded-For` headers (in order)."""
    if not trusted or not forwarded_for or peer is None:
        return peer
    address = _address(peer)
    if address is None or not any(address in network for network in trusted):
        return peer
    hops = [hop for header in forwarded_for for hop in header.split(",")]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:  # garbage where an address should be: nothing left of it can be believed
            return peer
        if not any(address in network for network in trusted):
            return str(address)
    return str(address) if address is not None else peer  # every hop a proxy of ours: the leftmost


def forwarded_client_middleware(trusted: Sequence[Network]) -> Middleware:
    networks = tuple(trusted)

    @web.middleware
    async def forwarded_client(request: web.Request, handler: Handler) -> web.StreamResponse:
        client = client_address(request.remote, request.headers.getall("X-Forwarded-For", []), networks)
        if client is not None and client != request.remote:
            request = request.clone(remote=client)
        return await handler(request)

    return forwarded_client
