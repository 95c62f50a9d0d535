"""Login throttling that slows the guesser, not the user (issue 10, item 3). Sans-I/O: clock injected.

Failed logins are counted per client address, per (user id, address) pair and per user id. Past a few
free failures an address, or a pair, must wait before its next try, the wait doubling with each
failure (1 s, 2 s, 4 s... at most `cap`); each lockout is logged once at WARNING with the address. A
user id guessed at from many addresses is protected without locking its owner out: tries for it from
addresses that have failed before wait, an address with a clean record goes through. Records are
forgotten `forget_after` seconds after their last failure, and a success clears its pair.

Several gateways count in Redis instead (`SharedThrottle`: gateway/cluster/throttle.py, the same policy);
the identity map's `throttle_wait` / `throttle_failed` / `throttle_succeeded` ask whichever is set.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

logger = logging.getLogger(__name__)

Key = tuple[str, ...]


@dataclass(slots=True)
class _Record:
    failures: int = 0
    until: float = 0.0  # no try before this
    last: float = 0.0  # the last failure


class SharedThrottle(Protocol):
    """Failed-login counts shared by several gateways (the same questions as LoginThrottle's, async)."""

    async def wait(self, user_id: str, address: str) -> float: ...

    async def failed(self, user_id: str, address: str) -> None: ...

    async def succeeded(self, user_id: str, address: str) -> None: ...


class LoginThrottle:
    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        free_per_address: int = 10,
        free_per_pair: int = 5,
        user_alarm: int = 20,
        base: float = 1.0,
        cap: float = 900.0,
        forget_after: float = 900.0,
        max_records: int = 100_000,
    ) -> None:
        self._clock = clock
        self.free_per_address, self.free_per_pair, self.user_alarm = (
            free_per_address,
            free_per_pair,
            user_alarm,
        )
        self.base, self.cap, self.forget_after, self.max_records = base, cap, forget_after, max_records
        self._records: dict[Key, _Record] = {}

    def wait(self, user_id: str, address: str) -> float:
        """Seconds before a login for ``user_id`` from ``address`` may be tried (0: now)."""
        now = self._clock()
        waits = [self._live(key, now) for key in (("address", address), ("pair", user_id, address))]
        user = self._records.get(("user", user_id))
        if user is not None and user.failures >= self.user_alarm and self._failed_before(address, now):
            waits.append(self._delay(user.failures - self.user_alarm + 1) - (now - user.last))
        return max(0.0, *waits)

    def failed(self, user_id: str, address: str) -> None:
        now = self._clock()
        self._prune(now)
        for key, free in (
            (("address", address), self.free_per_address),
            (("pair", user_id, address), self.free_per_pair),
            (("user", user_id), self.user_alarm),
        ):
            record = self._records.setdefault(key, _Record())
            if now - record.last > self.forget_after:
                record.failures = 0
            record.failures += 1
            record.last = now
            if key[0] != "user" and record.failures > free:
                record.until = now + self._delay(record.failures - free)
                if record.failures == free + 1:
                    logger.warning(
                        "login throttled: %d failed logins from %s%s; waits double from %g s",
                        record.failures, address, f" for user id {user_id!r}" if key[0] == "pair" else "",
                        self.base,
                    )  # fmt: skip

    def succeeded(self, user_id: str, address: str) -> None:
        self._records.pop(("pair", user_id, address), None)

    def delay(self, excess: int) -> float:
        """The wait after `excess` failures beyond the free ones: base, doubling, at most cap."""
        return float(min(self.cap, self.base * 2.0 ** min(excess - 1, 30)))

    _delay = delay

    def _live(self, key: Key, now: float) -> float:
        record = self._records.get(key)
        return record.until - now if record is not None else 0.0

    def _failed_before(self, address: str, now: float) -> bool:
        record = self._records.get(("address", address))
        return record is not None and record.failures > 0 and now - record.last <= self.forget_after

    def _prune(self, now: float) -> None:
        if len(self._records) < self.max_records:
            return
        for key in [k for k, r in self._records.items() if now - r.last > self.forget_after]:
            del self._records[key]
        if len(self._records) >= self.max_records:  # still full: the oldest quarter goes (amortized)
            oldest = sorted(self._records, key=lambda k: self._records[k].last)
            for key in oldest[: max(1, len(oldest) // 4)]:
                del self._records[key]
