"""Login throttling counted in Redis, so that a guesser spreading tries over the instances (HAProxy sends
each connection anywhere) meets one limit, not one per instance (issue 18: "login throttling counters").

The policy is `gateway.identity.throttle.LoginThrottle`'s, its parameters taken from the local one: failed
logins per address and per (user id, address) pair; past the free failures a pair waits, doubling from
`base` up to `cap`, and so does an address once it failed for more than `users_per_address` user ids
(a set `{prefix}throttle:address_users:{address}` beside its record, expiring with it). Failures per user id only raise the alarm (logged at WARNING, counted
in the policy's `alarms`; while it is up a pair that failed waits from its first failure): an address
that has not guessed at a user id is never slowed by others' guesses (issue 32, item 5). Each record
is a hash `{prefix}throttle:{kind}:{...}` with `failures` and `last` (Unix ms) updated by one pipeline
per failed login (HINCRBY + HSET + PEXPIRE `forget_after`, so a record is forgotten as the local one
is); a check reads the three records in one pipeline (HMGET). A success deletes its pair.

Every failure is also counted by the local policy, and `wait` is the longer of the two: a Redis writer
who deletes or rewrites the records (or a Redis that lost them) resets the cluster-wide count only,
never below what this instance saw itself (issue 32 item 11).

Redis unreachable: `wait` raises `ClusterUnavailable` (the login is refused with `unavailable`, "try
again shortly", as the presence store refuses it) rather than let unthrottled guesses through; a failure
that cannot be counted in Redis is logged and counted locally meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import redis.asyncio as aioredis

from gateway.cluster.errors import ClusterUnavailable
from gateway.cluster.node import ClusterNode, text
from gateway.identity.throttle import LoginThrottle

logger = logging.getLogger(__name__)


class RedisLoginThrottle:
    def __init__(self, node: ClusterNode, policy: LoginThrottle) -> None:
        self._node = node
        self._policy = policy  # the parameters, and the counts kept while Redis is unreachable
        self.lockouts = 0  # addresses or pairs that passed their free failures (as logged)

    def _keys(self, user_id: str, address: str) -> tuple[str, str, str]:
        key = self._node.key
        return (key("throttle", "address", address), key("throttle", "pair", user_id, address),
                key("throttle", "user", user_id))  # fmt: skip

    def _users_key(self, address: str) -> str:
        """The set of the user ids an address failed for."""
        return self._node.key("throttle", "address_users", address)

    async def wait(self, user_id: str, address: str) -> float:
        """Seconds before a login for `user_id` from `address` may be tried (0: now), counting the
        failures of every instance; ClusterUnavailable without Redis."""
        keys, users_key = self._keys(user_id, address), self._users_key(address)

        async def read(client: aioredis.Redis) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.hmget(key, "failures", "last")
            pipe.scard(users_key)
            result: list[Any] = await pipe.execute()
            return result

        raw = await self._node.run("check the login throttle", read)
        now = self._node.now_ms() / 1000.0
        (a_n, a_last), (p_n, p_last), (u_n, u_last) = (_record(r) for r in raw[:3])
        policy, users = self._policy, int(raw[3] or 0)
        address_until = (
            self._until(a_n, a_last, policy.free_per_address) if policy.locks("address", a_n, users) else 0
        )
        waits = [address_until - now,
                 self._until(p_n, p_last, policy.free_per_pair) - now,
                 self._policy.wait(user_id, address)]  # fmt: skip
        if now - u_last <= policy.forget_after and now - p_last <= policy.forget_after:
            waits.append(policy.alarm_wait(u_n, p_n, p_last) - now)
        return max(0.0, *waits)

    def _until(self, failures: int, last: float, free: int) -> float:
        return last + self._policy.delay(failures - free) if failures > free else 0.0

    async def failed(self, user_id: str, address: str) -> None:
        """Count a failed login in the three records (one pipeline); locally when Redis is unreachable."""
        keys, node, policy = self._keys(user_id, address), self._node, self._policy
        users_key = self._users_key(address)
        now_ms, ttl = node.now_ms(), int(policy.forget_after * 1000)

        async def count(client: aioredis.Redis) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.hincrby(key, "failures", 1)
                pipe.hset(key, "last", now_ms)
                pipe.pexpire(key, ttl)
            pipe.sadd(users_key, user_id)
            pipe.pexpire(users_key, ttl)  # forgotten with the address's record
            pipe.scard(users_key)
            result: list[Any] = await pipe.execute()
            return result

        policy.failed(user_id, address)  # the local floor: what Redis loses (or a writer resets) still counts
        try:
            counts = await node.run("count a failed login", count)
        except ClusterUnavailable as exc:
            logger.warning("failed login from %s counted on this instance only: %s", address, exc)
            return
        users, added = int(counts[11]), int(counts[9])  # the address's user ids; 1: this one is new
        for kind, failures, locked_by in (
            ("address", int(counts[0]), None),
            ("pair", int(counts[3]), user_id),
        ):
            before = users - added if kind == "address" else 0  # what the previous failure saw
            if policy.locks(kind, failures, users) and not policy.locks(kind, failures - 1, before):
                self.lockouts += 1
                policy.lockout(failures, address, locked_by, " (cluster-wide)")
        policy.alarm(user_id, address, int(counts[6]), " (cluster-wide)")

    async def succeeded(self, user_id: str, address: str) -> None:
        self._policy.succeeded(user_id, address)
        with contextlib.suppress(ClusterUnavailable):  # the pair lapses after forget_after anyway
            await self._node.run(
                "clear the login throttle", lambda c: c.delete(self._keys(user_id, address)[1])
            )


def _record(raw: list[Any]) -> tuple[int, float]:
    """(failures, last failure in Unix seconds) of one HMGET reply; (0, 0.0) when absent."""
    failures, last = raw
    if failures is None or last is None:
        return 0, 0.0
    try:
        return int(text(failures)), int(text(last)) / 1000.0
    except ValueError:  # not written by us: treated as absent
        return 0, 0.0
