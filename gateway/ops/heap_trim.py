"""glibc's free heap pages given back to the system after calls are set up (issue 14 goal 4).

Why: a call's set-up allocates and frees far more than the call keeps (the DTLS handshake's OpenSSL
buffers, freed when the web leg's connection is released, gateway/media/webrtc/aiortc_dtls.py; SDP texts and
parsed descriptions; aioice's gathering and checks). glibc keeps what was freed in its arenas for reuse,
and their free pages stay in the process's RSS: measured at 100 pass-through calls, ~65 KiB of free heap
per call after set-up, ~40 KiB of it in whole pages. ``malloc_trim(0)`` (glibc >= 2.8) returns every
free page of every arena (MADV_DONTNEED), not only the top of the main heap: 1.3 ms at 100 calls.

``HeapTrim.due(calls)`` (pure, driven by ``GcTuning``'s tick) says when: the number of calls changed
since the last trim and has not changed for ``settle`` seconds (a burst of set-ups is over, the web legs'
DTLS connections released, 1 s after connected), or changed and ``interval`` seconds went by (a gateway
whose calls never stop changing). ``trim()`` calls glibc's ``malloc_trim``; through ctypes it runs
without the GIL, so the tick runs it in the loop's executor, off the event loop. Elsewhere than glibc it
does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TrimSettings:
    settle: float = 2.0  # seconds without a call coming or going before a trim
    interval: float = 30.0  # at most this long between trims while the calls keep changing

    def __post_init__(self) -> None:
        if self.settle < 0:
            raise ValueError(f"settle must not be negative, got {self.settle!r}")
        if self.interval <= self.settle:
            raise ValueError(f"interval must be above settle ({self.settle!r}), got {self.interval!r}")


class HeapTrim:
    """When to trim (``due``); ``clock()`` in seconds."""

    def __init__(self, clock: Callable[[], float], settings: TrimSettings | None = None) -> None:
        self.settings = settings or TrimSettings()
        self._clock = clock
        self._calls_at_trim = 0  # calls up at the last trim
        self._calls = 0
        self._changed = self._trimmed = clock()  # when the calls last changed / the last trim

    def due(self, calls: int) -> bool:
        """Whether to trim now (and, if so, counted as done)."""
        now = self._clock()
        if calls != self._calls:
            self._calls, self._changed = calls, now
        if calls == self._calls_at_trim and now - self._changed >= self.settings.settle:
            return False
        s = self.settings
        if now - self._changed >= s.settle or now - self._trimmed >= s.interval:
            self._calls_at_trim, self._trimmed = calls, now
            return True
        return False


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        function = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return None
    function.argtypes, function.restype = [ctypes.c_size_t], ctypes.c_int
    trim: Callable[[int], int] = function
    return trim


_TRIM = _malloc_trim()


def trim() -> bool:
    """Give glibc's free heap pages back to the system; True when some were (False: none, or no glibc)."""
    return bool(_TRIM(0)) if _TRIM is not None else False
