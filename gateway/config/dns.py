"""The `dns` section of gateway.yaml: how the SIP side locates its next hops (gateway/sip/transports/resolver.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from gateway.config.errors import InvalidValue
from gateway.config.values import FloatRange, HostPort, IntRange, parse_ip


@dataclass(frozen=True, slots=True)
class DnsSection:
    """How SIP next hops are located (RFC 3263: NAPTR, SRV, A/AAAA; gateway/sip/transports/resolver.py)."""

    servers: tuple[HostPort, ...] = ()  # "IP[:port]" (default port 53); empty: the system's resolver
    timeout: Annotated[float, FloatRange(0.1, 60.0)] = 2.0  # seconds for one lookup
    cache_size: Annotated[int, IntRange(0, 1_000_000)] = 1024  # answers kept (by their TTL)

    def __post_init__(self) -> None:
        for index, server in enumerate(self.servers):
            try:
                parse_ip(server.host)
            except ValueError:
                raise InvalidValue(
                    f"servers[{index}]", f"expected an IP address, got {server.host!r}"
                ) from None
