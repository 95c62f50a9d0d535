"""Name resolution for the next hop: RFC 3263 server location over DNS (dnspython's async resolver).

:class:`Resolver` turns a :class:`~sipcore.location.routing.Target` into the ordered :class:`~sipcore.location.locate.Hop`
list a request may try (RFC 3263 §4.3 failover walks it, :mod:`gateway.sip.transactions.client`):

- an IP address is used as it is; a name with a port only gets its A/AAAA records (§4.2);
- a name without a port: SRV of its transport (``_sip._udp``, ``_sip._tcp``, ``_sips._tcp``), and
  when the transport was not given either, NAPTR first (§4.1): SIP services we listen on, in NAPTR
  order/preference; without NAPTR records, the SRV names of what we listen on. SRV records are ordered
  by priority and weighted random selection (RFC 2782, :func:`sipcore.location.locate.order_srv`); each target's
  A/AAAA records follow. No SRV records at all: the name's A/AAAA records with the default port.

Answers are cached by their TTL (at most ``max_ttl``; failures ``negative_ttl``) in a bounded cache.
``servers`` names the DNS servers (``dns.servers`` in gateway.yaml, host and port); without them the
system's configuration is used and A/AAAA go through ``getaddrinfo``, so /etc/hosts still counts. A DNS
failure (timeout, SERVFAIL, no configuration) counts as "no records": the next step is taken.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver

from gateway.sip.transports.transport import address_family
from sipcore.errors import TransportError
from sipcore.location.locate import (
    Hop,
    Lookup,
    NaptrRecord,
    SrvRecord,
    default_port,
    fallback_transports,
    is_ip,
    naptr_services,
    order_srv,
    plan,
    srv_name,
)
from sipcore.location.routing import Address, Target

__all__ = ["DnsSettings", "Resolver", "configured_target", "locate_addresses", "resolve"]

logger = logging.getLogger(__name__)

Record = NaptrRecord | SrvRecord | str  # str: an IP address (A/AAAA)


@dataclass(frozen=True, slots=True)
class DnsSettings:
    """Where and how to ask DNS (``dns:`` in gateway.yaml)."""

    servers: tuple[tuple[str, int], ...] = ()  # (IP, port); empty: the system's resolver
    timeout: float = 2.0  # seconds for one lookup, all servers together
    cache_size: int = 1024  # (name, type) answers kept
    max_ttl: float = 3600.0  # a longer TTL is cut to this
    negative_ttl: float = 30.0  # how long "no such record" (or a failed lookup) is kept

    def __post_init__(self) -> None:
        for host, port in self.servers:
            if not is_ip(host) or not 1 <= port <= 65535:
                raise ValueError(f"a DNS server is an IP address and a port, got {host!r}:{port!r}")
        if not 0 < self.timeout <= 60:
            raise ValueError(f"DNS timeout must be in (0, 60] seconds, got {self.timeout!r}")
        if self.cache_size < 0:
            raise ValueError(f"DNS cache_size must be 0 or more, got {self.cache_size!r}")


@dataclass(slots=True)
class _Cache:
    size: int
    entries: OrderedDict[tuple[str, str], tuple[float, tuple[Record, ...]]] = field(
        default_factory=OrderedDict
    )

    def get(self, key: tuple[str, str], now: float) -> tuple[Record, ...] | None:
        hit = self.entries.get(key)
        if hit is None:
            return None
        if hit[0] <= now:
            del self.entries[key]
            return None
        self.entries.move_to_end(key)
        return hit[1]

    def put(self, key: tuple[str, str], expires: float, records: tuple[Record, ...]) -> None:
        if self.size == 0:
            return
        self.entries[key] = (expires, records)
        self.entries.move_to_end(key)
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)


def _local_name(host: str) -> bool:
    """RFC 6761 §6.3: ``localhost`` never goes to DNS."""
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


class Resolver:
    """RFC 3263 server location with a TTL cache; one per transaction layer (see the module note)."""

    def __init__(
        self,
        settings: DnsSettings | None = None,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.settings = settings or DnsSettings()
        self._rng = rng or random.Random()
        self._clock = clock
        self._cache = _Cache(self.settings.cache_size)
        self._dns: dns.asyncresolver.Resolver | None = None
        self._dns_missing = False

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def _resolver(self) -> dns.asyncresolver.Resolver | None:
        if self._dns is None and not self._dns_missing:
            servers = self.settings.servers
            try:
                resolver = dns.asyncresolver.Resolver(configure=not servers)
            except dns.resolver.NoResolverConfiguration:
                logger.warning("no DNS resolver configured: SRV and NAPTR lookups are skipped")
                self._dns_missing = True
                return None
            if servers:
                resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port) for host, port in servers]
            resolver.lifetime = self.settings.timeout
            resolver.timeout = self.settings.timeout
            resolver.cache = None  # ours holds the answers
            self._dns = resolver
        return self._dns

    # --- RFC 3263 ------------------------------------------------------------------------------------
    async def locate(self, target: Target, supported: Collection[str]) -> list[Hop]:
        """The hops to try for ``target``, in order (RFC 3263 §4), using transports in ``supported``.
        Raises TransportError when there is none."""
        lookup = plan(target)
        if lookup is Lookup.NONE:
            return [Hop(target.transport, (target.host, target.port))]
        if lookup is Lookup.ADDRESS or _local_name(target.host):
            return [Hop(target.transport, a) for a in await self.addresses(target.host, target.port)]
        services: list[tuple[str, str]] = []
        if lookup is Lookup.NAPTR:
            naptr = [r for r in await self._query(target.host, "NAPTR") if isinstance(r, NaptrRecord)]
            services = naptr_services(naptr, supported)
            if naptr and not services:
                logger.info("NAPTR of %s names no transport the gateway listens on", target.host)
            if not services:
                services = [
                    (t, srv_name(t, target.host)) for t in fallback_transports(supported, target.transport)
                ]
        else:
            services = [(target.transport, srv_name(target.transport, target.host))]
        hops: list[Hop] = []
        for transport, name in services:
            records = [r for r in await self._query(name, "SRV") if isinstance(r, SrvRecord)]
            for record in order_srv(records, self._rng):
                try:
                    addresses = await self.addresses(record.target, record.port)
                except TransportError as exc:
                    logger.info("SRV target %s of %s: %s", record.target, name, exc.detail)
                    continue
                hops += [Hop(transport, a) for a in addresses if Hop(transport, a) not in hops]
        if hops:
            logger.debug("%s located: %s", target, ", ".join(map(str, hops)))
            return hops
        # RFC 3263 §4.2: no SRV records: the name's A/AAAA records, with the transport's default port.
        transport = services[0][0] if services and lookup is Lookup.NAPTR else target.transport
        port = target.port if transport == target.transport else default_port(transport)
        return [Hop(transport, a) for a in await self.addresses(target.host, port)]

    async def addresses(self, host: str, port: int) -> list[Address]:
        """IP addresses of ``host`` (A and AAAA) with ``port``; TransportError when there is none."""
        try:
            address_family(host)
        except ValueError:
            pass
        else:
            return [(host, port)]
        if not self.settings.servers or _local_name(host):
            return [(ip, port) for ip in await _getaddrinfo(host, port)]
        found = [r for rdtype in ("A", "AAAA") for r in await self._query(host, rdtype) if isinstance(r, str)]
        if not found:
            raise TransportError(f"no address for {host!r}")
        return [(ip, port) for ip in dict.fromkeys(found)]

    async def _query(self, name: str, rdtype: str) -> tuple[Record, ...]:
        key = (name.lower().rstrip("."), rdtype)
        now = self._now()
        cached = self._cache.get(key, now)
        if cached is not None:
            return cached
        resolver = self._resolver()
        if resolver is None:
            return ()
        ttl = self.settings.negative_ttl
        records: tuple[Record, ...] = ()
        try:
            answer = await resolver.resolve(name, rdtype, search=False, raise_on_no_answer=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoNameservers) as exc:
            logger.debug("DNS %s %s: %s", rdtype, name, exc)
        except dns.exception.DNSException as exc:  # a timeout, a bad name...: no records now
            logger.info("DNS %s %s failed: %s", rdtype, name, exc)
        else:
            records = tuple(_records(answer, rdtype))
            if answer.rrset is not None and records:
                ttl = min(float(answer.rrset.ttl), self.settings.max_ttl)
        self._cache.put(key, now + ttl, records)
        return records


def _records(answer: dns.resolver.Answer, rdtype: str) -> list[Record]:
    out: list[Record] = []
    if answer.rrset is None:
        return out
    kind = dns.rdatatype.from_text(rdtype)
    for rdata in answer.rrset:
        if rdata.rdtype != kind:
            continue
        try:
            if rdtype == "NAPTR":
                out.append(
                    NaptrRecord(
                        rdata.order,
                        rdata.preference,
                        rdata.flags.decode("ascii", "replace"),
                        rdata.service.decode("ascii", "replace"),
                        rdata.replacement.to_text(omit_final_dot=True),
                    )
                )
            elif rdtype == "SRV":
                out.append(
                    SrvRecord(
                        rdata.priority,
                        rdata.weight,
                        rdata.port,
                        rdata.target.to_text(omit_final_dot=True) or ".",
                    )
                )
            else:
                out.append(str(rdata.address))
        except ValueError as exc:
            logger.debug("DNS %s record of %s skipped: %s", rdtype, answer.qname, exc)
    return out


async def _getaddrinfo(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise TransportError(f"cannot resolve {host!r}: {exc}") from None
    out = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not out:
        raise TransportError(f"no address for {host!r}")
    return out


async def resolve(target: Target) -> list[Address]:
    """IP addresses of the target's host with its port (A/AAAA through ``getaddrinfo``, no SRV)."""
    return (
        [(ip, target.port) for ip in await _getaddrinfo(target.host, target.port)]
        if not is_ip(target.host)
        else [(target.host, target.port)]
    )


async def locate_addresses(
    resolver: Resolver, targets: Sequence[Target], supported: Collection[str]
) -> list[Address]:
    """Every address the targets locate to (RFC 3263): the PBX's, for credentials and trusted sources."""
    out: list[Address] = []
    for target in targets:
        for hop in await resolver.locate(target, supported):
            if hop.address not in out:
                out.append(hop.address)
    return out


def configured_target(transport: str, host: str, port: int | None, default_port: int) -> Target:
    """The next hop of a configured ``host[:port]`` (``pbx.address``, ``pbx.outbound_proxy``).

    RFC 3263: a host name without a port is located by SRV, and its transport chosen by NAPTR among
    those we listen on (the configured one first without NAPTR records), unless it is TLS, which is
    never traded for a plain transport; an explicit port pins both (§4.2)."""
    return Target(
        transport, host, port or default_port, port_given=port is not None, transport_given=transport == "TLS"
    )
