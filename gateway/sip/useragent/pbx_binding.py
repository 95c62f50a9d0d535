"""Where the users' PBX credentials may go (toll-fraud protection, RFC 3261 §22, §26.2.3).

The digest credentials of a web user belong to the PBX. A challenge (401/407) is answered only
when the challenged request went to the PBX itself: its resolved next hop is one of the
configured PBX hops (``pbx.outbound_proxy``, ``pbx.address``, and those of every `pbxs:` entry),
compared as IP and port, and, when that PBX's ``realm`` is set, every realm challenged is that one. Anyone else who challenges (a far
end reached directly in a dialog, a redirect target) would otherwise obtain a valid
Authorization for the PBX's realm and nonce to replay: their 401/407 is a failure instead.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterable

from gateway.sip.transports.resolver import Resolver, resolve
from sipcore.auth.digest import parse_challenges
from sipcore.errors import SIPError
from sipcore.location.routing import Address, Target
from sipcore.syntax.message import Response

__all__ = ["PbxBinding"]

logger = logging.getLogger(__name__)


def _normal(address: Address) -> Address:
    host = address[0].strip("[]").split("%")[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host.lower(), address[1]
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip), address[1]


class PbxBinding:
    """The PBX's addresses (and realm) that credentials are bound to."""

    def __init__(
        self, addresses: Iterable[Address], realm: str | None = None, realms: dict[Address, str] | None = None
    ) -> None:
        self.addresses = frozenset(_normal(address) for address in addresses)
        self.realm = realm  # every address's, unless `realms` (several PBXs) names its own
        self.realms = {_normal(address): value for address, value in (realms or {}).items()}

    def __repr__(self) -> str:
        hops = ", ".join(f"{h}:{p}" for h, p in sorted(self.addresses))
        return f"PbxBinding({hops}; realm={self.realm!r})"

    @classmethod
    async def resolve(
        cls,
        hops: Iterable[Target],
        realm: str | Callable[[Target], str | None] | None = None,
        *,
        resolver: Resolver | None = None,
        supported: frozenset[str] = frozenset(),
    ) -> PbxBinding:
        """The hops' addresses: with ``resolver``, every one RFC 3263 locates (NAPTR/SRV targets
        included, over the ``supported`` transports), else their A/AAAA records. ``realm``: the one
        realm answered, or each hop's (several PBXs: `UASettings.realm_of`)."""
        addresses: list[Address] = []
        realms: dict[Address, str] = {}
        for hop in hops:
            try:
                if resolver is not None:
                    found = [h.address for h in await resolver.locate(hop, supported or {hop.transport})]
                else:
                    found = list(await resolve(hop))
                addresses.extend(found)
                own = realm(hop) if callable(realm) else None
                realms.update(dict.fromkeys(found, own) if own is not None else {})
            except SIPError as exc:
                logger.warning("cannot resolve PBX hop %s: credentials will not be sent there: %s", hop, exc)
        if not addresses:
            # No PBX configured (or none resolvable, warned above): calls and in-dialog requests are never
            # authenticated; each registration still answers its own registrar's challenges.
            logger.info("no PBX hop: challenges to calls and in-dialog requests will not be answered")
        return cls(addresses, None if callable(realm) else realm, realms)

    def refusal(self, destination: Address | None, challenge: Response) -> str | None:
        """Why the credentials must not answer ``challenge`` to a request sent to
        ``destination``, or None when they may."""
        if destination is None or _normal(destination) not in self.addresses:
            where = "nowhere" if destination is None else f"{destination[0]}:{destination[1]}"
            return f"challenged by {where}, which is not the PBX"
        expected = self.realms.get(_normal(destination), self.realm)
        if expected is not None:
            try:
                realms = {c.realm for c in parse_challenges(challenge)}
            except SIPError as exc:
                return f"unreadable challenge: {exc.detail}"
            if realms - {expected}:
                return f"realm {sorted(realms - {expected})!r} is not the PBX's {expected!r}"
        return None
