"""`ClusterNode`: this instance's membership of the cluster, and every Redis command of the cluster stores.

Each instance keeps a **lease**: `{prefix}instance:{id}` (a hash: its advertised SIP and HTTP addresses,
whether it drains, and `sig`, their HMAC under the cluster secret: gateway/cluster/signing.py; a record
without a valid one is ignored, so a Redis writer cannot add an instance that requests go to) expiring
after `cluster.lease` seconds, and its id in the `{prefix}instances` sorted set scored by that expiry
(Unix ms). Every `cluster.heartbeat` seconds the node renews it and runs the
stores' refreshers (presence, HTTP sessions, PBX registrations renew their own leases the same way). An
instance that dies (kill -9, a lost machine) stops renewing: within one lease the others stop sending it
calls and requests, and take over its registrations.

Redis unreachable: a command raises `ClusterUnavailable` (logged once at WARNING when it starts, at INFO
when Redis is back); the heartbeat keeps trying, so the node recovers by itself. What is local (calls,
WebSockets, the media) never waits for Redis. What this instance wrote may not be there any more when
Redis answers again (restarted empty, a replica promoted before the last writes reached it, or only
the lease lapsed): `generation` then goes up (Redis back, or this instance's record found missing at
a heartbeat), and the stores that write only what changed (live calls, rooms) write everything again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.cluster.errors import ClusterUnavailable
from gateway.cluster.signing import INSTANCE, RecordSigner
from gateway.config.cluster import ClusterSection
from gateway.ops import logctx
from gateway.tasks import stop_task

logger = logging.getLogger(__name__)

T = TypeVar("T")
Refresher = Callable[[], Awaitable[None]]

# The live members of the sorted sets KEYS (score >= ARGV[1], Unix ms) but ARGV[2], each once and with its
# instance hash (ARGV[3] .. id): what a redirect needs, in one round trip instead of two (issue 18 item 5).
_HOLDERS_SCRIPT: Final = """
local seen, out = {}, {}
for _, key in ipairs(KEYS) do
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', key, ARGV[1], '+inf')) do
    if id ~= ARGV[2] and not seen[id] then
      seen[id] = true
      table.insert(out, id)
      table.insert(out, redis.call('HGETALL', ARGV[3] .. id))
    end
  end
end
return out
"""


def text(value: object) -> str:
    """A Redis reply as text (the client decodes responses; bytes only if configured otherwise)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


@dataclass(frozen=True, slots=True)
class InstanceInfo:
    id: str
    sip: str  # host:port, where redirected calls go
    http: str  # base URL, where forwarded HTTP requests go
    draining: bool = False

    def __post_init__(self) -> None:
        if not self.id or not self.sip or not self.http:
            raise ValueError(f"incomplete instance record {self.id!r}: sip={self.sip!r} http={self.http!r}")


class ClusterNode:
    def __init__(
        self,
        settings: ClusterSection,
        client: aioredis.Redis | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from gateway.cluster.redis_client import connect

        self.settings = settings
        self.id = settings.instance_id
        self.redis = client if client is not None else connect(settings)
        self._clock = clock
        self.prefix = settings.key_prefix
        self.available = True  # the last Redis command succeeded
        # goes up whenever what this instance wrote may be gone from Redis: write it all again
        self.generation = 0
        self._renewed = False  # a heartbeat has written this instance's record
        self.draining = False
        self._refreshers: list[tuple[str, Refresher]] = []
        self._leavers: list[Refresher] = []
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._holders = self.redis.register_script(_HOLDERS_SCRIPT)  # EVALSHA, loaded on first use
        self.signer = RecordSigner(settings.secret.reveal().encode("utf-8"))

    # --- signed instance records ------------------------------------------------------------------------
    def _record(self, draining: bool) -> dict[str, str]:
        """This instance's record as written to Redis, signed."""
        advertise = self.settings.advertise
        fields = {"sip": str(advertise.sip), "http": advertise.http, "draining": str(int(draining))}
        fields["sig"] = self.signer.sign(INSTANCE, self.id, fields["sip"], fields["http"], fields["draining"])
        return fields

    def _info(self, instance_id: str, fields: dict[str, str]) -> InstanceInfo | None:
        """The record read from Redis when complete and signed by an instance; None otherwise (logged)."""
        if not fields:
            return None
        sip, http, draining = fields.get("sip", ""), fields.get("http", ""), fields.get("draining", "0")
        if not self.signer.valid(INSTANCE, fields.get("sig"), instance_id, sip, http, draining):
            self.signer.reject("an instance record", self.key("instance", instance_id))
            return None
        try:
            return InstanceInfo(instance_id, sip, http, draining == "1")
        except ValueError:
            return None

    # --- keys and time -----------------------------------------------------------------------------
    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    @property
    def lease_ms(self) -> int:
        return int(self.settings.lease * 1000)

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    def expiry_ms(self) -> int:
        """The score (Unix ms) a lease renewed now carries."""
        return self.now_ms() + self.lease_ms

    # --- commands ------------------------------------------------------------------------------------
    async def run(self, what: str, command: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        """One Redis command (or pipeline); ClusterUnavailable (with `what` in the message) when Redis
        cannot be reached or refuses."""
        try:
            result = await command(self.redis)
        except (RedisError, OSError, TimeoutError) as exc:
            self._mark(False, exc)
            raise ClusterUnavailable(
                f"shared state (Redis) unavailable, cannot {what}: try again shortly"
            ) from exc
        self._mark(True)
        return result

    def _mark(self, available: bool, exc: BaseException | None = None) -> None:
        if available == self.available:
            return
        self.available = available
        if available:
            self.generation += 1
        with logctx.outside_calls():  # about the instance, whichever call's command found it out
            if available:
                logger.info("cluster %s: Redis reachable again", self.id)
            else:
                logger.warning("cluster %s: Redis unreachable (%s): logins and routing degrade", self.id, exc)

    # --- membership ----------------------------------------------------------------------------------
    def add_refresher(self, name: str, refresher: Refresher, leave: Refresher | None = None) -> None:
        """`refresher` runs at every heartbeat; `leave` (best effort) when the node closes."""
        self._refreshers.append((name, refresher))
        if leave is not None:
            self._leavers.append(leave)

    async def start(self) -> None:
        await self.beat()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"cluster-{self.id}")
        logger.info(
            "cluster instance %s: SIP %s, HTTP %s, lease %g s",
            self.id,
            self.settings.advertise.sip,
            self.settings.advertise.http,
            self.settings.lease,
        )

    async def _loop(self) -> None:
        while not self._closed:  # a cancellation lost in redis-py still ends the heartbeat (gateway/tasks.py)
            await asyncio.sleep(self.settings.heartbeat)
            await self.beat()

    async def beat(self) -> None:
        """Renew this instance's lease and run every refresher; failures are logged, never raised."""
        expiry = self.expiry_ms()

        async def renew(client: aioredis.Redis) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            own = self.key("instance", self.id)
            pipe.exists(own)  # gone while this instance lives: Redis lost what it held (module note)
            pipe.hset(own, mapping=self._record(self.draining))  # type: ignore[arg-type]
            pipe.pexpire(own, self.lease_ms)
            pipe.zadd(self.key("instances"), {self.id: expiry})
            pipe.zremrangebyscore(self.key("instances"), 0, self.now_ms())
            result: list[Any] = await pipe.execute()
            return result

        try:
            found = (await self.run("renew the instance lease", renew))[0]
        except ClusterUnavailable:
            return
        if not found and self._renewed:
            self.generation += 1
            logger.info("cluster %s: Redis held nothing of this instance: writing its state again", self.id)
        self._renewed = True
        for name, refresher in self._refreshers:
            try:
                await refresher()
            except ClusterUnavailable:
                return
            except Exception:
                logger.exception("cluster %s: refreshing %s failed", self.id, name)

    async def instances(self) -> dict[str, InstanceInfo]:
        """The live instances (this one included), by id."""
        now = self.now_ms()

        async def read(client: aioredis.Redis) -> dict[str, InstanceInfo]:
            members = await client.zrangebyscore(self.key("instances"), now, "+inf")
            found: dict[str, InstanceInfo] = {}
            for instance_id in map(text, members):
                info = await self._read_instance(client, instance_id)
                if info is not None:
                    found[instance_id] = info
            return found

        return await self.run("list the instances", read)

    async def get(self, what: str, key: str) -> str | None:
        """GET `key` as text (None when absent)."""
        value = await self.run(what, lambda c: c.get(key))
        return None if value is None else text(value)

    async def members(self, what: str, key: str) -> tuple[str, ...]:
        """The members of the sorted set `key` whose score (a lease's expiry, Unix ms) is not past."""
        now = self.now_ms()
        found = await self.run(what, lambda c: c.zrangebyscore(key, now, "+inf"))
        return tuple(text(m) for m in found)

    async def records(self, instance_ids: tuple[str, ...]) -> dict[str, InstanceInfo]:
        """The records of these instances that are live (their hash lapses with the lease), in one round
        trip (a pipeline of HGETALL): what a redirect needs, without listing the whole cluster."""
        if not instance_ids:
            return {}

        async def read(client: aioredis.Redis) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for instance_id in instance_ids:
                pipe.hgetall(self.key("instance", instance_id))
            result: list[Any] = await pipe.execute()
            return result

        found: dict[str, InstanceInfo] = {}
        for instance_id, raw in zip(instance_ids, await self.run("look up instances", read), strict=True):
            info = self._info(instance_id, {text(k): text(v) for k, v in raw.items()})
            if info is not None:
                found[instance_id] = info
        return found

    async def holders(self, what: str, keys: tuple[str, ...]) -> list[InstanceInfo | str]:
        """The other live instances in the sorted sets `keys` (lease expiry scores), in score order, each
        as its record (InstanceInfo) or, when its record has lapsed, its bare id: one round trip."""
        if not keys:
            return []
        args = (self.now_ms(), self.id, self.key("instance", ""))
        reply: list[Any] = await self.run(what, lambda c: self._holders(keys=list(keys), args=args, client=c))
        found: list[InstanceInfo | str] = []
        for instance_id, raw in zip(reply[::2], reply[1::2], strict=True):
            fields = dict(zip(map(text, raw[::2]), map(text, raw[1::2]), strict=True))
            info = self._info(text(instance_id), fields)
            found.append(info if info is not None else text(instance_id))
        return found

    async def instance(self, instance_id: str) -> InstanceInfo | None:
        """A live instance's record, or None when its lease has expired."""
        return await self.run("look up an instance", lambda c: self._read_instance(c, instance_id))

    async def _read_instance(self, client: aioredis.Redis, instance_id: str) -> InstanceInfo | None:
        raw = await client.hgetall(self.key("instance", instance_id))
        return self._info(instance_id, {text(k): text(v) for k, v in raw.items()})

    async def fence(self, instance_id: str) -> None:
        """Take another instance's lease out now (its process was found dead: gateway/cluster/
        peer_watch.py): every instance then takes it for gone, as when its lease lapses."""

        async def remove(client: aioredis.Redis) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            pipe.delete(self.key("instance", instance_id))
            pipe.zrem(self.key("instances"), instance_id)
            result: list[Any] = await pipe.execute()
            return result

        await self.run("fence a dead instance", remove)

    async def set_draining(self) -> None:
        """Drain: the others stop sending this instance new calls and logins (and /readyz says 503)."""
        self.draining = True
        record, own = self._record(True), self.key("instance", self.id)  # re-signed: draining is covered
        with contextlib.suppress(ClusterUnavailable):
            await self.run(
                "mark the instance draining",
                lambda c: c.hset(own, mapping=record),  # type: ignore[arg-type]
            )

    async def close(self) -> None:
        """Stop the heartbeat, give up this instance's leases (best effort) and disconnect; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            await stop_task(self._task)
            self._task = None
        for leave in self._leavers:
            try:
                await asyncio.wait_for(leave(), self.settings.redis_timeout * 2)
            except (ClusterUnavailable, TimeoutError):
                break
            except Exception:
                logger.exception("cluster %s: leaving failed", self.id)
        with contextlib.suppress(ClusterUnavailable, TimeoutError):

            async def forget(client: aioredis.Redis) -> list[Any]:
                pipe = client.pipeline(transaction=False)
                pipe.delete(self.key("instance", self.id))
                pipe.zrem(self.key("instances"), self.id)
                result: list[Any] = await pipe.execute()
                return result

            await asyncio.wait_for(self.run("leave the cluster", forget), self.settings.redis_timeout * 2)
        with contextlib.suppress(Exception):
            await self.redis.aclose()


async def listen_on_channel(
    node: ClusterNode,
    channel: str,
    what: str,
    *,
    on_subscribed: Callable[[bool], Awaitable[None]],
    on_message: Callable[[object], Awaitable[None]],
    subscribed: asyncio.Event,
    closing: Callable[[], bool],
) -> None:
    """Hand each message of a pub/sub `channel` to `on_message` until `closing()`: subscribed again a
    heartbeat after the connection is lost (`subscribed` cleared meanwhile, a WARNING logged), and
    `on_subscribed(first)` each time before messages flow (a resync of what was missed). One message whose
    handling fails is logged and skipped; a Redis error ends the subscription, not the listener."""
    first = True
    while not closing():
        pubsub = node.redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(channel)
            await on_subscribed(first)
            subscribed.set()
            first = False
            while not closing():
                message: dict[str, Any] | None = await pubsub.get_message(timeout=1.0)
                if message is None or message.get("type") != "message":
                    continue
                try:
                    await on_message(message.get("data"))
                except (RedisError, OSError, TimeoutError, ClusterUnavailable):
                    raise
                except Exception:  # one bad message must not end the listener
                    logger.exception("%s message %r not handled", what, message.get("data"))
        except (RedisError, OSError, TimeoutError, ClusterUnavailable) as exc:
            if subscribed.is_set():
                logger.warning("%s channel lost (%s): resubscribing", what, exc)
            subscribed.clear()
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
        await asyncio.sleep(node.settings.heartbeat)
