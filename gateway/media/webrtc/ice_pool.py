"""The web legs' ICE sockets, bound before the calls that take them (issue 64 item 1).

A browser's call used to bind its ICE host sockets on its request path (``IceSockets`` leasing a pair
of ``media.web_ports`` / ``media.rtp_ports`` per host address). ``IcePool`` stands between the web legs
and that range's allocator and binds them ahead of demand, so that a call takes a socket and never waits
for a bind:

* ``allocate()`` is the allocator's own call: an rtcp-mux pair on a host address the pool holds is taken
  from the pool (its owner named, ``RtpPortAllocator.assign``: the per-user port budget counts it);
  anything else (an empty pool, an address not seen yet, RTP with its own RTCP port) is bound there and
  then, as without a pool. A host address is learned from the calls (and ``prime``).
* The pool is topped up off the request path (``REFILL_BATCH`` sockets ``REFILL_DELAY`` after a take,
  and every ``TICK``), to the sockets of ``LEAD`` seconds of calls at the rate of the last ``WINDOW``
  seconds, at least ``minimum`` and at most ``maximum`` per address, and never more than a ``share`` of the range's free pairs (the
  SIP legs draw from the same range when ``media.web_ports`` is not set). A rate that falls gives the
  extra sockets back at the next tick.
* Quarantine: the pool binds a port only once it has been out of use ``quarantine`` seconds
  (``RtpPortAllocator.settled``; the allocator's queue is in release order), so the last call's browser,
  still sending for a moment, does not reach a socket waiting for the next call. Whatever reached a
  pooled socket while it waited is read off and dropped when a call takes it (``drained``).
* ``close()`` gives every pooled port back; a taken one is its call's (released with its web leg).

No socket is read or written here but to drop stray datagrams; the pool owns no task, only two timer
handles on the running loop (none without one: ``top_up`` is then called by hand, as the tests do).
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable

import aioice.turn

from gateway.media.errors import PortAllocationError
from gateway.media.rtp.ports import PortLease, PortRange, RtpPortAllocator

logger = logging.getLogger(__name__)

QUARANTINE = 2.0  # seconds a port stays out of use before the pool binds it again
WINDOW = 10.0  # the recent call rate: takes of the last WINDOW seconds
LEAD = 2.0  # the pool holds LEAD seconds of calls at that rate
MINIMUM, MAXIMUM = 2, 64  # sockets pooled per host address
SHARE = 8  # at most one pair in SHARE of the range's free ones sits in the pool
REFILL_DELAY = 0.05  # seconds after a take before the pool binds again (the answer has gone by then)
REFILL_BATCH = 4  # sockets bound per refill at most (then again REFILL_DELAY later)
TICK = 1.0  # seconds between the pool's checks of its size (the rate moved, quarantines ended)
DRAIN_LIMIT = 256  # stray datagrams read off a taken socket at most (a flood is the call's to meet)


class IcePool:
    """Sockets of one port range bound ahead of the web legs' calls (module note)."""

    def __init__(
        self,
        ports: RtpPortAllocator,
        *,
        clock: Callable[[], float] = time.monotonic,
        quarantine: float = QUARANTINE,
        minimum: int = MINIMUM,
        maximum: int = MAXIMUM,
        share: int = SHARE,
    ) -> None:
        if not 0 <= minimum <= maximum or share < 1 or quarantine < 0:
            raise ValueError(f"bad pool bounds {minimum!r}..{maximum!r}, share {share!r}, {quarantine!r} s")
        self._ports, self._clock = ports, clock
        self._quarantine, self._minimum, self._maximum, self._share = quarantine, minimum, maximum, share
        self._idle: dict[str, deque[PortLease]] = {}  # host address -> sockets bound, waiting for a call
        self._takes: deque[float] = deque()  # when calls asked (clock), over the last WINDOW seconds
        self._refill: asyncio.TimerHandle | None = None
        self._tick: asyncio.TimerHandle | None = None
        self._closed = False
        self.taken = 0  # sockets calls took from the pool
        self.missed = 0  # sockets calls had to bind themselves
        self.drained = 0  # stray datagrams dropped from taken sockets

    @property
    def port_range(self) -> PortRange:
        return self._ports.port_range

    @property
    def idle(self) -> int:
        """Pairs bound and waiting for a call (free ones, as far as calls are concerned)."""
        return sum(len(idle) for idle in self._idle.values())

    @property
    def pooled(self) -> frozenset[int]:
        """The RTP ports of the pairs waiting for a call (held by the pool, no call's)."""
        return frozenset(lease.rtp_port for idle in self._idle.values() for lease in idle)

    def idle_on(self, host: str) -> int:
        return len(self._idle.get(host, ()))

    def held_by(self, owner: str) -> int:
        return self._ports.held_by(owner)

    # ------------------------------------------------------------------------------------- calls

    def allocate(self, host: str, *, rtcp_mux: bool = False, owner: str | None = None) -> PortLease:
        """A pair on ``host`` for ``owner``: a pooled one when there is one (rtcp-mux: the web legs'),
        else bound now by the allocator (its ``PortAllocationError`` as it is)."""
        self._takes.append(self._clock())
        idle = self._idle.get(host)
        if rtcp_mux and idle and not self._closed:
            lease = idle.popleft()
            self._drain(lease)
            if owner is not None:
                self._ports.assign(lease, owner)
            self.taken += 1
            self._soon()
            return lease
        lease = self._ports.allocate(host, rtcp_mux=rtcp_mux, owner=owner)
        if rtcp_mux and not self._closed:
            self.missed += 1
            self._idle.setdefault(host, deque())  # an address calls gather on: pooled from now on
            self._soon()
        return lease

    def _drain(self, lease: PortLease) -> None:
        """Drop what reached the socket while it waited (a late packet of a call long gone, a scan)."""
        sock = lease.rtp_socket
        for _ in range(DRAIN_LIMIT):
            try:
                sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # an ICMP error queued on the socket: read, nothing more to drop
                continue
            self.drained += 1

    # --------------------------------------------------------------------------------- its size

    def prime(self, hosts: Iterable[str]) -> None:
        """Pool sockets on ``hosts`` from now on (the web legs' gathered addresses), and bind them now."""
        for host in hosts:
            self._idle.setdefault(host, deque())
        self.top_up()
        if self._idle:
            logger.info(
                "ICE socket pool: %d pairs bound ahead on %s", self.idle, ", ".join(sorted(self._idle))
            )

    def target(self) -> int:
        """Sockets to hold per host address now: LEAD seconds of calls at the last WINDOW's rate."""
        now = self._clock()
        takes = self._takes
        while takes and takes[0] <= now - WINDOW:
            takes.popleft()
        wanted = max(self._minimum, math.ceil(len(takes) / WINDOW * LEAD))
        hosts = max(1, len(self._idle))
        room = (self._ports.available + self.idle) // (self._share * hosts)
        return min(wanted, self._maximum, room)

    def top_up(self, limit: int | None = None) -> bool:
        """Bind up to ``target()`` per address from settled ports (at most ``limit`` now); give back what
        is over it. True when the limit stopped it short (the loop calls again: a rising call rate never
        holds the loop for a long run of binds)."""
        if self._closed:
            return False
        wanted = self.target()
        budget = limit
        for host in list(self._idle):
            idle = self._idle[host]
            while len(idle) > wanted:
                idle.pop().release()
            while len(idle) < wanted and self._ports.settled(self._quarantine):
                if budget is not None:
                    if budget == 0:
                        return True
                    budget -= 1
                try:
                    lease = self._ports.allocate(host, rtcp_mux=True)
                except PortAllocationError as exc:
                    if isinstance(exc.__cause__, OSError):  # that address cannot be bound (gone)
                        logger.info("ICE socket pool: %s left out: %s", host, exc)
                        for lease in self._idle.pop(host):
                            lease.release()
                    break
                lease.rtp_socket.setsockopt(
                    socket.SOL_SOCKET, socket.SO_RCVBUF, aioice.turn.UDP_SOCKET_BUFFER_SIZE
                )
                idle.append(lease)
        return False

    # -------------------------------------------------------------------------------- scheduling

    def _soon(self) -> None:
        if self._refill is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a test driving it by hand): top_up() is called directly
        self._refill = loop.call_later(REFILL_DELAY, self._refilled)

    def _refilled(self) -> None:
        self._refill = None
        if self.top_up(REFILL_BATCH):
            self._soon()

    def start(self) -> None:
        """Check the pool's size every TICK on the running loop (until ``close``)."""
        if self._tick is None and not self._closed:
            self._tick = asyncio.get_running_loop().call_later(TICK, self._ticked)

    def _ticked(self) -> None:
        self._tick = None
        self.top_up()
        self.start()

    async def close(self) -> None:
        """Stop topping up and give every pooled port back. Idempotent."""
        self._closed = True
        for handle in (self._refill, self._tick):
            if handle is not None:
                handle.cancel()
        self._refill = self._tick = None
        idle, self._idle = self._idle, {}
        for leases in idle.values():
            for lease in leases:
                lease.release()
