"""When the heap is trimmed (``HeapTrim.due``) and that ``trim()`` gives free pages back (glibc)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import platform
import threading

import pytest

from gateway.ops import heap_trim
from gateway.ops.gc_tuning import GcSettings, GcTuning
from gateway.ops.heap_trim import HeapTrim, TrimSettings, trim
from peers.binaries import in_ci, unavailable


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_of_calls_is_trimmed_once_settled() -> None:
    clock = Clock()
    heap = HeapTrim(clock, TrimSettings(settle=2.0, interval=30.0))
    assert not heap.due(0)
    for calls in (10, 50, 100):  # set up over two seconds
        clock.now += 1.0
        assert not heap.due(calls)
    clock.now += 1.0
    assert not heap.due(100)  # 1 s without change
    clock.now += 1.0
    assert heap.due(100)  # 2 s: trimmed
    clock.now += 10.0
    assert not heap.due(100)  # nothing changed since


def test_calls_that_never_settle_are_trimmed_every_interval() -> None:
    clock = Clock()
    heap = HeapTrim(clock, TrimSettings(settle=2.0, interval=30.0))
    trims = 0
    for second in range(1, 91):
        clock.now = float(second)
        trims += heap.due(100 + second % 2)  # a call comes or goes every second
    assert trims == 3


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        TrimSettings(settle=-1.0)
    with pytest.raises(ValueError):
        TrimSettings(settle=5.0, interval=5.0)


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_trim_gives_back_free_pages_between_live_blocks() -> None:
    if platform.libc_ver()[0] != "glibc":
        assert not in_ci(), "CI runs on glibc (malloc_trim is glibc's)"
        unavailable("malloc_trim is glibc's")
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = []
    for _ in range(400):  # 60 KiB blocks, under the mmap threshold: on the heap, side by side
        block = libc.malloc(60 * 1024)
        ctypes.memset(block, 1, 60 * 1024)
        blocks.append(block)
    for block in blocks[::2]:  # every other one freed: the live ones keep them from coalescing
        libc.free(block)
    before = _rss()
    assert trim()
    assert before - _rss() > 8 * 1024 * 1024  # ~200 x 56 KiB of whole free pages given back
    for block in blocks[1::2]:
        libc.free(block)


async def test_gc_tuning_runs_the_trim_off_the_loop_once_set_ups_settled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trims: list[str] = []

    def trimmed() -> bool:
        trims.append(threading.current_thread().name)
        return True

    monkeypatch.setattr(heap_trim, "trim", trimmed)
    clock, calls = Clock(), [0]
    tuning = GcTuning(lambda: calls[0], GcSettings(interval=0.01), clock)
    task = asyncio.ensure_future(tuning.run())
    try:
        calls[0] = 10
        await asyncio.sleep(0.05)
        assert trims == []  # calls just came
        clock.now += 3.0
        for _ in range(100):
            if trims:
                break
            await asyncio.sleep(0.01)
        assert len(trims) == 1 and trims[0] != threading.current_thread().name
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        tuning.close()
