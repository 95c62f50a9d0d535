"""Token revocations in Redis fail closed (gateway/cluster/revocations.py), against a real Redis: what an
instance learnt (its own logout, a signed message heard, a signed record read) outlives the record's
deletion, and its restart with the same state directory; an unsigned record still refuses its family
but is not remembered; forged messages are ignored; an instance starting later learns every signed
record present."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from gateway.cluster import ClusterNode, ClusterUnavailable
from gateway.cluster.revocations import RedisRevocations
from gateway.signaling.revocation import FileRevocations
from peers.redis import running_redis
from tests.cluster.test_cluster_state import settings
from tests.e2e.harness import wait_until


async def test_a_deleted_revocation_stays_revoked_where_it_was_known(tmp_path: Path) -> None:
    with running_redis(tmp_path) as redis:
        a, b = ClusterNode(settings(redis.url, "a")), ClusterNode(settings(redis.url, "b"))
        b_state = tmp_path / "b-revoked.json"  # b's state directory: what it knows survives its restart
        on_a, on_b = RedisRevocations(a), RedisRevocations(b, FileRevocations(b_state))
        try:
            on_b.start()
            await asyncio.wait_for(on_b.subscribed.wait(), 20)
            await on_a.revoke("family-1", time.time() + 60)
            await wait_until(lambda: on_b.heard == 1, timeout=20)
            # a Redis writer: the record deleted, a forged message, an unsigned record
            assert await a.redis.delete(a.key("revoked", "family-1")) == 1
            await a.redis.publish(on_a.channel, "family-2;99999999999999;" + "0" * 64)
            await a.redis.publish(on_a.channel, "garbage")
            await a.redis.set(a.key("revoked", "family-3"), "1")
            assert await on_a.is_revoked("family-1")  # its own logout
            assert await on_b.is_revoked("family-1")  # heard
            assert not await on_b.is_revoked("family-2")  # the forged message was not believed
            assert on_b.heard == 1
            assert await on_b.is_revoked("family-3")  # present: refused, signed or not
            await a.redis.delete(a.key("revoked", "family-3"))
            assert not await on_b.is_revoked("family-3")  # but not remembered
            # b restarted (the same state directory, the record gone from Redis): still refused
            assert await RedisRevocations(b, FileRevocations(b_state)).is_revoked("family-1")
            # an instance starting now learns the signed records present
            await on_a.revoke("family-4", time.time() + 60)
            c = ClusterNode(settings(redis.url, "c"))
            late = RedisRevocations(c)
            assert await late.sync() == 1
            await a.redis.delete(a.key("revoked", "family-4"))
            assert await late.is_revoked("family-4")
            assert not await late.is_revoked("family-1")  # deleted before it started: the gap documented
            await c.close()
            # without Redis: known families are refused, unknown ones cannot be checked (fail closed)
            redis.stop()
            assert await on_b.is_revoked("family-1")
            with pytest.raises(ClusterUnavailable, match=r"shared state \(Redis\) unavailable"):
                await on_b.is_revoked("family-9")
        finally:
            await on_b.close()
            await b.close()
            await a.close()
