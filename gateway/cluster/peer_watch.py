"""`PeerWatch`: an instance whose process dies is known dead in milliseconds, not at its lease's end.

A lease alone makes a survivor wait up to `cluster.lease` after a kill -9 (2-6 s) before it carries the
dead instance's calls on, and no user should hear that gap. So each instance holds a watch on every other
live one: a WebSocket to its `GET /cluster/watch` (signed with the cluster secret, gateway/signaling/
cluster_http.py) on which nothing is ever sent. When a process dies, its kernel closes that socket at
once; the watcher sees the connection drop without a close frame and looks at the instance's HTTP port
(`alive`): a port that refuses is a dead process on a live machine. The watcher then *fences* it (its
lease taken out of Redis, `ClusterNode.fence`: every instance agrees it is gone, none routes to it) and
claims its calls at once (`on_dead`: gateway/cluster/live_calls.py `record_dead`, which looks at the
port once more before it acts). A clean stop closes its watches with 1001 first, before any of its
listeners close, and refuses new ones (503): nothing to act on (it gave its calls away, or ended them),
and it is not watched again while it is still listed (its HTTP port closes before its lease goes, so a
watch refused then is no death). A drop while the port still answers (a restart of the watched
socket's peer, a proxy in between) is nothing either: the watch is opened again at the next heartbeat.

What the watch cannot see is a machine that vanishes (power, network): no FIN reaches the watcher and the
port does not answer; the lease is what notices then, as before. Idle cost: one idle TCP connection per
pair of instances and one Redis read per heartbeat to list them; nothing is sent on a watch.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable

from gateway.cluster.errors import ClusterUnavailable
from gateway.cluster.node import ClusterNode, InstanceInfo

logger = logging.getLogger(__name__)

Watch = Callable[[str], Awaitable[int | None]]  # HTTP base URL -> close code (None: dropped, or not opened)
Alive = Callable[[str], Awaitable[bool]]  # HTTP base URL -> whether its port accepts a connection


class PeerWatch:
    def __init__(
        self, node: ClusterNode, watch: Watch, alive: Alive, on_dead: Callable[[str], Awaitable[None]]
    ) -> None:
        self._node = node
        self._watch = watch
        self._alive = alive
        self._on_dead = on_dead
        self._tasks: dict[str, asyncio.Task[None]] = {}  # instance id -> its watch
        # instances that said they stop (1001): not watched again while still listed (their lease goes
        # when their stop is over; a watch refused meanwhile by a closed port is no death)
        self._stopping: set[str] = set()
        self.fenced = 0  # instances found dead by their watch (not by their lease)

    async def refresh(self) -> None:
        """The heartbeat's refresher: a watch on each other live instance (new ones get one; those whose
        lease went are let go)."""
        peers = await self._node.instances()
        self._stopping &= peers.keys()
        for instance_id, info in peers.items():
            if (
                instance_id != self._node.id
                and instance_id not in self._tasks
                and instance_id not in self._stopping
            ):
                task = asyncio.get_running_loop().create_task(self._run(info), name=f"watch-{instance_id}")
                self._tasks[instance_id] = task
                task.add_done_callback(functools.partial(self._done, instance_id))
        for instance_id, task in list(self._tasks.items()):
            if instance_id not in peers:
                task.cancel()

    def _done(self, instance_id: str, _task: asyncio.Task[None]) -> None:
        self._tasks.pop(instance_id, None)

    async def _run(self, info: InstanceInfo) -> None:
        code = await self._watch(info.http)
        if code is not None:  # it said it stops (1001): a clean stop is not a death to act on
            logger.debug("cluster: instance %s closed its watch (%d)", info.id, code)
            self._stopping.add(info.id)
            return
        if await self._alive(info.http):
            logger.debug("cluster: the watch on %s dropped, but it answers: watched again", info.id)
            return
        logger.warning(
            "cluster: instance %s is gone (its watch dropped, %s refuses): its calls are carried on now",
            info.id, info.http,
        )  # fmt: skip
        self.fenced += 1
        try:
            await self._node.fence(info.id)
            await self._on_dead(info.id)
        except ClusterUnavailable:  # (said by the node) its lease lapses by itself: the heartbeat acts then
            pass

    async def close(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        for task in list(self._tasks.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
