"""Stopping background tasks for sure (the cluster's heartbeat and presence listener, the PBX keepalive).

`task.cancel()` then `await task` can wait forever on Python 3.11: `asyncio.wait_for`, which redis-py uses
around every socket write (`socket_timeout`) and the keepalive around its OPTIONS, drops a cancellation
that arrives in the loop turn its inner operation completes (CPython gh-86296, fixed in 3.12). The task then carries on with its loop as if nothing
happened, and whoever awaits it (the gateway's shutdown) hangs. `stop_task` cancels again until the task
ends, each time waiting a bounded time, and the tasks also check a closing flag at the top of their loops.
"""

from __future__ import annotations

import asyncio
import logging

logger = logging.getLogger(__name__)


async def stop_task(task: asyncio.Task[None], patience: float = 1.0, attempts: int = 5) -> bool:
    """Cancel `task` and wait for it to end, cancelling again every `patience` seconds (a cancellation
    swallowed on the way is repeated); True once it ended, False (logged) if it outlived every attempt."""
    for _ in range(attempts):
        if task.done():
            break
        task.cancel()
        await asyncio.wait({task}, timeout=patience)
    if not task.done():
        logger.warning("task %s did not stop after %d cancellations", task.get_name(), attempts)
        return False
    if not task.cancelled() and task.exception() is not None:
        logger.warning("task %s ended with %r", task.get_name(), task.exception())
    return True
