"""Automatic garbage collections held off while a call's answer is being made (issue 38).

A young collection that fell on an HTTP offer's path cost 0.25-0.6 ms of its offer -> answer at 1 call/s,
a generation-1 one 2.5 ms. ``hold_collections()`` disables the collector from the first holder until the
last lets go, and the collections due run just after (at the next allocation). A stretch of set-ups that
overlap without end (a burst) holds it at most ``HOLD_LIMIT`` seconds, so the young generations never
grow unbounded. Only while the gateway's tuning is in force (gc_tuning.GcTuning.start() .. close());
a collector disabled by something else is left so. Imports nothing of the gateway: the signaling
dialects use it (gateway/signaling/http_api/handlers.py).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from typing import Final

HOLD_LIMIT: Final = 0.05  # seconds collections stay held while set-ups keep overlapping


class _Hold:
    """The holders of ``hold_collections``: the collector is disabled from the first until the last
    lets go, or ``HOLD_LIMIT`` passed (a timer on the running loop: a set-up that waits long, for a
    pass-through far end or a STUN server, does not hold it longer), unless something else had disabled
    it. ``stop()`` ends the hold and forgets its holders (their releases do nothing)."""

    def __init__(self) -> None:
        self.active = False  # GcTuning.start() .. close()
        self.holders = 0
        self.since: float | None = None  # when this hold disabled the collector; None: it did not
        self.generation = 0  # stop() starts a new one: older releases do nothing
        self._timer: asyncio.TimerHandle | None = None

    def acquire(self) -> Callable[[], None]:
        if not self.active:
            return _released
        if self.holders == 0 and gc.isenabled():
            gc.disable()
            self.since = time.monotonic()
            try:
                self._timer = asyncio.get_running_loop().call_later(HOLD_LIMIT, self._expire)
            except RuntimeError:  # no loop: the releases alone end it
                self._timer = None
        self.holders += 1
        generation, done = self.generation, False

        def release() -> None:
            nonlocal done
            if done or generation != self.generation:
                return
            done = True
            self.holders -= 1
            since = self.since
            if since is not None and (self.holders == 0 or time.monotonic() - since > HOLD_LIMIT):
                self._give_back()

        return release

    def _expire(self) -> None:
        self._timer = None
        if self.since is not None:
            self._give_back()

    def _give_back(self) -> None:
        """The collector back on (only this hold turned it off: ``since`` says so)."""
        self.since = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        gc.enable()

    def stop(self) -> None:
        self.active = False
        self.generation += 1
        self.holders = 0
        if self.since is not None:
            self._give_back()


def _released() -> None:
    return None


HOLD = _Hold()


def hold_collections() -> Callable[[], None]:
    """Hold automatic collections off until the returned function is called (idempotent); a no-op
    unless the gateway's tuning is on. Call it once the answer is written: ``loop.call_soon`` after
    the handler returns its response (aiohttp writes it without yielding)."""
    return HOLD.acquire()
