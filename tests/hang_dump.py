"""A hang's asyncio stacks in its failure report: shortly before pytest-timeout ends a test (the `timeout`
ini value, or the test's `@pytest.mark.timeout`), every task of the running event loop is printed with its
whole await chain (coroutine -> awaited coroutine -> ... -> the future it waits on). pytest-timeout prints
the threads' stacks only, and a stalled test's main thread always sits in the selector: the task that
waits forever is what tells where."""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
from collections.abc import Iterator
from types import AsyncGeneratorType, FrameType
from typing import Any

import pytest

_MARGIN = 15.0  # seconds before pytest-timeout fires


def await_chain(awaitable: Any) -> Iterator[str]:
    """'file:line in function' for each coroutine of the chain, then what the innermost one awaits."""
    seen = 0
    while awaitable is not None and seen < 64:
        seen += 1
        frame: FrameType | None = None
        inner: Any = None
        for frame_attr, await_attr in (("cr_frame", "cr_await"), ("gi_frame", "gi_yieldfrom"),
                                       ("ag_frame", "ag_await")):  # fmt: skip
            if hasattr(awaitable, frame_attr):
                frame, inner = getattr(awaitable, frame_attr), getattr(awaitable, await_attr)
                break
        else:
            yield f"  waiting on {awaitable!r}"[:300]
            return
        if frame is not None:
            yield f"  {frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"
        awaitable = inner


def dump_tasks(loop: asyncio.AbstractEventLoop, title: str) -> None:
    """Print every pending task of `loop` (run it in the loop's thread)."""
    out = sys.stdout
    print(f"\n===== asyncio tasks of {title} (a hang's await chains) =====", file=out)
    for task in sorted(asyncio.all_tasks(loop), key=lambda t: t.get_name()):
        print(f"task {task.get_name()}: {task.get_coro()!r}"[:200], file=out)
        for line in await_chain(task.get_coro()):
            print(line, file=out)
    # a task's chain ends at an async generator's `asend` (an @asynccontextmanager's exit): those
    # generators' own chains, which `asend` does not expose
    for generator in gc.get_objects():
        if isinstance(generator, AsyncGeneratorType) and generator.ag_await is not None:
            print(f"async generator {generator.ag_code.co_qualname}:", file=out)
            for line in await_chain(generator):
                print(line, file=out)
    out.flush()


def _running_loops() -> list[asyncio.AbstractEventLoop]:
    return [o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop) and o.is_running()]


def _timeout_of(item: pytest.Item) -> float:
    marker = item.get_closest_marker("timeout")
    if marker is not None and (marker.args or "timeout" in marker.kwargs):
        return float(marker.args[0] if marker.args else marker.kwargs["timeout"])
    option = item.config.getoption("timeout", None)
    if option is not None:
        return float(option)
    try:
        return float(item.config.getini("timeout") or 0)
    except (ValueError, TypeError):
        return 0.0


def _schedule_dump(title: str) -> None:
    for loop in _running_loops():
        loop.call_soon_threadsafe(dump_tasks, loop, title)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    timeout = _timeout_of(item)
    timer = None
    if timeout > 2 * _MARGIN:
        timer = threading.Timer(timeout - _MARGIN, _schedule_dump, args=(item.nodeid,))
        timer.daemon = True
        timer.start()
    try:
        yield
    finally:
        if timer is not None:
            timer.cancel()
