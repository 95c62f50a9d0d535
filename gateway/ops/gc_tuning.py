"""The cyclic garbage collector tuned for a process of long-lived calls (issue 14 goal 2).

Why: a call's Python side (aiortc's peer connection, aioice, the bridge, the call machine) is some
thousands of objects in reference cycles that live as long as the call. CPython's collector walks
every tracked object of a generation at each collection of it, so with 100 transcoded calls a full
collection stopped the event loop (and every packet the Python path carries) for 50-60 ms.

How it works (``GcTuning``, driven by a timer of the gateway's own):

* ``start()``: one full collection, then ``gc.freeze()``: what start-up made (modules, aiortc's and
  the config's tables) moves to the permanent generation, which no collection walks.
* Every ``interval`` seconds (``tick()``), when calls were set up or ended since the last tick:
  ``gc.freeze()``, which moves every tracked object, the new calls' among them, to the permanent
  generation. It splices lists: no pause however many objects move (no collection before it: a
  young collection of a burst of set-ups took 5-30 ms, and a pause each second is what p99 sees).
  Full collections then walk only what is younger than a tick: their pauses stop growing with calls.
* The frozen objects of a call that ended are freed by reference counting, except its cycles, which
  wait in the permanent generation (as does any garbage cycle not yet collected at a freeze).
  ``tick()`` thaws (``gc.unfreeze()``, one full collection, freeze again) when no call is up and
  ``idle_growth`` objects were frozen since the last thaw (the pause harms no audio), or when the
  frozen population is ``thaw_growth`` times what the calls up are expected to hold: the last thaw's
  population plus, per call more than then, what a call held at the last thaw with calls up
  (``PER_CALL`` objects before one). Memory stays bounded on a gateway that is never idle: one pause
  each time the calls' population turns over that much. Calls that are only new do not thaw: a burst
  of 500 set-ups grew the population 6.1x from start-up's and its thaw stopped the loop 1.5 s at load
  3 (issue 38), for 3 % of the objects.
* Thresholds stay CPython's by default (settable): larger young generations make young collections
  walk more (5000 allocations per generation-0 collection: ~100 ms at 100 calls set up at once).

* Counting the frozen objects (``gc.get_freeze_count``) walks the whole permanent generation's list
  (~8 ms at 85 000 objects, which one call's process already has, ~15 ms at 700 000: a stall of the
  loop). ``tick()`` keeps an upper bound instead: the last
  count plus the young objects each freeze moved (``gc.get_objects`` of generations 0-2: O(objects made
  since the last freeze), the population only shrinks between freezes). It counts only when that bound
  says a thaw may be due, at most every ``count_interval`` seconds while calls are up, and at once when
  the last call ended. So a gateway counts about as often as it thaws, not every 10 s of churn.
* ``start()`` .. ``close()`` also let ``gc_hold.hold_collections()`` hold collections off while a call's
  answer is being made (gateway/ops/gc_hold.py).
``run()`` also gives glibc's free heap pages back after calls were set up (``heap_trim``), off the loop.
The pauses are observed by ``gateway.ops.metrics`` (``gc.callbacks``): gateway_gc_pause_seconds.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.media import coarse_timers
from gateway.ops import gc_hold, heap_trim

logger = logging.getLogger(__name__)


PER_CALL = 1000  # objects a call holds frozen until a thaw with calls up measured it (pass-through: ~650)
LEARN_CALLS = 20  # calls up at a thaw for it to measure that (within PER_CALL / 4 .. 4 x PER_CALL)


@dataclass(frozen=True, slots=True)
class GcSettings:
    interval: float = 1.0  # seconds between ticks (a freeze when calls came or went)
    threshold0: int = 700  # allocations between generation-0 collections (CPython's)
    threshold1: int = 10  # generation-0 collections per generation-1 collection (CPython's)
    threshold2: int = 10  # generation-1 collections per full collection (CPython's)
    thaw_growth: float = 2.0  # thaw when the frozen population is this many times what the calls up hold
    idle_growth: int = 20000  # with no call up, thaw once this many objects were frozen since the last thaw
    count_interval: float = 10.0  # seconds between counts of the frozen objects (an O(n) walk) with calls up

    def __post_init__(self) -> None:
        if self.interval <= 0:
            raise ValueError(f"interval must be positive, got {self.interval!r}")
        for name in ("threshold0", "threshold1", "threshold2"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)!r}")
        if self.count_interval < 0:
            raise ValueError(f"count_interval must not be negative, got {self.count_interval!r}")
        if self.thaw_growth <= 1:
            raise ValueError(f"thaw_growth must be above 1, got {self.thaw_growth!r}")


@dataclass(frozen=True, slots=True)
class Thaw:
    """One thaw: why, the objects frozen before it, the unreachable ones found, the pause (seconds)."""

    reason: str
    frozen_before: int
    collected: int
    seconds: float


class GcTuning:
    """See the module's note. ``active_calls()`` says how many calls are up (0: a thaw harms no one)."""

    def __init__(
        self,
        active_calls: Callable[[], int],
        settings: GcSettings | None = None,
        clock: Callable[[], float] = time.perf_counter,
        *,
        trim_heap: bool = True,
    ) -> None:
        self.settings = settings or GcSettings()
        self._heap = heap_trim.HeapTrim(clock) if trim_heap else None
        self._active_calls = active_calls
        self._clock = clock
        self._baseline = 0  # frozen objects right after the last thaw (or start)
        self._baseline_calls = 0  # calls up then
        self._static = 0  # frozen objects after start-up (no call up)
        self.per_call = PER_CALL  # objects a call holds frozen, as the last thaw with calls up found
        self._thresholds: tuple[int, int, int] | None = None
        self._calls = 0  # calls up at the last tick
        self._uncounted = False  # frozen since the last count
        self._counted = clock()  # when the frozen objects were last counted
        self._bound = 0  # at least as many objects as are frozen: the last count + what freezes moved since
        self.counts = 0  # walks of the permanent generation (gc.get_freeze_count) since start
        self.thaws: list[Thaw] = []

    def start(self) -> None:
        """Collect and freeze what start-up made; set the thresholds. Idempotent."""
        if self._thresholds is None:
            self._thresholds = gc.get_threshold()
        s = self.settings
        gc.set_threshold(s.threshold0, s.threshold1, s.threshold2)
        gc.collect()
        gc.freeze()
        gc_hold.HOLD.active = True
        self._baseline = self._bound = self._static = self._count()
        self._calls = self._baseline_calls = self._active_calls()
        logger.info("GC: %d objects frozen after start-up, thresholds %s", self._baseline, gc.get_threshold())

    def tick(self) -> Thaw | None:
        """Freeze when calls came or went since the last tick; thaw when due (see the module's note)."""
        calls = self._active_calls()
        if calls != self._calls:
            # (what another thread allocates between the two lines is frozen uncounted: a few objects,
            # in this process of asyncio and C threads, until the next exact count)
            self._bound += sum(len(gc.get_objects(generation)) for generation in range(3))
            gc.freeze()
            self._uncounted = True
        self._calls = calls
        if not self._uncounted or self._thaw_reason(calls, self._bound) is None:  # a count could not say
            return None
        now = self._clock()
        if calls and now - self._counted < self.settings.count_interval:
            return None
        self._uncounted, self._counted = False, now
        frozen = self._bound = self._count()
        reason = self._thaw_reason(calls, frozen)
        return None if reason is None else self.thaw(reason, frozen)

    def _thaw_reason(self, calls: int, frozen: int) -> str | None:
        """Why ``frozen`` objects (or an upper bound of them) make a thaw due with ``calls`` up; None: not."""
        if calls == 0 and frozen - self._baseline > self.settings.idle_growth:
            return "no call up"
        expected = max(self._baseline + self.per_call * (calls - self._baseline_calls), 1)
        if frozen > self.settings.thaw_growth * expected:
            return f"frozen objects grew {frozen / expected:.1f}x what {calls} calls hold"
        return None

    def _count(self) -> int:
        self.counts += 1
        return gc.get_freeze_count()

    def thaw(self, reason: str, frozen: int | None = None) -> Thaw:
        """Unfreeze, collect everything once (the cycles of ended calls), freeze the live ones again.
        ``frozen``: the count just taken (no second walk)."""
        before = self._count() if frozen is None else frozen
        started = self._clock()
        gc.unfreeze()
        collected = gc.collect()
        gc.freeze()
        done = Thaw(reason, before, collected, self._clock() - started)
        self._baseline = self._bound = self._count()
        self._baseline_calls = calls = self._active_calls()
        if calls == 0:
            self._static = self._baseline  # what the process holds without calls, now
        elif calls >= LEARN_CALLS:  # enough calls for the process's own growth to matter little
            learned = (self._baseline - self._static) // calls
            self.per_call = min(max(learned, PER_CALL // 4), 4 * PER_CALL)
        self._uncounted, self._counted = False, self._clock()
        self.thaws.append(done)
        del self.thaws[:-16]
        logger.info(
            "GC thaw (%s): %d frozen objects, %d unreachable collected in %.1f ms, %d frozen now",
            reason, before, collected, 1000 * done.seconds, self._baseline,
        )  # fmt: skip
        return done

    async def run(self) -> None:
        """``tick()`` every ``interval`` seconds until cancelled; ``heap_trim.trim()`` in the executor when
        ``HeapTrim.due``."""
        loop = asyncio.get_running_loop()
        while True:
            # with the calls' periodic work, on whole seconds: no wakeup of its own
            await coarse_timers.sleep(self.settings.interval, grid=coarse_timers.PERIODIC_GRID)
            self.tick()
            if self._heap is not None and self._heap.due(self._calls):
                await loop.run_in_executor(None, heap_trim.trim)

    def close(self) -> None:
        """Give the objects back to the collector and restore its thresholds. Idempotent."""
        gc_hold.HOLD.stop()
        gc.unfreeze()
        if self._thresholds is not None:
            gc.set_threshold(*self._thresholds)
            self._thresholds = None
