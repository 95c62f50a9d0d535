"""The clock and timer service the transaction layer runs transaction timers on.

Transactions compute absolute deadlines on the clock they are given (``now``); the layer asks a
:class:`Scheduler` for the time and to call it back at a deadline. :class:`LoopScheduler` is
the event loop's monotonic clock and ``call_at``; tests can inject a manual scheduler and move
time themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

__all__ = ["LoopScheduler", "Scheduler", "TimerHandle"]


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Scheduler(Protocol):
    def now(self) -> float:
        """The current time, in seconds, on the clock deadlines are expressed on."""

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        """Call ``callback`` once ``now() >= when``."""


class LoopScheduler:
    """The running event loop's clock (``loop.time()``) and ``loop.call_at``."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def now(self) -> float:
        return self.loop.time()

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        return self.loop.call_at(when, callback)
