"""File descriptors kept for media, so that a signaling flood can never starve a call (issue 32).

Every socket a listener accepts (SIP TCP/TLS, HTTP, HTTPS, WSS) takes one file descriptor before its
peer has proved anything; the media of a call (RTP ports, ICE sockets, DTLS) needs several more. At
start the soft RLIMIT_NOFILE is raised to the hard limit where allowed, and `FdReserve` counts the
signaling connections: they may use what is left of the limit after the descriptors open at start and
the reserve (`connections.fd_reserve`, a share of the limit). A listener asks `take()` when it
accepts and is refused at the cap (it closes the socket at once); `give()` when the socket closes.

    reserve = FdReserve.at_start(0.25)       # limit 65536: signaling may hold ~49,000 sockets
    if not reserve.take(): transport.close()
"""

from __future__ import annotations

import logging
import os
import resource

logger = logging.getLogger(__name__)


def open_fds() -> int:
    """How many file descriptors this process has open (0 where /proc is not there)."""
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # the listing's own descriptor
    except OSError:
        return 0


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (when allowed) and return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            logger.warning("cannot raise the open-file limit from %d to %d: %s", soft, hard, exc)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return int(soft)


class FdReserve:
    """Counts the descriptors signaling holds and refuses more beyond ``limit - baseline - reserve``."""

    def __init__(self, limit: int, reserve: int, baseline: int = 0) -> None:
        if limit < 1 or reserve < 0 or baseline < 0:
            raise ValueError(f"bad fd budget: limit {limit!r}, reserve {reserve!r}, baseline {baseline!r}")
        self.limit = limit
        self.reserve = reserve
        self.baseline = baseline
        self.in_use = 0  # signaling connections holding a descriptor now
        self.refused = 0  # connections refused for want of room (metrics, tests)

    @classmethod
    def at_start(cls, fraction: float) -> FdReserve:
        """The budget of this process: its (raised) limit, ``fraction`` of it kept for media."""
        limit = raise_fd_limit()
        reserve = FdReserve(limit, int(limit * fraction), open_fds())
        logger.info(
            "file descriptors: limit %d, %d open at start, %d kept for media, signaling may hold %d",
            limit, reserve.baseline, reserve.reserve, reserve.room,
        )  # fmt: skip
        return reserve

    @property
    def accept_burst(self) -> int:
        """The listen backlog of each listener: asyncio accepts up to that many connections per wake-up
        before any is admitted or refused (each a descriptor until then), so a flood on a few listeners
        could otherwise take the whole reserve at once (and accept() fail with EMFILE, logged with a
        traceback). An eighth of the reserve, between 4 and 128 (aiohttp's default; 65,536 descriptors
        and the default reserve give 128)."""
        return max(4, min(128, self.reserve // 8))

    @property
    def room(self) -> int:
        """How many descriptors signaling may hold in all."""
        return max(0, self.limit - self.baseline - self.reserve)

    def take(self) -> bool:
        """One more signaling socket: False (and counted as refused) when it would eat into the reserve."""
        if self.in_use >= self.room:
            self.refused += 1
            return False
        self.in_use += 1
        return True

    def give(self) -> None:
        self.in_use = max(0, self.in_use - 1)
