"""The process's coarse timers: deadlines rounded up to slots, one asyncio timer for all (issue 14)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.media.coarse_timers import (
    COARSE_FROM,
    PERIODIC_GRID,
    RESOLUTION,
    CoarseTimers,
    coarse_timers,
    sleep,
)


class Clock:
    """A loop whose ``time()`` and ``call_at`` the test drives: timers are kept, not run."""

    def __init__(self) -> None:
        self.now = 100.0
        self.timers: list[tuple[float, asyncio.TimerHandle]] = []
        self.exceptions: list[dict[str, object]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: object) -> asyncio.TimerHandle:
        handle = asyncio.TimerHandle(when, callback, (), asyncio.get_event_loop())  # type: ignore[arg-type]
        self.timers.append((when, handle))
        return handle

    def call_later(self, delay: float, callback: object, *args: object) -> asyncio.TimerHandle:
        return self.call_at(self.now + delay, callback)

    def call_exception_handler(self, context: dict[str, object]) -> None:
        self.exceptions.append(context)

    def live(self) -> list[float]:
        return [when for when, handle in self.timers if not handle.cancelled()]

    def run_until(self, when: float, timers: CoarseTimers) -> None:
        self.now = when
        for at, handle in list(self.timers):
            if at <= when and not handle.cancelled():
                handle.cancel()
                timers._fire()


def make() -> tuple[Clock, CoarseTimers]:
    clock = Clock()
    return clock, CoarseTimers(clock)  # type: ignore[arg-type]


async def test_deadlines_share_one_timer_per_slot_and_run_in_order_never_early() -> None:
    clock, timers = make()
    ran: list[str] = []
    timers.call_later(1.1, ran.append, "a")  # slot 101.25
    timers.call_later(1.2, ran.append, "b")  # same slot
    timers.call_later(5.0, ran.append, "c")  # slot 105.0
    assert clock.live() == [101.25] and timers.pending() == 3  # one asyncio timer, the earliest slot
    clock.run_until(101.2, timers)
    assert ran == []  # its slot not reached: nothing early
    clock.run_until(101.25, timers)
    assert ran == ["a", "b"] and clock.live() == [105.0]
    clock.run_until(105.0, timers)
    assert ran == ["a", "b", "c"] and clock.live() == [] and timers.pending() == 0


async def test_an_earlier_deadline_moves_the_timer_and_cancel_empties_slots() -> None:
    clock, timers = make()
    ran: list[str] = []
    late = timers.call_later(4.0, ran.append, "late")
    early = timers.call_later(2.0, ran.append, "early")
    assert clock.live() == [102.0]
    early.cancel()
    early.cancel()  # idempotent
    clock.run_until(102.0, timers)
    assert ran == [] and clock.live() == [104.0]  # the empty slot woke nothing, the next is armed
    late.cancel()
    clock.run_until(104.0, timers)
    assert ran == [] and timers.pending() == 0


async def test_short_delays_keep_a_timer_of_their_own() -> None:
    clock, timers = make()
    handle = timers.call_later(COARSE_FROM / 2, lambda: None)
    assert isinstance(handle, asyncio.TimerHandle) and clock.live() == [100.0 + COARSE_FROM / 2]
    assert timers.pending() == 0


async def test_a_failing_callback_is_reported_and_the_others_still_run() -> None:
    clock, timers = make()
    ran: list[int] = []

    def boom() -> None:
        raise RuntimeError("boom")

    timers.call_later(2.0, boom)
    timers.call_later(2.0, ran.append, 1)
    clock.run_until(102.0, timers)
    assert ran == [1] and len(clock.exceptions) == 1


async def test_a_callback_can_schedule_the_next_one() -> None:
    clock, timers = make()
    ran: list[float] = []

    def again() -> None:
        ran.append(clock.now)
        if len(ran) < 3:
            timers.call_later(1.0, again)

    timers.call_later(1.0, again)
    for when in (101.0, 102.0, 103.0):
        clock.run_until(when, timers)
    assert ran == [101.0, 102.0, 103.0]


async def test_periodic_work_lands_on_whole_seconds_nearest_its_deadline() -> None:
    clock, timers = make()
    clock.now = 100.3
    ran: list[str] = []
    timers.call_later(4.1, ran.append, "rtcp", grid=PERIODIC_GRID)  # 104.4 -> 104.0, early
    timers.call_later(4.3, ran.append, "sync", grid=PERIODIC_GRID)  # 104.6 -> 105.0, late
    timers.call_later(1.0, ran.append, "tick", grid=PERIODIC_GRID)  # 101.3 -> 101.0
    timers.call_later(1.4, ran.append, "soon", grid=PERIODIC_GRID)  # 101.7 -> 102.0
    timers.call_later(3.6, ran.append, "timeout")  # no grid: the quarter second after, 104.0
    timers.call_later(0.5, ran.append, "short", grid=PERIODIC_GRID)  # under the grid: as without, a timer
    assert clock.live() == [101.0, 100.8] and timers.pending() == 5
    clock.run_until(101.0, timers)
    assert ran == ["tick"]
    clock.run_until(102.0, timers)
    assert ran == ["tick", "soon"]
    clock.run_until(104.0, timers)
    assert ran == ["tick", "soon", "rtcp", "timeout"]
    clock.run_until(105.0, timers)
    assert ran[-1] == "sync" and timers.pending() == 0


async def test_a_periodic_tick_rescheduled_from_its_slot_keeps_a_one_second_period() -> None:
    clock, timers = make()
    clock.now = 100.01
    seen: list[float] = []

    def tick() -> None:
        seen.append(clock.now)
        clock.now += 0.004  # the asyncio timer fired a little late: the next slot is still 1 s on
        timers.call_later(1.0, tick, grid=PERIODIC_GRID)

    timers.call_later(1.0, tick, grid=PERIODIC_GRID)
    for second in range(101, 105):
        clock.run_until(float(second), timers)
    assert seen == [101.0, 102.0, 103.0, 104.0]


def test_a_grid_must_be_a_multiple_of_the_resolution() -> None:
    _, timers = make()
    for grid in (0.0, RESOLUTION / 2, 1.1):
        with pytest.raises(ValueError, match="multiple"):
            timers.call_later(2.0, print, grid=grid)


async def test_sleep_on_the_grid_with_a_real_loop() -> None:
    loop = asyncio.get_running_loop()
    timers = coarse_timers()
    start = loop.time()
    sleeping = asyncio.ensure_future(sleep(RESOLUTION, grid=RESOLUTION))
    await asyncio.sleep(0)
    armed = timers.armed_at()
    # The timer is armed on a quarter second, after now; how late a loaded machine wakes is not ours.
    assert armed is not None and armed > start and abs(armed / RESOLUTION - round(armed / RESOLUTION)) < 1e-6
    await sleeping
    assert loop.time() >= armed - 0.002 and timers.pending() == 0 and timers.armed_at() is None


async def test_one_instance_per_running_loop_with_a_real_loop() -> None:
    timers = coarse_timers()
    assert coarse_timers(asyncio.get_running_loop()) is timers
    done = asyncio.get_running_loop().create_future()
    start = asyncio.get_running_loop().time()
    timers.call_later(COARSE_FROM, done.set_result, None)
    await asyncio.wait_for(done, 3)
    waited = asyncio.get_running_loop().time() - start
    assert waited + 0.01 >= COARSE_FROM and waited < COARSE_FROM + RESOLUTION + 0.2, waited


def test_resolution_must_be_positive() -> None:
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(ValueError, match="resolution"):
            CoarseTimers(loop, 0)
    finally:
        loop.close()
