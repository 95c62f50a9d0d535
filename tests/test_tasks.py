"""gateway/tasks.py: a background task that loses a cancellation still stops, in bounded time."""

from __future__ import annotations

import asyncio
import sys

import pytest

from gateway.tasks import stop_task


async def test_a_task_that_swallows_a_cancellation_is_stopped() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                swallowed += 1
                if swallowed > 2:
                    raise

    task = asyncio.get_running_loop().create_task(stubborn())
    await asyncio.sleep(0)
    assert await asyncio.wait_for(stop_task(task, patience=0.05), 2) is True
    assert task.cancelled() and swallowed == 3


async def test_a_task_that_never_ends_is_given_up_on() -> None:
    deaf = True

    async def stuck() -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if not deaf:
                    raise

    task = asyncio.get_running_loop().create_task(stuck())
    await asyncio.sleep(0)
    assert await stop_task(task, patience=0.02, attempts=3) is False
    assert not task.done()
    deaf = False  # let the test end
    assert await stop_task(task, patience=0.05) is True


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="CPython gh-86296 is fixed in 3.12")
async def test_wait_for_drops_a_cancellation_that_meets_its_result() -> None:
    """The premise: on 3.11 a task whose `wait_for` (redis-py's socket writes) completes in the turn it is
    cancelled carries on, so `cancel(); await task` alone could wait forever."""
    inner: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    carried_on = asyncio.Event()

    async def writer() -> None:
        await asyncio.wait_for(inner, 10)
        carried_on.set()
        await asyncio.sleep(3600)

    task = asyncio.get_running_loop().create_task(writer())
    await asyncio.sleep(0)
    inner.set_result(1)
    task.cancel()
    await asyncio.wait_for(carried_on.wait(), 1)
    assert not task.done()
    assert await stop_task(task, patience=0.05) is True
