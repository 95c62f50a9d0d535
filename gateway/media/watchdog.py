"""An RTP inactivity timer for one leg: fires once after ``timeout`` seconds without packets.

With ``quiet_after`` it also calls ``on_quiet`` once, sooner (the media-loss report: the far side hears a
"reconnecting" fill from then on, gateway/media/codecs/comfort_fill.py); a later packet calls ``on_back``
and re-arms both.

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
        quiet_after: float | None = None,
        on_quiet: Callable[[float], None] | None = None,
        on_back: Callable[[], None] | None = None,
    ) -> None:
        self.timeout = timeout
        self._on_timeout = on_timeout
        self.quiet_after = quiet_after if on_quiet is not None else None
        self._on_quiet = on_quiet
        self._on_back = on_back
        self._quiet = False  # on_quiet was called since the last packet
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
            self._fired = self._quiet = False
            self._arm()
        else:
            self._cancel()

    def alive(self, now: float) -> None:
        """A packet arrived at ``now`` (same clock)."""
        if (self._fired or self._quiet) and self._expected and now > self._last:
            back = self._quiet and self._on_back is not None
            self._fired = self._quiet = False
            self._last = now
            self._arm()
            if back and self._on_back is not None:
                self._on_back()
            return
        self._last = max(self._last, now)  # an arrival the fast lane's queue held may be older than _last

    def stop(self) -> None:
        self._expected = False
        self._cancel()

    def _arm(self) -> None:
        self._cancel()
        if not self._expected:
            return
        after = [
            seconds
            for seconds, done in ((self.timeout, self._fired), (self.quiet_after, self._quiet))
            if seconds is not None and not done
        ]
        if after:
            delay = max(0.0, self._last + min(after) - self._clock())
            self._timer = coarse_timers().call_later(delay, self._check)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        if not self._expected:
            return
        if self.refresh is not None:
            self.refresh()
        silent = self._clock() - self._last
        quiet = self.quiet_after
        if self._on_quiet is not None and quiet is not None and not self._quiet and silent >= quiet:
            self._quiet = True
            self._on_quiet(silent)
        if self.timeout is not None and not self._fired and silent >= self.timeout:
            self._fired = True
            logger.info("no RTP for %.1f s", self.timeout)
            self._on_timeout(self.timeout)
        if self._expected and self._timer is None:
            self._arm()
