"""`ClusterNode.holders`: a redirect's lookup in one round trip against a real Redis (the presence sets of
the callees, then the holders' records): this instance left out, each holder once, a draining one
flagged, one whose record lapsed given by id only, lapsed presence entries left out."""

from __future__ import annotations

from pathlib import Path

from gateway.cluster import ClusterNode, InstanceInfo
from gateway.cluster.presence import ClusterPresence
from peers.redis import running_redis
from tests.cluster.test_cluster_state import ADVERTISED_HTTP, settings


async def test_holders_of_two_users_in_one_lookup(tmp_path: Path) -> None:
    with running_redis(tmp_path) as redis:
        a, b, c = (ClusterNode(settings(redis.url, name, lease=30)) for name in "abc")
        presences = [ClusterPresence(n) for n in (a, b, c)]
        try:
            for node in (a, b, c):
                await node.start()
            await presences[0].add("alice", "s1")
            await presences[1].add("alice", "s2")
            await presences[1].add("bob", "s3")
            await presences[2].add("bob", "s4")
            await c.set_draining()
            keys = (presences[0].key("alice"), presences[0].key("bob"))
            found = await a.holders("route", keys)
            assert [h.id if isinstance(h, InstanceInfo) else h for h in found] == ["b", "c"]
            assert [isinstance(h, InstanceInfo) and h.draining for h in found] == [False, True]
            assert found[0] == InstanceInfo("b", "127.0.0.2:5070", ADVERTISED_HTTP)
            for node in (b, c):  # no more heartbeats: what follows is not renewed behind the test's back
                assert node._task is not None
                node._task.cancel()
            await redis_delete(a, a.key("instance", "b"))  # b's record lapsed, its presence not yet
            assert (await a.holders("route", keys))[0] == "b"
            await b.redis.zadd(presences[0].key("bob"), {"c": 1})  # c's entry for bob long expired
            assert await a.holders("route", (presences[0].key("bob"),)) == ["b"]
            assert await a.holders("route", ()) == []
        finally:
            for node in (a, b, c):
                await node.close()


async def redis_delete(node: ClusterNode, key: str) -> None:
    await node.redis.delete(key)
