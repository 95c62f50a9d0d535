"""Token revocations shared by the instances, fail-closed against whoever can write to Redis (issue 32).

A logout revokes its token family (gateway/signaling/tokens.py) until the family's newest token can have
expired. A Redis key alone would let a Redis writer revive logged-out tokens by deleting it, so:

- every instance keeps the revocations it knows until they end, in its state directory
  (`FileRevocations`, gateway.state_dir: they survive a restart; in memory without one): the one that
  logs out at once, the others when they hear the signed message on the pub/sub channel
  `{prefix}revoked` (`<family>;<until ms>;<HMAC>`, gateway/cluster/signing.py), when they read a signed
  `{prefix}revoked:{family}` record, and at start-up and after every resubscription (a SCAN of those
  records). Deleting a record afterwards changes nothing on an instance that knows it.
- a record present counts as revoked even unsigned (it can only log a user out, which a Redis writer
  can do anyway by other means); only signed ones are remembered.
- without Redis, a family known here is refused and any other token is refused with "try again
  shortly" (ClusterUnavailable), never let through.

What remains (docs/deploy.md, "Redis is not trusted"): a new instance (an empty state directory)
started after a Redis writer deleted a record accepts the family's tokens until they expire.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis.asyncio as aioredis

from gateway.cluster.node import ClusterNode, listen_on_channel, text
from gateway.cluster.signing import REVOCATION
from gateway.signaling.revocation import InMemoryRevocations, RevocationStore
from gateway.tasks import stop_task

logger = logging.getLogger(__name__)


class RedisRevocations:
    def __init__(self, node: ClusterNode, local: RevocationStore | None = None) -> None:
        self._node = node
        # what this instance knows (gateway.signaling.revocation.FileRevocations: kept across restarts)
        self._local = local if local is not None else InMemoryRevocations(lambda: node.now_ms() / 1000.0)
        self.channel = node.key("revoked")
        self.heard = 0  # valid revocations heard from the channel (tests, status)
        self.subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def _key(self, family: str) -> str:
        return self._node.key("revoked", family)

    async def _remember(self, family: str, sealed: str | None, key: str) -> bool:
        """Keep a signed record's revocation (True); False when it is not signed by an instance."""
        until = self._node.signer.unseal(REVOCATION, sealed, key, "a token revocation", family)
        if until is None or not until.isdigit():
            return False
        if not await self._local.is_revoked(family):
            await self._local.revoke(family, int(until) / 1000.0)
        return True

    async def revoke(self, family: str, until: float) -> None:
        node = self._node
        at = int(until * 1000)
        if at <= node.now_ms():
            return
        await self._local.revoke(family, until)  # first: refused here whatever becomes of Redis
        sealed = node.signer.seal(REVOCATION, str(at), family)
        key = self._key(family)

        async def write(client: aioredis.Redis) -> list[Any]:
            pipe = client.pipeline(transaction=True)
            pipe.set(key, sealed, pxat=at)
            pipe.publish(self.channel, f"{family};{sealed}")
            result: list[Any] = await pipe.execute()
            return result

        await node.run("revoke the session token", write)

    async def is_revoked(self, family: str) -> bool:
        if await self._local.is_revoked(family):
            return True
        key = self._key(family)
        sealed = await self._node.get("check the session token", key)
        if sealed is None:
            return False
        await self._remember(family, sealed, key)
        return True  # present: revoked, signed or not (fail closed)

    # --- the channel -------------------------------------------------------------------------------------
    async def heard_message(self, data: object) -> None:
        """One message of the channel: a signed revocation is remembered, anything else ignored (logged)."""
        family, _, sealed = text(data).partition(";")
        if family and await self._remember(family, sealed, f"{self.channel} message for {family[:64]!r}"):
            self.heard += 1

    async def sync(self) -> int:
        """Remember every signed revocation in Redis now (SCAN): after start-up and each resubscription."""
        node, pattern = self._node, self._key("*")

        async def scan(client: aioredis.Redis) -> dict[str, str | None]:
            keys = [text(k) async for k in client.scan_iter(match=pattern, count=500)]
            values = await client.mget(keys) if keys else []
            return {k: (None if v is None else text(v)) for k, v in zip(keys, values, strict=True)}

        found = await node.run("read the revoked tokens", scan)
        prefix, known = self._key(""), 0
        for key, sealed in found.items():
            known += await self._remember(key.removeprefix(prefix), sealed, key)
        return known

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._listen(), name="cluster-revocations")

    async def _listen(self) -> None:
        await listen_on_channel(
            self._node,
            self.channel,
            "revocation",
            on_subscribed=self._subscribed,
            on_message=self.heard_message,
            subscribed=self.subscribed,
            closing=lambda: self._closing,
        )

    async def _subscribed(self, first: bool) -> None:
        known = await self.sync()
        logger.info("revocation channel subscribed (%d revoked token families known)", known)

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            await stop_task(self._task)
            self._task = None
