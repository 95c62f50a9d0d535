"""One timer per process for every call's periodic media work (issue 14 goal 1).

Each call used to keep its own asyncio timers for the work it does every few seconds: RTCP reports of
both legs, the inactivity and hold checks, the watchdog. Every one of them is an event-loop wakeup of its
own (a ``select`` return, a heap pop, a handle), so at 100 calls the loop woke several hundred times a
second for a few microseconds of work each. ``CoarseTimers`` rounds each deadline up to the next multiple
of ``RESOLUTION`` and keeps one asyncio timer for the earliest such slot: however many calls there are,
the loop wakes at most ``1 / RESOLUTION`` times a second for them, and runs every callback due in one go.

A callback runs at most ``RESOLUTION`` after its deadline, never before it: good enough for timeouts
seconds long (inactivity, watchdog); delays under ``COARSE_FROM`` keep a timer of their own. Periodic
bookkeeping whose interval is randomized anyway or only needs to be about right (RTCP, RFC 3550 §6.3.1;
the consent ticks, the fast lane's syncs, the GC tuning's tick) passes ``grid=PERIODIC_GRID``: it runs at
the whole second nearest its deadline (up to half a second early or late), so that at a few calls all of
it shares one wakeup a second instead of filling every slot (at 10 calls, 4 wakeups a second became 1).
One instance per event loop (``coarse_timers()``).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import weakref
from collections.abc import Callable
from typing import Any, Protocol

logger = logging.getLogger(__name__)

RESOLUTION = 0.25  # seconds between the slots deadlines are rounded up to
COARSE_FROM = 1.0  # shorter delays get a timer of their own: rounding would change them by over 25 %
PERIODIC_GRID = 1.0  # seconds: the slots of periodic bookkeeping (grid=), a multiple of RESOLUTION


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class CoarseHandle:
    """A scheduled callback; ``cancel()`` as asyncio's ``TimerHandle``."""

    __slots__ = ("_args", "_bucket", "_callback", "cancelled")

    def __init__(
        self, callback: Callable[..., object], args: tuple[Any, ...], bucket: dict[CoarseHandle, None]
    ):
        self._callback = callback
        self._args = args
        self._bucket = bucket
        self.cancelled = False

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self._bucket.pop(self, None)


class CoarseTimers:
    """Deadlines rounded up to ``RESOLUTION`` slots, one asyncio timer for the earliest slot (module note)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, resolution: float = RESOLUTION) -> None:
        if resolution <= 0:
            raise ValueError(f"resolution must be positive, got {resolution!r}")
        self._loop = loop
        self._resolution = resolution
        self._buckets: dict[int, dict[CoarseHandle, None]] = {}  # slot -> handles in insertion order
        self._slots: list[int] = []  # heap of the buckets' slots
        self._timer: asyncio.TimerHandle | None = None
        self._timer_slot: int | None = None

    def call_later(
        self, delay: float, callback: Callable[..., object], *args: Any, grid: float | None = None
    ) -> Cancellable:
        """Run ``callback(*args)`` at the first slot at or after ``delay`` seconds from now (a delay under
        ``COARSE_FROM``: at ``delay``, on a timer of its own). With ``grid`` (seconds, a multiple of the
        resolution), at the multiple of ``grid`` nearest to the deadline, and after now: within half a
        ``grid`` of the deadline, before or after it (module note); a delay under ``grid`` (intervals
        configured short, tests) is scheduled as without one."""
        now = self._loop.time()
        if grid is not None:
            step = round(grid / self._resolution)
            if step < 1 or not math.isclose(step * self._resolution, grid):
                raise ValueError(f"grid must be a multiple of {self._resolution} s, got {grid!r}")
        if grid is not None and delay >= grid:
            slot = step * max(math.floor(now / grid + 1e-6) + 1, round((now + max(0.0, delay)) / grid))
        elif delay < COARSE_FROM:
            return self._loop.call_later(delay, callback, *args)
        else:
            slot = math.ceil((now + max(0.0, delay)) / self._resolution)
        bucket = self._buckets.get(slot)
        if bucket is None:
            bucket = self._buckets[slot] = {}
            heapq.heappush(self._slots, slot)
        handle = CoarseHandle(callback, args, bucket)
        bucket[handle] = None
        if self._timer_slot is None or slot < self._timer_slot:
            self._arm(slot)
        return handle

    def armed_at(self) -> float | None:
        """The loop time the one asyncio timer is armed for, or ``None`` (for tests and metrics)."""
        return None if self._timer_slot is None else self._timer_slot * self._resolution

    def pending(self) -> int:
        """Callbacks scheduled and not cancelled (for tests and metrics)."""
        return sum(len(bucket) for bucket in self._buckets.values())

    def _arm(self, slot: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_slot = slot
        self._timer = self._loop.call_at(slot * self._resolution, self._fire)

    def _fire(self) -> None:
        self._timer = self._timer_slot = None
        now_slot = math.floor(self._loop.time() / self._resolution + 1e-6)
        slots = self._slots
        while slots and slots[0] <= now_slot:
            bucket = self._buckets.pop(heapq.heappop(slots))
            for handle in list(bucket):
                if handle.cancelled:
                    continue
                handle.cancelled = True  # it ran: a late cancel() is a no-op
                try:
                    handle._callback(*handle._args)
                except Exception as exc:  # as asyncio's handles: report, keep going with the others
                    self._loop.call_exception_handler(
                        {
                            "message": "Exception in a coarse timer callback",
                            "exception": exc,
                            "handle": handle,
                        }
                    )
        while slots and not self._buckets.get(slots[0]):  # emptied by cancels
            self._buckets.pop(heapq.heappop(slots), None)
        if slots:
            self._arm(slots[0])


_TIMERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CoarseTimers] = weakref.WeakKeyDictionary()


def coarse_timers(loop: asyncio.AbstractEventLoop | None = None) -> CoarseTimers:
    """The ``CoarseTimers`` of ``loop`` (the running one by default), made at the first call."""
    loop = loop if loop is not None else asyncio.get_running_loop()
    timers = _TIMERS.get(loop)
    if timers is None:
        timers = _TIMERS[loop] = CoarseTimers(loop)
    return timers


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def sleep(delay: float, *, grid: float | None = None) -> None:
    """``asyncio.sleep(delay)`` on the running loop's coarse timers (a delay under ``COARSE_FROM``: exact;
    ``grid``: as ``CoarseTimers.call_later``'s)."""
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    handle = coarse_timers().call_later(delay, _wake, future, grid=grid)
    try:
        await future
    finally:
        handle.cancel()
