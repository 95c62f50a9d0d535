"""Live `presence` events across instances (issue 18): a user's login on one instance reaches her contacts'
pages on every other as a `presence` event, not only through `GET /contacts`.

Each instance publishes its own transitions (a user's first session here opened, her last here closed)
on the Redis channel `{prefix}presence` as `{"instance", "user", "online"}`, and listens to the others'
on its own pub/sub connection. The feed's watchers (gateway/signaling/ws/presence_feed.py) are told:

- "online" from another instance, unless the user has a session here (her watchers know already);
- "offline" (from another instance, or her last session here closing) only when no live instance holds
  her any more (the presence store, `ClusterPresence.owners`): a user with tabs on two instances who
  closes one stays online for her contacts.

Pub/sub delivers at most once and nothing while disconnected. When Redis goes away the listener keeps
trying every heartbeat; once subscribed again it resyncs from the presence store (one ZCOUNT per user
in one pipeline): every user whose state changed since the last known one (`known`) is pushed, so a page
misses no login or logout that happened during the outage. Publishing fails quietly meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

from gateway.cluster.errors import ClusterUnavailable
from gateway.cluster.node import ClusterNode, listen_on_channel, text
from gateway.cluster.presence import ClusterPresence
from gateway.tasks import stop_task

logger = logging.getLogger(__name__)

Push = Callable[[str, bool], Awaitable[None]]
Users = Callable[[], Awaitable[tuple[str, ...]]]


class PresenceChannel:
    def __init__(self, node: ClusterNode, presence: ClusterPresence, push: Push, users: Users) -> None:
        self._node = node
        self._presence = presence
        self._push = push  # PresenceFeed.push: tell this instance's watchers
        self._users = users  # every web user's id (the identity store's)
        self.channel = node.key("presence")
        self.known: set[str] = set()  # online on some instance, as last pushed or resynced
        self.received = 0  # transitions of other instances heard (tests, status)
        self.resyncs = 0
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.subscribed = asyncio.Event()

    # --- this instance's transitions (PresenceRelay) ---------------------------------------------------
    async def local_change(self, user_id: str, online: bool) -> bool:
        """Publish the transition; tell the local watchers unless she is still online elsewhere."""
        message = json.dumps({"instance": self._node.id, "user": user_id, "online": online})
        try:
            await self._node.run("publish presence", lambda c: c.publish(self.channel, message))
        except ClusterUnavailable as exc:  # the others resync when Redis is back
            logger.info("presence of %s not published: %s", user_id, exc)
        if online:
            self.known.add(user_id)
            return True
        if await self._elsewhere(user_id):
            return False
        self.known.discard(user_id)
        return True

    async def _elsewhere(self, user_id: str) -> bool:
        try:
            return bool(await self._presence.owners(user_id))
        except ClusterUnavailable:
            return False  # cannot tell: her last session here closed, say so

    # --- the others' transitions ---------------------------------------------------------------------
    async def heard(self, data: object) -> None:
        """One message of the channel (malformed ones and this instance's own are ignored)."""
        try:
            body = json.loads(text(data))
            instance, user_id, online = str(body["instance"]), str(body["user"]), bool(body["online"])
        except (ValueError, KeyError, TypeError):
            logger.info("presence message %r ignored", text(data)[:80])
            return
        if instance == self._node.id:
            return
        self.received += 1
        if await self._presence.sessions_of(user_id):
            return  # she is here: her watchers learnt of her from this instance
        if not online and await self._elsewhere(user_id):
            return
        (self.known.add if online else self.known.discard)(user_id)
        await self._push(user_id, online)

    async def resync(self) -> None:
        """Push every user whose state differs from `known`, read from the presence store."""
        users = await self._users()
        online = await self._presence.online_anywhere(users) if users else frozenset()
        came, went = online - self.known, self.known - online
        self.known = set(online)
        self.resyncs += 1
        for user_id in sorted(came):
            await self._push(user_id, True)
        for user_id in sorted(went):
            await self._push(user_id, False)
        if came or went:
            logger.info("presence resynced: %d online, %d offline since", len(came), len(went))

    # --- the listener ----------------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._listen(), name="cluster-presence")

    async def _listen(self) -> None:
        await listen_on_channel(
            self._node,
            self.channel,
            "presence",
            on_subscribed=self._subscribed,
            on_message=self.heard,
            subscribed=self.subscribed,
            closing=lambda: self._closing,
        )

    async def _subscribed(self, first: bool) -> None:
        if not first:
            logger.info("presence channel subscribed again")
        await self.resync()

    async def close(self) -> None:
        self._closing = True  # a cancellation lost in redis-py still ends the listener (gateway/tasks.py)
        if self._task is not None:
            await stop_task(self._task)
            self._task = None
