"""Locating SIP servers (RFC 3263 §4): which DNS lookups a next hop needs, and the order of targets.

Pure: the asyncio shell (:mod:`gateway.sip.transports.resolver`) makes the queries and hands the records here.

- :func:`plan` says what to look up for a :class:`~sipcore.location.routing.Target` (§4.1, §4.2): an IP
  address needs nothing; a name with an explicit port only its A/AAAA records; a name without a port
  SRV records of its transport, or first NAPTR records when the transport was not given either.
- :func:`naptr_services` orders NAPTR records (RFC 3403 §4.1: order, then preference), keeps the SIP
  services we can use (``SIP+D2U``, ``SIP+D2T``, ``SIPS+D2T``; ``SIP+D2S`` is SCTP, which the
  gateway does not speak) and gives the SRV name each one points at (flag ``s``, §4.1).
- :func:`order_srv` orders SRV records per RFC 2782: lowest priority first; within one priority a
  weighted random draw (the random source is passed in, so tests can fix it).
"""

from __future__ import annotations

import enum
import ipaddress
import random
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from sipcore.location.routing import DEFAULT_PORT, DEFAULT_TLS_PORT, Address, Target

__all__ = [
    "NAPTR_SERVICES",
    "SRV_PREFIXES",
    "Hop",
    "Lookup",
    "NaptrRecord",
    "SrvRecord",
    "is_ip",
    "naptr_services",
    "order_srv",
    "plan",
    "srv_name",
]

# RFC 3263 §4.1 (and RFC 3261 §26.4 for SIPS): NAPTR service field -> our Via transport token.
NAPTR_SERVICES: Final = {"SIP+D2U": "UDP", "SIP+D2T": "TCP", "SIPS+D2T": "TLS"}
# RFC 3263 §4.1: the SRV prefix of each transport, used when there are no NAPTR records.
SRV_PREFIXES: Final = {"UDP": "_sip._udp", "TCP": "_sip._tcp", "TLS": "_sips._tcp"}
# Without NAPTR records, the SRV lookups are tried in this order (RFC 3263 §4.1: the client's own
# preference among what it supports): secure first, then UDP as RFC 3261 mandates, then TCP.
SRV_PREFERENCE: Final = ("TLS", "UDP", "TCP")


class Lookup(enum.Enum):
    """What RFC 3263 asks for a target."""

    NONE = "none"  # an IP address: use it with its port (§4.2)
    ADDRESS = "address"  # a name with a port: A/AAAA only (§4.2)
    SRV = "srv"  # a name without a port, transport known: SRV, then A/AAAA (§4.2)
    NAPTR = "naptr"  # a name, no port, no transport: NAPTR, then SRV, then A/AAAA (§4.1)


@dataclass(frozen=True, slots=True)
class NaptrRecord:
    """One NAPTR record (RFC 3403 §4.1) as far as SIP uses it."""

    order: int
    preference: int
    flags: str
    service: str
    replacement: str

    def __post_init__(self) -> None:
        for name in ("order", "preference"):
            value = getattr(self, name)
            if not 0 <= value <= 65535:
                raise ValueError(f"NAPTR {name} must be 0-65535, got {value!r}")


@dataclass(frozen=True, slots=True)
class SrvRecord:
    """One SRV record (RFC 2782)."""

    priority: int
    weight: int
    port: int
    target: str  # a host name without the trailing dot; "." means "no service here"

    def __post_init__(self) -> None:
        for name in ("priority", "weight", "port"):
            value = getattr(self, name)
            if not 0 <= value <= 65535:
                raise ValueError(f"SRV {name} must be 0-65535, got {value!r}")
        if not self.target:
            raise ValueError("SRV target must not be empty")


@dataclass(frozen=True, slots=True)
class Hop:
    """One place to send a request: a transport token and an IP address with its port."""

    transport: str
    address: Address

    def __str__(self) -> str:
        host, port = self.address
        return f"{self.transport} {f'[{host}]' if ':' in host else host}:{port}"


def is_ip(host: str) -> bool:
    """Whether ``host`` is an IPv4 or IPv6 literal (no brackets)."""
    try:
        ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    return True


def plan(target: Target) -> Lookup:
    """The lookups RFC 3263 §4.1-4.2 asks for ``target``."""
    if is_ip(target.host):
        return Lookup.NONE
    if target.port_given:
        return Lookup.ADDRESS
    return Lookup.SRV if target.transport_given else Lookup.NAPTR


def srv_name(transport: str, host: str) -> str:
    """The SRV owner name of ``transport`` at ``host`` (``_sip._udp.example.com``)."""
    try:
        return f"{SRV_PREFIXES[transport]}.{host.rstrip('.')}"
    except KeyError:
        raise ValueError(f"no SRV service for transport {transport!r}") from None


def default_port(transport: str) -> int:
    return DEFAULT_TLS_PORT if transport == "TLS" else DEFAULT_PORT


def naptr_services(
    records: Iterable[NaptrRecord], supported: Collection[str], *, secure: bool = False
) -> list[tuple[str, str]]:
    """(transport, SRV name) pairs in the order to try (RFC 3263 §4.1, RFC 3403 §4.1).

    Records are sorted by order, then preference; only terminal ``s`` records of a SIP service whose
    transport is in ``supported`` remain (RFC 3263 §4.1: discard what the client does not support);
    ``secure`` (a SIPS URI) keeps only SIPS services. A transport appears once, at its best record."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for record in sorted(records, key=lambda r: (r.order, r.preference)):
        transport = NAPTR_SERVICES.get(record.service.upper())
        if transport is None or record.flags.lower() != "s" or transport not in supported:
            continue
        if secure and transport != "TLS":
            continue
        if transport in seen or not record.replacement or record.replacement == ".":
            continue
        seen.add(transport)
        out.append((transport, record.replacement.rstrip(".")))
    return out


def fallback_transports(supported: Collection[str], preferred: str | None = None) -> list[str]:
    """Transports whose SRV names are tried when there are no NAPTR records (RFC 3263 §4.1):
    ``preferred`` (the configured one) first, then our own order among what we support."""
    order = [preferred] if preferred is not None else []
    order += [t for t in SRV_PREFERENCE if t != preferred]
    return [t for t in order if t in supported]


def order_srv(records: Sequence[SrvRecord], rng: random.Random) -> list[SrvRecord]:
    """SRV records in the order to contact them (RFC 2782, "Usage rules").

    Lowest priority first. Within a priority, repeatedly: put the zero-weight records first, sum the
    weights, draw a number in [0, sum], and take the first record whose running sum reaches it. A
    lone record whose target is ``.`` means the service is decidedly not available: no records."""
    if len(records) == 1 and records[0].target in (".", ""):
        return []
    usable = [r for r in records if r.target not in (".", "")]
    ordered: list[SrvRecord] = []
    for priority in sorted({r.priority for r in usable}):
        group = sorted((r for r in usable if r.priority == priority), key=lambda r: r.weight != 0)
        while group:
            total = sum(r.weight for r in group)
            pick = rng.randint(0, total)
            running = 0
            for index, record in enumerate(group):
                running += record.weight
                if running >= pick:
                    ordered.append(group.pop(index))
                    break
    return ordered
