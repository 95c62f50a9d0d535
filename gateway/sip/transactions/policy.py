"""Which sources may send the gateway requests (toll-fraud protection).

A gateway that places calls for whoever sends it an INVITE is an open relay to the PBX's trunks.
Every request that would create a transaction is checked by a :class:`SourcePolicy` before the
user agent sees it: :class:`Accept` it, :class:`Reject` it (the layer answers 403 statelessly;
ACKs are dropped), or :class:`Challenge` it (a hook for digest verification of untrusted
sources, RFC 3261 §22.3: not implemented yet, the layer rejects those with 403 for now).

:class:`TrustedSources` accepts requests whose source IP is in the configured
``sip.trusted_sources`` networks; an empty list means only the PBX (``pbx.address`` and
``pbx.outbound_proxy``, resolved when the gateway starts), as the configuration documents.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from gateway.sip.transports.transport import Source
from sipcore.syntax.message import Request

if TYPE_CHECKING:
    from gateway.config.schema import PbxSection, SipSection

__all__ = ["Accept", "AcceptAll", "Challenge", "Decision", "Reject", "SourcePolicy", "TrustedSources"]

logger = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Accept:
    """Hand the request to the user agent."""


@dataclass(frozen=True, slots=True)
class Reject:
    """Answer statelessly with this status (403 Forbidden by default)."""

    status: int = 403
    reason: str = "Forbidden"

    def __post_init__(self) -> None:
        if not 400 <= self.status <= 699:
            raise ValueError(f"a rejection needs a 4xx-6xx status, not {self.status!r}")


@dataclass(frozen=True, slots=True)
class Challenge:
    """Ask for digest credentials (401 with WWW-Authenticate in ``realm``); not implemented yet."""

    realm: str


Decision = Accept | Reject | Challenge


class SourcePolicy(Protocol):
    """A policy may also have ``trusts(host) -> bool``: sources it trusts skip the pre-check."""

    def check(self, request: Request, source: Source) -> Decision:
        """Decide on an out-of-transaction request (never called for responses).

        It is called twice for a source it may not trust: first on a light view of the request
        before the full parse (start line, top Via, From, To, Call-ID, CSeq only), where a
        refusal is final and saves the parse; then on the whole request."""


class AcceptAll:
    """Accept everything: for tests and for networks where a firewall does the filtering."""

    def check(self, request: Request, source: Source) -> Decision:
        return Accept()

    def trusts(self, host: str) -> bool:
        return True


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class TrustedSources:
    """Accept requests from IPs in ``networks`` (and from SIP WebSocket flows, whose browsers
    gateway/websip authenticates by digest); reject the rest with 403.

    ``in_dialog`` is a hook for the dialog layer: a request it recognises as belonging to an
    established dialog (e.g. a BYE from the far end of a call the gateway placed through a
    trusted PBX) is accepted from any source."""

    def __init__(
        self,
        networks: Iterable[Network],
        *,
        in_dialog: Callable[[Request], bool] | None = None,
        rejection: Decision = Reject(),
    ) -> None:
        self.networks = tuple(networks)
        self._in_dialog = in_dialog
        self._rejection = rejection

    def __repr__(self) -> str:
        return f"TrustedSources({', '.join(str(n) for n in self.networks)})"

    def trusts(self, host: str) -> bool:
        ip = _ip(host)
        return ip is not None and any(ip in network for network in self.networks)

    def check(self, request: Request, source: Source) -> Decision:
        if self.trusts(source.host):
            return Accept()
        if source.transport.name in ("WS", "WSS"):
            return Accept()  # browsers' SIP libraries: digest-authenticated by gateway/websip
        if self._in_dialog is not None and self._in_dialog(request):
            return Accept()
        logger.debug(
            "sip_call_id=%s %s from untrusted source %s refused", request.call_id, request.method, source
        )
        return self._rejection

    @classmethod
    async def from_config(
        cls, sip: SipSection, pbx: PbxSection, *, in_dialog: Callable[[Request], bool] | None = None
    ) -> TrustedSources:
        """The configured networks, or when there are none the PBX's addresses (resolved now)."""
        if sip.trusted_sources:
            return cls(sip.trusted_sources, in_dialog=in_dialog)
        hosts = [hp.host for hp in (pbx.address, pbx.outbound_proxy) if hp is not None]
        networks: list[Network] = []
        loop = asyncio.get_running_loop()
        for host in hosts:
            ip = _ip(host)
            if ip is not None:
                networks.append(ipaddress.ip_network(ip))
                continue
            try:
                infos = await loop.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
            except OSError as exc:
                logger.warning("cannot resolve PBX host %r for trusted sources: %s", host, exc)
                continue
            for info in infos:
                resolved = _ip(str(info[4][0]))
                if resolved is not None and ipaddress.ip_network(resolved) not in networks:
                    networks.append(ipaddress.ip_network(resolved))
        if not networks:
            logger.warning("no trusted SIP sources: every inbound request will be refused")
        return cls(networks, in_dialog=in_dialog)
