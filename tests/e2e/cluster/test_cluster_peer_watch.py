"""A dead instance is noticed by its watch, not at its lease's end (issue 65 item 1; gateway/cluster/
peer_watch.py): two instances as real processes sharing a real Redis, with a 30 s lease.

kill -9 of gw1 while alice and bob talk through it: gw2's watch on gw1 drops, gw1's HTTP port refuses,
gw2 fences gw1 (its lease out of Redis) and carries both calls on at once: they are taken over within a
few seconds, where the lease alone would have made them wait 30. A clean stop of gw1 (SIGTERM, no call)
closes its watch with 1001: gw2 fences nothing."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import redis

from peers.redis import running_redis
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.cluster.cluster_procs import handovers_written, instance_mapping, process_cluster
from tests.e2e.cluster.test_cluster_takeover_web_to_web import back_at, in_a_call
from tests.e2e.harness import ALICE_SECRET, BOB_SECRET, wait_until

LEASE, HEARTBEAT = 30.0, 1.0
NOTICED_WITHIN = 5.0  # s from the kill to both calls taken over (the lease would take 30)


async def test_a_killed_instances_calls_are_taken_over_long_before_its_lease_ends(tmp_path: Path) -> None:
    slow = {"web_auth": {"reconnect_grace": 60}}
    with running_redis(tmp_path) as server:
        mappings = [
            instance_mapping(i, server.url, heartbeat=HEARTBEAT, lease=LEASE, extra=slow) for i in range(2)
        ]
        async with process_cluster(tmp_path, mappings) as (gw1, gw2):
            alice_media, bob_media = WebPeer(1000), WebPeer(660)
            alice = WebUser(gw1.http_url, "alice", ALICE_SECRET)
            bob = WebUser(gw1.http_url, "bob", BOB_SECRET)
            try:
                calls = await in_a_call(alice, bob, alice_media, bob_media)
                await handovers_written(server.url, "gw1", 2, timeout=10)
                await asyncio.sleep(2 * HEARTBEAT)  # gw2's heartbeat has opened its watch on gw1
                gw1.kill()
                killed = time.monotonic()
            finally:
                await asyncio.gather(alice.close(), bob.close(), alice_media.close(), bob_media.close())
            await wait_until(lambda: gw2.log().count("taken over here") == 2, timeout=NOTICED_WITHIN)
            noticed = time.monotonic() - killed
            assert "instance gw1 is gone (its watch dropped" in gw2.log(), gw2.log()[-3000:]
            client = redis.Redis.from_url(server.url)
            try:
                assert client.zscore("gw:instances", "gw1") is None  # fenced: every instance agrees
            finally:
                client.close()
            await back_at(gw2, alice, bob, calls, 20)
    print(f"both calls taken over {noticed:.2f} s after gw1's kill -9 (its lease: {LEASE:g} s)")


async def test_a_clean_stop_is_not_taken_for_a_death(tmp_path: Path) -> None:
    with running_redis(tmp_path) as server:
        mappings = [instance_mapping(i, server.url, heartbeat=0.5, lease=2.0) for i in range(2)]
        async with process_cluster(tmp_path, mappings) as (gw1, gw2):
            await asyncio.sleep(1.5)  # gw2's heartbeat has opened its watch on gw1
            gw1.signal(signal.SIGTERM)
            assert await gw1.wait(10) == 0
            await asyncio.sleep(1.0)
            assert "is gone (its watch dropped" not in gw2.log(), gw2.log()[-3000:]
