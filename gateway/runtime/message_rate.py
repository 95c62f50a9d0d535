"""`MessageThrottle`: the rate of SIP MESSAGEs (RFC 3428) shown to one web user. Sans-I/O.

One throttle serves both ways in: MESSAGEs out of dialog (sip_inbound.py) and those in a call's dialog
(the UA call asks through its `message_gate`: call_runtime.py, driver_core.py), so that a phone in a call
cannot flood the page by chatting in the dialog instead.

A token bucket per recipient (a web user) and one per (sender, recipient) pair (`limits.message_rate`
per second, `limits.message_burst` at once): a MESSAGE passes only when both buckets of each user it
would reach have a token, and then takes one from each; otherwise it is refused and shown to nobody.

The refusal is 486 Busy Here with Retry-After (RFC 3261 §21.4.24: the callee "is currently not willing
or able to take additional calls at this end system", and the response MAY say when to try again,
§20.33). Not 503: a 503 tells the upstream element that this whole server is overloaded (RFC 3261
§21.5.4), and a PBX or proxy would stop sending it anything, or fail over, for every user (the
problems RFC 5390 and RFC 6357 describe), while only one recipient is flooded here. Kamailio's
ratelimit module answers 503 because it limits the server as a whole; a limit per recipient is the
callee's own business. Buckets are kept for the `MAX_KEYS` most recently seen keys.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Final

MAX_KEYS: Final = 10_000  # buckets held at once (a sender forging many From URIs evicts the oldest)


class MessageThrottle:
    """Token buckets for MESSAGEs to web users (see the module note)."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float], max_keys: int = MAX_KEYS) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate and burst must be positive, got {rate!r}, {burst!r}")
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[tuple[str, str], tuple[float, float]] = OrderedDict()  # key -> tokens, at

    def admit(self, sender: str, recipients: Iterable[str]) -> float | None:
        """Take a token for `sender`'s MESSAGE to each of `recipients` (user ids): None when it may be
        shown; else the whole seconds until it might (nothing is taken then)."""
        now = self._clock()
        keys = [key for user in recipients for key in (("", user), (sender.lower(), user))]
        levels = {key: self._level(key, now) for key in keys}
        short = [tokens for tokens in levels.values() if tokens < 1.0]
        if short:
            return float(max(1, math.ceil((1.0 - min(short)) / self._rate)))
        for key, tokens in levels.items():
            self._store(key, tokens - 1.0, now)
        return None

    def _level(self, key: tuple[str, str], now: float) -> float:
        held = self._buckets.get(key)
        if held is None:
            return self._burst
        tokens, at = held
        return min(self._burst, tokens + max(0.0, now - at) * self._rate)

    def _store(self, key: tuple[str, str], tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
