"""RTP port allocation over a configured range.

RFC 3550 §11: RTP takes an even port and RTCP the next odd one. The allocator keeps the free even ports
in a FIFO queue, so a released port goes to the back and is reused as late as possible (late packets of
an ended call then do not reach the next one). Allocation binds the sockets itself, which is the only
race-free way to know a port is free: a port another process holds (EADDRINUSE) is put back at the end
of the queue and the next one is tried. Every operation is O(1) except that skipping. Each lease may
name its owner (a call id): `held_by` counts an owner's pairs, for the per-user port budget
(gateway/calls/caps.py). `settled` tells whether the next port has been out of use a given time (the web legs'
socket pool, gateway/media/webrtc/ice_pool.py, binds ahead of calls only ports past their quarantine), and
`assign` names the owner of a lease bound before its call existed.

The allocator owns no event loop; the sockets it binds are handed to asyncio by the endpoint.
"""

from __future__ import annotations

import errno
import logging
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from gateway.media.errors import PortAllocationError

logger = logging.getLogger(__name__)

BindUdp = Callable[[str, int], socket.socket]


def bind_udp(host: str, port: int) -> socket.socket:
    """Open a non-blocking UDP socket bound to (host, port); OSError when that fails."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


@dataclass(frozen=True, slots=True)
class PortRange:
    """An inclusive [minimum, maximum] range of UDP ports for RTP and RTCP."""

    minimum: int
    maximum: int

    def __post_init__(self) -> None:
        if not 1024 <= self.minimum <= self.maximum <= 65535:
            raise PortAllocationError(
                f"port range must satisfy 1024 <= min <= max <= 65535, got [{self.minimum}, {self.maximum}]"
            )
        if not self.even_ports():
            raise PortAllocationError(
                f"port range [{self.minimum}, {self.maximum}] holds no even port with its odd neighbour"
            )

    def even_ports(self) -> range:
        """Even ports p with p + 1 also in the range (RFC 3550 §11)."""
        first = self.minimum + (self.minimum % 2)
        return range(first, self.maximum, 2)


class PortLease:
    """An allocated even port (and its odd neighbour) with the sockets bound to them.

    ``rtcp_socket`` is None when rtcp-mux was asked for; the odd port stays reserved all the same.
    ``release()`` closes the sockets (if nobody has) and returns the port; it is idempotent.
    """

    __slots__ = ("_allocator", "_released", "host", "rtcp_socket", "rtp_port", "rtp_socket")

    def __init__(
        self,
        allocator: RtpPortAllocator,
        host: str,
        rtp_port: int,
        rtp_socket: socket.socket,
        rtcp_socket: socket.socket | None,
    ) -> None:
        self._allocator = allocator
        self.host = host
        self.rtp_port = rtp_port
        self.rtp_socket = rtp_socket
        self.rtcp_socket = rtcp_socket
        self._released = False

    @property
    def rtcp_port(self) -> int:
        return self.rtp_port + 1

    @property
    def released(self) -> bool:
        return self._released

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        self.rtp_socket.close()
        if self.rtcp_socket is not None:
            self.rtcp_socket.close()
        self._allocator._give_back(self.rtp_port)

    def __repr__(self) -> str:
        return f"PortLease({self.host}:{self.rtp_port}, released={self._released})"


class RtpPortAllocator:
    """Hands out even RTP ports (RTCP on port + 1) from a range, never the same port twice while held."""

    def __init__(
        self, port_range: PortRange, *, bind: BindUdp = bind_udp, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._range = port_range
        self._bind = bind
        self._clock = clock
        self._released_at: dict[int, float] = {}  # free port -> when its last lease ended (clock)
        self._free: deque[int] = deque(port_range.even_ports())
        self._held: set[int] = set()
        self._owners: dict[int, str] = {}  # held port -> the owner named at allocation
        self._by_owner: dict[str, int] = {}  # owner -> pairs held

    @property
    def port_range(self) -> PortRange:
        return self._range

    @property
    def available(self) -> int:
        return len(self._free)

    @property
    def held(self) -> frozenset[int]:
        return frozenset(self._held)

    def held_by(self, owner: str) -> int:
        """How many pairs leases naming ``owner`` hold."""
        return self._by_owner.get(owner, 0)

    def settled(self, quarantine: float) -> bool:
        """Whether the next free port was given back at least ``quarantine`` seconds ago (or never held):
        the queue is in release order, so when it is not, no free port is."""
        if not self._free:
            return False
        released = self._released_at.get(self._free[0])
        return released is None or self._clock() - released >= quarantine

    def assign(self, lease: PortLease, owner: str) -> None:
        """Name ``owner`` (a call id) as the holder of ``lease``, allocated without one (bound ahead)."""
        port = lease.rtp_port
        if lease.released or port not in self._held or port in self._owners:
            raise PortAllocationError(f"port {port} is not held without an owner")
        self._owners[port] = owner
        self._by_owner[owner] = self._by_owner.get(owner, 0) + 1

    def allocate(self, host: str, *, rtcp_mux: bool = False, owner: str | None = None) -> PortLease:
        """Bind RTP (and RTCP unless ``rtcp_mux``) sockets on ``host`` at the next free even port, held
        for ``owner`` (a call id) when given."""
        for _ in range(len(self._free)):
            port = self._free.popleft()
            try:
                rtp_socket = self._bind(host, port)
            except OSError as exc:
                self._skip(port, exc)
                continue
            rtcp_socket = None
            if not rtcp_mux:
                try:
                    rtcp_socket = self._bind(host, port + 1)
                except OSError as exc:
                    rtp_socket.close()
                    self._skip(port + 1, exc, even=port)
                    continue
            self._held.add(port)
            self._released_at.pop(port, None)
            if owner is not None:
                self._owners[port] = owner
                self._by_owner[owner] = self._by_owner.get(owner, 0) + 1
            logger.debug("allocated RTP port %s:%d (rtcp-mux=%s)", host, port, rtcp_mux)
            return PortLease(self, host, port, rtp_socket, rtcp_socket)
        raise PortAllocationError(
            f"no free RTP port pair in [{self._range.minimum}, {self._range.maximum}] on {host}: "
            f"{len(self._held)} held by this gateway, {len(self._free)} taken by other processes"
        )

    def _skip(self, port: int, exc: OSError, even: int | None = None) -> None:
        even = port if even is None else even
        if exc.errno != errno.EADDRINUSE:
            self._free.append(even)
            raise PortAllocationError(f"cannot bind UDP port {port}: {exc}") from exc
        logger.debug("UDP port %d is taken by another process, trying the next", port)
        self._free.append(even)

    def _give_back(self, port: int) -> None:
        if port not in self._held:
            raise PortAllocationError(f"port {port} is not held")
        self._held.remove(port)
        owner = self._owners.pop(port, None)
        if owner is not None:
            left = self._by_owner[owner] - 1
            if left:
                self._by_owner[owner] = left
            else:
                del self._by_owner[owner]
        self._free.append(port)
        self._released_at[port] = self._clock()
        logger.debug("released RTP port %d", port)
