"""Which address families the SIP leg's RTP serves, and on which addresses (pure).

Per family ("IP4", "IP6"): the host RTP binds to (the first `sip.listen` host of that family, else the
family's wildcard) and the address written into SDP c=/o= lines (`media.public_address` of that family,
else the bind host). A family whose bind host is a wildcard serves only with a public address of its
own (``c=IN IP4 0.0.0.0`` would say "on hold"). The first family is the default, used for offers the
gateway makes before it knows the far end's family (calls to the PBX): `pbx.address`'s family when it
is an IP literal served, else the first listen host's.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

WILDCARDS = {"IP4": "0.0.0.0", "IP6": "::"}


class _Range(Protocol):
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...


def web_ports_overlap(rtp: _Range, web: _Range | None) -> Iterator[tuple[str, str]]:
    """`media.web_ports` (the web legs' ICE sockets, issue 36) must lie apart from `media.rtp_ports`:
    two allocators on one port would each take the other's sockets for another process's."""
    if web is not None and web.start <= rtp.end and rtp.start <= web.end:
        yield (
            "media.web_ports",
            f"{web.start}-{web.end} overlaps media.rtp_ports {rtp.start}-{rtp.end}: give the web "
            "legs a range of their own, or leave web_ports out to share rtp_ports",
        )


@dataclass(frozen=True, slots=True)
class RtpAddress:
    bind_host: str  # where the RTP/RTCP sockets bind
    public: str | None  # what SDP says, when not the bind host

    @property
    def sdp_address(self) -> str:
        return self.public or self.bind_host


def family_of(host: str) -> str:
    """ "IP6" for an IPv6 literal (bracketed or not), else "IP4" (IPv4 literals and host names)."""
    return "IP6" if ":" in host else "IP4"


def rtp_addresses(
    listen_hosts: Iterable[str], public: Iterable[object], pbx_host: str | None = None
) -> Mapping[str, RtpAddress]:
    """The families served, the default first (see the module note)."""
    binds: dict[str, str] = {}
    for host in listen_hosts:
        bare = host.strip("[]")
        binds.setdefault(family_of(bare), bare)
    publics = {family_of(str(address)): str(address) for address in public}
    served: dict[str, RtpAddress] = {}
    for family in [*binds, *(f for f in publics if f not in binds)]:
        bind = binds.get(family, WILDCARDS[family])
        if bind in WILDCARDS.values() and family not in publics:
            continue  # a wildcard with nothing to write into SDP
        served[family] = RtpAddress(bind, publics.get(family))
    preferred = _literal_family(pbx_host)
    if preferred in served:
        served = {preferred: served[preferred], **{f: a for f, a in served.items() if f != preferred}}
    return MappingProxyType(served)


def _literal_family(host: str | None) -> str | None:
    if host is None:
        return None
    try:
        return "IP6" if ipaddress.ip_address(host.strip("[]")).version == 6 else "IP4"
    except ValueError:
        return None
