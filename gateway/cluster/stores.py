"""Redis behind two existing interfaces: token revocation (`RevocationStore`) and the call-record stream.

* `RedisRevocations` (gateway/cluster/revocations.py): a logout on one instance refuses the family's
  tokens on every instance, signed and cached by each, so deleting the Redis key revives nothing.
* `CallRecordStream`: each call record is appended (XADD, capped at `MAXLEN` approximately) to the
  `{prefix}calls` stream, from every instance: one place for a collector to read (XREAD / consumer
  groups). A record that cannot be written is logged and dropped (the file/webhook sinks still have it).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Final

from gateway.cluster.errors import ClusterUnavailable
from gateway.cluster.node import ClusterNode
from gateway.cluster.revocations import RedisRevocations
from gateway.ops.records import CallRecord

logger = logging.getLogger(__name__)

MAXLEN: Final = 100_000

__all__ = ["MAXLEN", "CallRecordStream", "RedisRevocations"]


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
