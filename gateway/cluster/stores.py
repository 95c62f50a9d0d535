"""Redis behind two existing interfaces: token revocation (`RevocationStore`) and the call-record stream.

* `RedisRevocations`: `{prefix}revoked:{family}` exists until the family's `until` (PEXPIREAT, only ever
  moved later), so a logout on one instance refuses the family's tokens on every instance. Without Redis
  `is_revoked` raises `ClusterUnavailable`: a token login is refused with that error rather than let a
  revoked token through.
* `CallRecordStream`: each call record is appended (XADD, capped at `MAXLEN` approximately) to the
  `{prefix}calls` stream, from every instance: one place for a collector to read (XREAD / consumer
  groups). A record that cannot be written is logged and dropped (the file/webhook sinks still have it).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Final

import redis.asyncio as aioredis

from gateway.cluster.errors import ClusterUnavailable
from gateway.cluster.node import ClusterNode
from gateway.ops.records import CallRecord

logger = logging.getLogger(__name__)

MAXLEN: Final = 100_000


class RedisRevocations:
    def __init__(self, node: ClusterNode) -> None:
        self._node = node

    async def revoke(self, family: str, until: float) -> None:
        key, at = self._node.key("revoked", family), int(until * 1000)
        if at <= self._node.now_ms():
            return

        async def write(client: aioredis.Redis) -> list[Any]:
            pipe = client.pipeline(transaction=True)
            pipe.set(key, 1, nx=True, pxat=at)
            pipe.pexpireat(key, at, gt=True)
            result: list[Any] = await pipe.execute()
            return result

        await self._node.run("revoke the session token", write)

    async def is_revoked(self, family: str) -> bool:
        count: int = await self._node.run(
            "check the session token", lambda c: c.exists(self._node.key("revoked", family))
        )
        return count > 0


class CallRecordStream:
    def __init__(self, node: ClusterNode) -> None:
        self._node = node
        self._tasks: set[asyncio.Task[None]] = set()
        self.written = 0

    def write(self, record: CallRecord) -> None:
        """Queue the XADD (never holds up the call that ended)."""
        line = json.dumps(record.to_json(), separators=(",", ":"), default=str)
        task = asyncio.get_running_loop().create_task(self._add(record.call_id, line))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _add(self, call_id: str, line: str) -> None:
        fields: dict[Any, Any] = {
            "instance": self._node.id,
            "call_id": call_id,
            "record": line,
        }
        try:
            await self._node.run(
                "store the call record",
                lambda c: c.xadd(self._node.key("calls"), fields, maxlen=MAXLEN, approximate=True),
            )
        except ClusterUnavailable as exc:
            logger.warning("call=%s record not added to the Redis stream: %s", call_id, exc)
            return
        self.written += 1

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1.0)
