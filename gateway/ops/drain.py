"""Draining an instance before a restart (SIGUSR1, `POST /cluster/drain`; docs/deploy.md).

`begin` makes the call core refuse new calls, then asks every kind of socket to close those without a
call in progress: the JSON `/ws`, `/jsonrpc` and rooms sockets and the SIP-over-WebSocket flows (each
kind's `SocketRegistry`, gateway/signaling/session_loop.py), each with 1012 (Service Restart) and a 503 for
any new upgrade, so that their clients reconnect through the proxy to another instance (or to the new
process) at once. `wait` then looks again every `poll` seconds, closing the sockets whose last call has
just ended, until no call is left (of the call core, nor a socket kept for one: a room with company, a
JSON-RPC call relayed between two peers) or the timeout has passed (None: no limit). A cluster instance
exits afterwards (gateway/cluster/wiring.py); a single gateway keeps running, taking no call, until it
is stopped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

logger = logging.getLogger(__name__)

# closes one kind's sockets without a call: how many it closed, how many it kept (in a call)
IdleCloser = Callable[[], Awaitable[tuple[int, int]]]


class Calls(Protocol):
    """The call core as a drain sees it (gateway/runtime/driver.py `CallDriver`)."""

    @property
    def calls(self) -> int: ...

    def drain(self) -> None: ...


class Drain:
    def __init__(self, calls: Calls, *, poll: float = 0.2) -> None:
        if poll <= 0:
            raise ValueError(f"poll must be positive, got {poll!r}")
        self._calls = calls
        self._poll = poll
        self._closers: list[IdleCloser] = []
        self.closed = 0  # sockets closed so far, all kinds
        self.kept = 0  # sockets left open for their calls at the last look
        self.started = False

    def add(self, closer: IdleCloser) -> None:
        self._closers.append(closer)

    async def close_idle(self) -> int:
        """Every kind's sockets without a call closed (one kind failing does not keep the others open);
        how many. `kept` counts those left open for their calls."""
        results = await asyncio.gather(*(closer() for closer in self._closers), return_exceptions=True)
        closed = kept = 0
        for result in results:
            if isinstance(result, BaseException):
                logger.error("draining: closing idle sockets failed", exc_info=result)
            else:
                closed, kept = closed + result[0], kept + result[1]
        self.closed += closed
        self.kept = kept
        return closed

    async def begin(self) -> None:
        """No new calls; the sockets without a call closed."""
        self.started = True
        self._calls.drain()
        await self.close_idle()

    @property
    def busy(self) -> bool:
        """Calls left: the call core's, or sockets kept for theirs (as of the last look)."""
        return bool(self._calls.calls or self.kept)

    async def wait(self, timeout: float | None) -> int:
        """Until no call is left (or `timeout` seconds), closing sockets as their calls end; the number of
        the call core's calls left."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self.busy and (deadline is None or loop.time() < deadline):
            await asyncio.sleep(self._poll)
            await self.close_idle()
        return self._calls.calls

    async def run(self, timeout: float | None = None) -> int:
        await self.begin()
        left = await self.wait(timeout)
        logger.info("drained: %d calls left, %d sockets closed", left, self.closed)
        return left
