"""An RTP inactivity timer for one leg: fires once after ``timeout`` seconds without packets.

It only runs while packets are expected (``set_expected``: the leg is connected and its peer should
send, not during hold); a packet after the alarm re-arms it. Time comes from the event loop clock or an
injected one, so tests can drive it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from gateway.media.coarse_timers import Cancellable, coarse_timers

logger = logging.getLogger(__name__)


class Watchdog:
    def __init__(
        self,
        timeout: float | None,
        on_timeout: Callable[[float], None],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout = timeout
        self._on_timeout = on_timeout
        self._clock = clock
        self._last = clock()
        self._expected = False
        self._fired = False
        self._timer: Cancellable | None = None  # on the process's coarse timers
        self.refresh: Callable[[], None] | None = None  # brings ``alive`` up to date first (the fast lane)

    def set_expected(self, expected: bool) -> None:
        """Start (from now) or stop watching."""
        if expected == self._expected:
            return
        self._expected = expected
        if expected:
            self._last = self._clock()
            self._fired = False
            self._arm()
        else:
            self._cancel()

    def alive(self, now: float) -> None:
        """A packet arrived at ``now`` (same clock)."""
        self._last = now
        if self._fired and self._expected:
            self._fired = False
            self._arm()

    def stop(self) -> None:
        self._expected = False
        self._cancel()

    def _arm(self) -> None:
        self._cancel()
        if self.timeout is None or not self._expected:
            return
        delay = max(0.0, self._last + self.timeout - self._clock())
        self._timer = coarse_timers().call_later(delay, self._check)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        if self.timeout is None or not self._expected:
            return
        if self.refresh is not None:
            self.refresh()
        if self._clock() - self._last < self.timeout:
            self._arm()
            return
        self._fired = True
        logger.info("no RTP for %.1f s", self.timeout)
        self._on_timeout(self.timeout)
