"""tests/hang_dump.py: the await chain of a stalled task names every coroutine down to the awaited future."""

from __future__ import annotations

import asyncio

from tests.hang_dump import await_chain


async def _innermost(event: asyncio.Event) -> None:
    await event.wait()


async def _outer(event: asyncio.Event) -> None:
    await _innermost(event)


async def test_the_chain_goes_down_to_the_awaited_future() -> None:
    event = asyncio.Event()
    task = asyncio.get_running_loop().create_task(_outer(event))
    await asyncio.sleep(0)
    lines = list(await_chain(task.get_coro()))
    event.set()
    await task
    assert [line.rsplit(" in ", 1)[-1] for line in lines[:3]] == ["_outer", "_innermost", "wait"], lines
    assert lines[-1].startswith("  waiting on <"), lines
