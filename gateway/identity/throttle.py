"""Login throttling that slows the guesser, not the user (issue 10, item 3; issue 32, item 5). Sans-I/O.

Failed logins are counted per (user id, address) pair and per client address, as fail2ban and
Kamailio's pike count per source: past a few free failures a pair must wait before its next try, the
wait doubling with each failure (1 s, 2 s, 4 s... at most `cap`); each lockout is logged once at
WARNING with the address. A success clears its pair. A whole address is slowed the same way past its
own free failures only once they were for more than `users_per_address` user ids (a guesser spraying
user names): an office behind one NAT address is one address, and one user's wrong passwords there
must not make her colleagues wait (issue 67: bob's and carol's correct logins waited 14 s because
another user id had failed from their address).

Failures per user id are counted too, but only to raise an alarm: `user_alarm` failures for one user id
within `forget_after` (a guess spread over many addresses) log a WARNING (again every `user_alarm` x 5
failures, and at most `ALARM_LINES` lines per 10 s in all) and count in `alarms`. While the alarm is
up, a pair that has failed waits from its first failure on (no free tries for it); an address that has
not failed for that user id is never slowed by it, so strangers cannot lock the owner out (issue 32:
a correct login was refused for 695 s because 20 others had guessed).
Records are forgotten `forget_after` seconds after their last failure.

Several gateways count in Redis instead (`SharedThrottle`: gateway/cluster/throttle.py, the same policy);
the identity map's `throttle_wait` / `throttle_failed` / `throttle_succeeded` ask whichever is set.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol

logger = logging.getLogger(__name__)

Key = tuple[str, ...]
ALARM_LINES: Final = 10  # alarm lines per 10 s, all user ids together
ALARM_REPEAT: Final = 5  # an alarm is logged again every user_alarm x ALARM_REPEAT failures


@dataclass(slots=True)
class _Record:
    failures: int = 0
    until: float = 0.0  # no try before this
    last: float = 0.0  # the last failure
    users: set[str] = field(default_factory=set)  # an address's: the user ids it failed for (bounded)
    locked: bool = False  # past its free failures (logged once)


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
        users_per_address: int = 5,
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
        self.users_per_address = users_per_address  # an address is slowed only past this many user ids
        self.base, self.cap, self.forget_after, self.max_records = base, cap, forget_after, max_records
        self._records: dict[Key, _Record] = {}
        self.alarms = 0  # user ids guessed at `user_alarm` times (each counted once per alarm)
        self._alarm_window = (-10.0, 0)  # (start, lines logged in it): at most ALARM_LINES per 10 s

    def wait(self, user_id: str, address: str) -> float:
        """Seconds before a login for ``user_id`` from ``address`` may be tried (0: now)."""
        now = self._clock()
        waits = [self._live(key, now) for key in (("address", address), ("pair", user_id, address))]
        user, pair = self._records.get(("user", user_id)), self._records.get(("pair", user_id, address))
        if user is not None and pair is not None and now - user.last <= self.forget_after:
            waits.append(self.alarm_wait(user.failures, pair.failures, pair.last) - now)
        return max(0.0, *waits)

    def alarm_wait(self, user_failures: int, pair_failures: int, pair_last: float) -> float:
        """When a pair may try again under its user id's alarm (0.0: no alarm, or the pair never failed):
        no free failures then, so an address that guessed at the user waits `base` after its first."""
        if user_failures < self.user_alarm or pair_failures < 1:
            return 0.0
        return pair_last + self.delay(pair_failures)

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
                record.failures, record.locked = 0, False
                record.users.clear()
            record.failures += 1
            record.last = now
            if key[0] == "address" and len(record.users) <= self.users_per_address:
                record.users.add(user_id)  # more than the cap need not be told apart
            if key[0] == "user":
                self.alarm(user_id, address, record.failures)
            elif self.locks(key[0], record.failures, len(record.users)):
                record.until = now + self._delay(record.failures - free)
                if not record.locked:
                    record.locked = True
                    self.lockout(record.failures, address, user_id if key[0] == "pair" else None)

    def locks(self, kind: str, failures: int, users: int) -> bool:
        """Whether a ``kind`` record ("pair", "address") with ``failures`` makes its logins wait; an
        address's only when they were for more than `users_per_address` user ids (``users``)."""
        if kind == "pair":
            return failures > self.free_per_pair
        return failures > self.free_per_address and users > self.users_per_address

    def lockout(self, failures: int, address: str, user_id: str | None, where: str = "") -> None:
        """Log that an address (``user_id`` None) or a pair has just begun to wait."""
        logger.warning(
            "login throttled%s: %d failed logins from %s%s; waits double from %g s",
            where, failures, address,
            f" for user id {user_id!r}" if user_id is not None else f" for over {self.users_per_address} user ids",
            self.base,
        )  # fmt: skip

    def alarm(self, user_id: str, address: str, failures: int, where: str = "") -> None:
        """Raise the alarm when a user id reaches `user_alarm` failures (and log it again every
        `user_alarm` x ALARM_REPEAT); the user is not blocked: only addresses that guess wait."""
        if failures < self.user_alarm or (failures - self.user_alarm) % (self.user_alarm * ALARM_REPEAT):
            return
        if failures == self.user_alarm:
            self.alarms += 1
        now = self._clock()
        start, lines = self._alarm_window if now - self._alarm_window[0] < 10.0 else (now, 0)
        self._alarm_window = (start, lines + 1)
        if lines < ALARM_LINES:
            logger.warning(
                "login alarm%s: %d failed logins for user id %r within %g s (the last from %s); "
                "only the addresses that guess are slowed, the user's own logins go on",
                where, failures, user_id, self.forget_after, address,
            )  # fmt: skip

    def succeeded(self, user_id: str, address: str) -> None:
        self._records.pop(("pair", user_id, address), None)

    def failed_recently(self, address: str) -> bool:
        """Whether logins from `address` have failed within `forget_after` (the verification queue serves
        the others first)."""
        return self._failed_before(address, self._clock())

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
