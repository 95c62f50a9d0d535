"""A web leg's ICE sockets, bound in the configured port range (issue 36: all media on the configured ports).

aioice 0.13 binds each host candidate's socket to port 0 (``Connection.get_component_candidates``) and
its TURN client socket to an ephemeral port, and aiortc offers no way to choose: a firewall would have
to open every port. ``IceSockets`` replaces each ICE connection's ``get_component_candidates`` before
gathering (``cover()``, called before every ``setLocalDescription``) with one that takes the sockets
from an ``RtpPortAllocator``: ``media.web_ports`` when configured, else ``media.rtp_ports``, shared with
the SIP legs so that readiness's free port pairs stay true; the gateway puts its ``IcePool`` (ice_pool.py,
sockets bound ahead of the calls) in front of that allocator. Each host address takes one pair (the even
port; the odd one stays reserved: rtcp-mux), leased for the call, so the per-user port budget counts it.

* Host candidates: one leased socket per gathered address (``ice.host_addresses`` when set, plus
  127.0.0.1 for a gateway on loopback: aioice leaves loopback out).
* Server-reflexive candidates (``ice.gateway`` STUN) are answers about those same sockets.
* A TURN relay over UDP (``ice.gateway`` TURN) runs from a leased socket too; over TCP or TLS it is
  aioice's own TCP client connection (outbound, not a UDP port of ours).
* A range with no free pair fails the gathering with ``PortsExhausted`` (the web leg's
  ``WebLegError``): the call is refused, nothing is kept. An address that cannot be bound (gone since
  the interfaces were listed) is skipped, as aioice does.
* ``reserve()`` leases the host pairs before gathering: a browser's call takes them before the INVITE
  goes out, so a range without room refuses the call before the SIP side rings. ``reserve_for(connection)``
  leases them for one m-line's ICE connection only (our first offer to a browser, written ahead of
  aiortc's gathering, names each m-line's sockets: web_offer.py).
* Ports go back when the ICE connection closes (``close`` is wrapped: the peer connection's close, a
  BUNDLE'd transport aiortc drops) and, whatever happened, at ``release()`` (the web leg's close). An
  ICE restart in place (``ice_restart``) keeps its sockets, so it leases nothing.

What is not ours to bind: aioice's mDNS resolver (UDP 5353, multicast) when a browser hides its address
behind an mDNS name; it carries no media.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import aioice.ice
import aioice.turn
from aioice import Candidate, Connection
from aioice.candidate import candidate_foundation, candidate_priority
from aioice.ice import StunProtocol, server_reflexive_candidate
from aiortc import RTCPeerConnection

from gateway.media.errors import PortAllocationError
from gateway.media.rtp.ports import PortLease
from gateway.media.webrtc import aiortc_hooks

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


class PortSource(Protocol):
    """Where ICE sockets come from: media.web_ports' or media.rtp_ports' ``RtpPortAllocator``, or the
    gateway's ``IcePool`` in front of it (sockets bound before the call)."""

    def allocate(self, host: str, *, rtcp_mux: bool = False, owner: str | None = None) -> PortLease: ...


class PortsExhausted(OSError):
    """The range has no free pair for an ICE socket: an ``OSError``, as a socket that cannot be opened
    (EMFILE), which fails the web leg's gathering the same way (``WebLegError``)."""


@dataclass(slots=True)
class _Held:
    connection: Connection | None  # None: reserved, not gathered on yet
    lease: PortLease
    transport: asyncio.BaseTransport | None = None
    meant: Connection | None = None  # reserved for that connection's gathering (reserve_for); None: any

    def release(self) -> None:
        if self.transport is not None:
            self.transport.close()  # off the selector before its socket closes
        self.lease.release()


class LegOptions(Protocol):
    """What ``IceSockets.of`` reads of a web leg's options (``WebLegOptions``)."""

    @property
    def ports(self) -> PortSource | None: ...
    @property
    def host_addresses(self) -> tuple[str, ...] | None: ...
    @property
    def include_loopback(self) -> bool: ...


def gathered_hosts(addresses: Sequence[str] | None, include_loopback: bool) -> list[str]:
    """The host addresses a web leg gathers on: ``ice.host_addresses``, else every interface (aioice's
    enumeration, cached by the gateway: aiortc_hooks.cache_host_addresses), 127.0.0.1 added on a
    loopback gateway."""
    chosen = list(addresses) if addresses is not None else list(aioice.ice.get_host_addresses(True, True))
    if include_loopback and LOOPBACK not in chosen:
        chosen.append(LOOPBACK)
    return chosen


class IceSockets:
    """The ICE sockets of one web leg's peer connection (module note). ``ports`` None: aioice binds
    (tests and embedders without a range); the address choice applies all the same."""

    def __init__(
        self,
        pc: RTCPeerConnection,
        *,
        ports: PortSource | None,
        owner: str,
        host_addresses: Sequence[str] | None = None,
        include_loopback: bool = False,
    ) -> None:
        self._pc, self._ports, self._owner = pc, ports, owner
        self._addresses = None if host_addresses is None else tuple(host_addresses)
        self._loopback = include_loopback
        self._covered: set[Connection] = set()
        self._held: list[_Held] = []

    @classmethod
    def of(cls, pc: RTCPeerConnection, options: LegOptions, owner: str) -> IceSockets:
        """A web leg's: its range, its host addresses, 127.0.0.1 on a loopback gateway."""
        return cls(
            pc, ports=options.ports, owner=owner, host_addresses=options.host_addresses,
            include_loopback=options.include_loopback,
        )  # fmt: skip

    @property
    def ports(self) -> tuple[int, ...]:
        """The ports this leg holds now."""
        return tuple(held.lease.rtp_port for held in self._held)

    def cover(self) -> None:
        """Gather every ICE connection of the peer connection not covered yet in the range (before each
        ``setLocalDescription``: an offer with video or a data channel has one connection per m-line)."""
        if self._ports is None and self._addresses is None and not self._loopback:
            return
        for connection in aiortc_hooks.ice_connections(self._pc):
            if connection not in self._covered:
                self._covered.add(connection)
                self._install(connection)

    def reserve(self) -> None:
        """Lease the host candidates' pairs now (a web leg that will gather later: a call that the range
        cannot carry is refused before the SIP side rings). ``PortAllocationError`` when it has none."""
        ports = self._ports
        if ports is None or self._held:
            return
        for host in gathered_hosts(self._addresses, self._loopback):
            try:
                lease = ports.allocate(host, rtcp_mux=True, owner=self._owner)
            except PortAllocationError as exc:
                if not isinstance(exc.__cause__, OSError):
                    raise
                continue  # that address cannot be bound: gathering skips it too
            self._held.append(_Held(None, lease))

    def reserve_for(self, connection: Connection) -> list[tuple[str, int]]:
        """Lease the host candidates' pairs that ``connection`` (one m-line's ICE connection) will gather
        on, and only it (an offer with a data channel has two, gathered in no set order); (address, port)
        of each, in gathering order (web_offer.py writes them ahead). Pairs ``reserve`` took are its first.
        ``PortAllocationError`` when the range has none; [] without a range."""
        ports = self._ports
        if ports is None:
            return []
        mine: list[_Held] = []
        for host in gathered_hosts(self._addresses, self._loopback):
            held = next(
                (h for h in self._held if h.connection is None and h.meant is None and h.lease.host == host),
                None,
            )
            if held is None:
                try:
                    held = _Held(None, ports.allocate(host, rtcp_mux=True, owner=self._owner))
                except PortAllocationError as exc:
                    if not isinstance(exc.__cause__, OSError):
                        raise
                    continue  # that address cannot be bound: gathering skips it too
                self._held.append(held)
            held.meant = connection
            mine.append(held)
        return [(held.lease.host, held.lease.rtp_port) for held in mine]

    def reserved(self) -> list[tuple[str, int]]:
        """(address, port) of the pairs ``reserve`` took and no gathering used yet, in gathering order:
        the host candidates the next gathering will offer (web_answer.py writes them ahead)."""
        return [(held.lease.host, held.lease.rtp_port) for held in self._held if held.connection is None]

    def release(self) -> None:
        """Close what is left of this leg's sockets and give their ports back. Idempotent."""
        held, self._held = self._held, []
        for item in held:
            item.release()
        self._covered.clear()

    def _chosen(self, found: Sequence[str]) -> list[str]:
        chosen = list(self._addresses) if self._addresses is not None else list(found)
        if self._loopback and LOOPBACK not in chosen:
            chosen.append(LOOPBACK)
        return chosen

    def _install(self, connection: Connection) -> None:
        ports = self._ports
        if ports is None:
            original = connection.get_component_candidates

            async def restricted(component: int, addresses: list[str], timeout: int = 5) -> list[Candidate]:
                return await original(component=component, addresses=self._chosen(addresses), timeout=timeout)

            connection.get_component_candidates = restricted  # type: ignore[method-assign]
            return

        async def ranged(component: int, addresses: list[str], timeout: int = 5) -> list[Candidate]:
            return await self._gather(ports, connection, component, self._chosen(addresses), timeout)

        close = connection.close

        async def closing() -> None:
            try:
                await close()
            finally:
                self._release(connection)

        connection.get_component_candidates = ranged  # type: ignore[method-assign]
        connection.close = closing  # type: ignore[method-assign]

    def _release(self, connection: Connection) -> None:
        mine = [held for held in self._held if held.connection is connection]
        self._held = [held for held in self._held if held.connection is not connection]
        for held in mine:
            held.release()

    def _lease(self, ports: PortSource, connection: Connection, host: str) -> _Held | None:
        """A pair on ``host``, reserved (``reserve``) or leased now (None: that address cannot be bound);
        ``PortsExhausted`` when the range has no free pair."""
        for held in self._held:
            if held.connection is None and held.lease.host == host and held.meant in (None, connection):
                held.connection = connection
                return held
        try:
            lease = ports.allocate(host, rtcp_mux=True, owner=self._owner)
        except PortAllocationError as exc:
            if isinstance(exc.__cause__, OSError):  # this address, not the range
                logger.info("call=%s ICE host candidate on %s skipped: %s", self._owner, host, exc)
                return None
            raise PortsExhausted(errno.EADDRINUSE, str(exc)) from exc
        held = _Held(connection, lease)
        self._held.append(held)
        lease.rtp_socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, aioice.turn.UDP_SOCKET_BUFFER_SIZE)
        return held

    async def _gather(
        self,
        ports: PortSource,
        connection: Connection,
        component: int,
        addresses: list[str],
        timeout: int,
    ) -> list[Candidate]:
        """aioice's gathering (host, then server-reflexive and relayed in parallel) on leased sockets."""
        loop = asyncio.get_running_loop()
        candidates: list[Candidate] = []
        hosts: list[StunProtocol] = []
        for address in addresses:
            held = self._lease(ports, connection, address)
            if held is None:
                continue
            sock = held.lease.rtp_socket
            held.transport, protocol = await loop.create_datagram_endpoint(
                lambda: StunProtocol(connection), sock=sock
            )
            host, port = sock.getsockname()[:2]
            protocol.local_candidate = Candidate(
                foundation=candidate_foundation("host", "udp", host),
                component=component,
                transport="udp",
                priority=candidate_priority(component, "host"),
                host=host,
                port=port,
                type="host",
            )
            aiortc_hooks.add_protocol(connection, protocol)
            hosts.append(protocol)
            candidates.append(protocol.local_candidate)
        tasks: list[asyncio.Task[Candidate]] = []
        if connection.stun_server:  # RFC 8445 §5.1.1.2, IPv4 only as aioice
            stun = connection.stun_server
            tasks += [
                asyncio.create_task(self._reflexive(protocol, stun))
                for protocol in hosts
                if ":" not in protocol.local_candidate.host
            ]
        if connection.turn_server:
            tasks.append(asyncio.create_task(self._relayed(ports, connection, component)))
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            for task in done:
                if task.exception() is None:
                    candidates.append(task.result())
                else:
                    logger.info("call=%s ICE candidate not gathered: %r", self._owner, task.exception())
        return candidates

    @staticmethod
    async def _reflexive(protocol: StunProtocol, stun: tuple[str, int]) -> Candidate:
        candidate, _ = await server_reflexive_candidate(protocol, stun)
        return candidate

    async def _relayed(self, ports: PortSource, connection: Connection, component: int) -> Candidate:
        """A relayed candidate (RFC 5766 §6), its client socket leased when the TURN transport is UDP."""
        server = connection.turn_server
        assert server is not None
        if connection.turn_transport != "udp":
            candidate, protocol = await aioice.ice.relayed_candidate(
                component=component, hide_related_address=False,
                protocol_factory=lambda: StunProtocol(connection), turn_server=server,
                turn_username=connection.turn_username, turn_password=connection.turn_password,
                turn_ssl=connection.turn_ssl, turn_transport=connection.turn_transport,
            )  # fmt: skip
            aiortc_hooks.add_protocol(connection, protocol)
            return candidate
        loop = asyncio.get_running_loop()
        family, _, _, _, found = (await loop.getaddrinfo(*server, type=socket.SOCK_DGRAM))[0]
        address = (str(found[0]), int(found[1]))
        held = self._lease(ports, connection, "::" if family == socket.AF_INET6 else "0.0.0.0")
        if held is None:
            raise PortAllocationError(f"no socket for the TURN server {server[0]}:{server[1]}")
        sock = held.lease.rtp_socket
        sock.connect(address)  # aioice's TURN client sends without an address
        inner_transport, inner = await loop.create_datagram_endpoint(
            lambda: aioice.turn.TurnClientUdpProtocol(
                address, username=connection.turn_username, password=connection.turn_password,
                lifetime=aioice.turn.DEFAULT_ALLOCATION_LIFETIME,
                channel_refresh_time=aioice.turn.DEFAULT_CHANNEL_REFRESH_TIME,
            ),
            sock=sock,
        )  # fmt: skip
        held.transport = inner_transport
        protocol = StunProtocol(connection)
        await aiortc_hooks.connect_turn(aioice.turn.TurnTransport(inner), protocol)
        relayed = protocol.transport.get_extra_info("sockname")
        related = protocol.transport.get_extra_info("related_address")
        protocol.local_candidate = Candidate(
            foundation=candidate_foundation("relay", "udp", relayed[0]),
            component=component,
            transport="udp",
            priority=candidate_priority(component, "relay"),
            host=relayed[0],
            port=relayed[1],
            type="relay",
            related_address=related[0],
            related_port=related[1],
        )
        aiortc_hooks.add_protocol(connection, protocol)
        return protocol.local_candidate
