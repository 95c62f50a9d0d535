"""Name resolution for the next hop (RFC 3263 in part): the event loop's ``getaddrinfo``.

RFC 3263 NAPTR and SRV lookups are not done: a PBX reached through SRV records must be
configured with its host and port.
"""

from __future__ import annotations

import asyncio
import socket

from gateway.sip.transport import address_family
from sipcore.errors import TransportError
from sipcore.routing import Address, Target

__all__ = ["resolve"]


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
