"""Presence shared by the instances: which instance holds which web user's sessions.

The sessions themselves (WebSockets, SIP-over-WebSocket bindings, JSON-RPC peers) live in the process
that serves them: `sessions_of` answers for this instance, as `InMemoryPresence` does, and is what an
inbound call rings. Redis holds, per user, the sorted set `{prefix}online:{user}` of the instances that
hold at least one of her sessions, scored by the expiry of that instance's lease (Unix ms); the
heartbeat renews the scores of this instance's users, so a dead instance's entries lapse within one
lease. `owners` names the other live instances holding a user: where a call for her is redirected.

A login needs Redis (the others must learn where the user is): without it `add` raises
`ClusterUnavailable` and the login is refused with that error; a logout never fails (the entry lapses).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import redis.asyncio as aioredis

from gateway.cluster.errors import ClusterUnavailable
from gateway.cluster.node import ClusterNode
from gateway.identity.presence import InMemoryPresence

logger = logging.getLogger(__name__)


class ClusterPresence:
    def __init__(self, node: ClusterNode) -> None:
        self._node = node
        self._local = InMemoryPresence()
        node.add_refresher("presence", self.refresh, self.leave)

    def key(self, user_id: str) -> str:
        """The sorted set of the instances holding `user_id`'s sessions (scored by lease expiry)."""
        return self._node.key("online", user_id)

    _key = key

    async def add(self, user_id: str, session_id: str) -> None:
        node = self._node
        key, expiry = self._key(user_id), node.expiry_ms()

        async def publish(client: aioredis.Redis) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            pipe.zadd(key, {node.id: expiry})
            pipe.pexpire(key, node.lease_ms * 2)
            result: list[Any] = await pipe.execute()
            return result

        await node.run("log in (publish presence)", publish)
        await self._local.add(user_id, session_id)

    async def remove(self, user_id: str, session_id: str) -> None:
        await self._local.remove(user_id, session_id)
        if await self._local.sessions_of(user_id):
            return
        with contextlib.suppress(ClusterUnavailable):  # the entry lapses with the lease anyway
            await self._node.run("withdraw presence", lambda c: c.zrem(self._key(user_id), self._node.id))

    async def sessions_of(self, user_id: str) -> tuple[str, ...]:
        """This instance's open sessions of `user_id` (what a call here rings)."""
        return await self._local.sessions_of(user_id)

    async def online_users(self) -> tuple[str, ...]:
        return await self._local.online_users()

    async def owners(self, user_id: str) -> tuple[str, ...]:
        """The other live instances holding a session of `user_id` (ClusterUnavailable without Redis)."""
        members = await self._node.members("route to the user's instance", self._key(user_id))
        return tuple(m for m in members if m != self._node.id)

    async def online_anywhere(self, user_ids: tuple[str, ...]) -> frozenset[str]:
        """Which of `user_ids` hold a session on any live instance (this one included), in one round
        trip; without Redis, those online here (GET /contacts degrades rather than fails)."""
        node, now = self._node, self._node.now_ms()

        async def read(client: aioredis.Redis) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for user_id in user_ids:
                pipe.zcount(self._key(user_id), now, "+inf")
            result: list[Any] = await pipe.execute()
            return result

        local = {u for u in user_ids if await self._local.sessions_of(u)}
        try:
            counts = await node.run("read presence", read) if user_ids else []
        except ClusterUnavailable:
            return frozenset(local)
        return frozenset(local | {u for u, n in zip(user_ids, counts, strict=True) if n})

    async def refresh(self) -> None:
        users = await self._local.online_users()
        if not users:
            return
        node = self._node
        expiry = node.expiry_ms()

        async def renew(client: aioredis.Redis) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for user_id in users:
                pipe.zadd(self._key(user_id), {node.id: expiry})
                pipe.pexpire(self._key(user_id), node.lease_ms * 2)
            result: list[Any] = await pipe.execute()
            return result

        await node.run("renew presence", renew)

    async def leave(self) -> None:
        users = await self._local.online_users()
        if not users:
            return

        async def withdraw(client: aioredis.Redis) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for user_id in users:
                pipe.zrem(self._key(user_id), self._node.id)
            result: list[Any] = await pipe.execute()
            return result

        await self._node.run("withdraw presence", withdraw)
