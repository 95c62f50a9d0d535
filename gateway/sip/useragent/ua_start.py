"""What the SIP user agent works out when it starts (:meth:`gateway.sip.useragent.ua.UserAgent.start`).

- Whom it trusts when ``sip.trusted_sources`` is empty: the PBX's hosts and every RFC 3263 target of
  the PBX hops (:func:`default_trusted_sources`).
- The address it writes in Via and Contact (:func:`contact_endpoints`): ``sip.public_address`` when
  set; else, per address family, the socket it listens on in that family, so a dual-stack gateway
  talking to an IPv6 PBX writes its IPv6 address; on the transport the PBX is reached by when it
  listens on it.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from gateway.sip.transactions.policy import TrustedSources
from gateway.sip.transports.resolver import Resolver
from gateway.sip.transports.transport import Transport, address_family
from gateway.sip.useragent.ua_settings import ALLOW
from sipcore.dialogs.requests import Endpoint
from sipcore.errors import SIPError
from sipcore.location.routing import Target
from sipcore.syntax.message import Request

if TYPE_CHECKING:
    from gateway.sip.transactions.layer import TransactionLayer
    from gateway.sip.useragent.ua_settings import UASettings

__all__ = ["contact_endpoints", "default_trusted_sources", "family_of"]

logger = logging.getLogger(__name__)

Family = socket.AddressFamily | None


def family_of(host: str) -> Family:
    """The family of an IP literal (brackets allowed); None for a name."""
    try:
        return address_family(host)
    except ValueError:
        return None


async def default_trusted_sources(
    settings: UASettings, resolver: Resolver, in_dialog: Callable[[Request], bool]
) -> TrustedSources:
    """``trusted_sources``, or else the PBX's addresses (as ``TrustedSources.from_config``), with
    every SRV target of the PBX hops (RFC 3263)."""
    networks = list(settings.trusted_sources)
    outbound = settings.outbound
    hosts = settings.pbx_hosts or ((outbound.host,) if outbound is not None else ())
    located = (*settings.credential_hops, *((outbound,) if outbound is not None else ()))
    if not networks:
        targets = [Target("UDP", host) for host in hosts] + [t for t in located if not t.port_given]
        for target in targets:
            try:
                for hop in await resolver.locate(
                    target,
                    frozenset(item.transport.upper() for item in settings.listen) | {target.transport},
                ):
                    address = hop.address[0]
                    network = ipaddress.ip_network(address.split("%")[0])
                    if network not in networks:
                        networks.append(network)
            except (SIPError, ValueError) as exc:
                logger.warning("cannot resolve PBX host %r for trusted sources: %s", target.host, exc)
    if not networks:
        logger.warning("no trusted SIP sources: every request outside a dialog will be refused")
    return TrustedSources(networks, in_dialog=in_dialog)


def contact_endpoints(
    layer: TransactionLayer, settings: UASettings, opened: Transport
) -> tuple[Endpoint, dict[Family, Endpoint]]:
    """(the endpoint toward the PBX, which REGISTER and calls to it use; the endpoints per address
    family, none when ``sip.public_address`` is set). ``opened``: the first listening transport."""
    public = settings.public_address
    host = public[0] if public is not None else opened.local[0]
    public_port = public[1] if public is not None else None
    # Contact names the transport the PBX is reached by, when we listen on it.
    names = {t.name for t in layer.transports}
    outbound = settings.outbound
    transport = outbound.transport if outbound is not None and outbound.transport in names else opened.name
    supported = settings.option_tags

    def endpoint(host: str, family: Family) -> Endpoint:
        port = public_port or next(
            (t.local[1] for t in layer.transports if t.name == transport and family_of(t.local[0]) == family),
            next(t.local[1] for t in layer.transports if t.name == transport),
        )
        return Endpoint(
            host, port, transport, user_agent=settings.user_agent, allow=ALLOW, supported=supported
        )

    endpoints: dict[Family, Endpoint] = {}
    if public is None:  # one per family we listen in (a wildcard socket has no address to write)
        for listening in layer.transports:
            local = listening.local[0]
            family = family_of(local)
            if family is None or family in endpoints or listening.name != transport:
                continue
            if not ipaddress.ip_address(local).is_unspecified:
                endpoints[family] = endpoint(local, family)
    default = endpoint(host, family_of(host))
    if outbound is not None and (toward_pbx := endpoints.get(family_of(outbound.host))) is not None:
        default = toward_pbx  # REGISTER and calls to the PBX
    return default, endpoints
