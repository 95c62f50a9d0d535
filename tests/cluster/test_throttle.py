"""The Redis login throttle against a real Redis: the local policy's waits, shared by two nodes; a user
id guessed at from many addresses slows only those; Redis unreachable: the check raises the cluster's
error, a failure is counted locally."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gateway.cluster import ClusterNode, ClusterUnavailable
from gateway.cluster.throttle import RedisLoginThrottle
from gateway.identity.throttle import LoginThrottle
from peers.redis import running_redis
from tests.cluster.test_cluster_state import settings


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_two_nodes_share_the_counts_and_the_doubling_waits(tmp_path: Path) -> None:
    clock = Clock()
    with running_redis(tmp_path) as redis:
        nodes = [ClusterNode(settings(redis.url, name), clock=clock) for name in ("a", "b")]
        throttles = [
            RedisLoginThrottle(
                n, LoginThrottle(clock=clock, free_per_address=3, free_per_pair=10, users_per_address=2)
            )
            for n in nodes
        ]
        try:
            waits = []
            for n in range(6):
                await throttles[n % 2].failed(f"user{n}", "192.0.2.66")
                waits.append(await throttles[(n + 1) % 2].wait("anyone", "192.0.2.66"))
            assert waits == [0.0, 0.0, 0.0, 1.0, 2.0, 4.0]
            assert await throttles[0].wait("anyone", "192.0.2.7") == 0.0
            clock.now += 4.0
            assert await throttles[1].wait("anyone", "192.0.2.66") == 0.0
        finally:
            for node in nodes:
                await node.close()


async def test_a_success_clears_the_pair_and_a_guessed_user_slows_only_guessers(tmp_path: Path) -> None:
    clock = Clock()
    with running_redis(tmp_path) as redis:
        node = ClusterNode(settings(redis.url, "a"), clock=clock)
        throttle = RedisLoginThrottle(node, LoginThrottle(clock=clock, free_per_pair=2, user_alarm=4))
        try:
            for _ in range(3):
                await throttle.failed("alice", "192.0.2.1")
            assert await throttle.wait("alice", "192.0.2.1") == 1.0
            await throttle.succeeded("alice", "192.0.2.1")
            assert await throttle.wait("alice", "192.0.2.1") == 0.0
            for n in range(4):
                await throttle.failed("bob", f"198.51.100.{n}")
            assert await throttle.wait("bob", "198.51.100.3") > 0  # an address that guessed before
            assert await throttle.wait("bob", "192.0.2.10") == 0.0  # bob's own clean address
            redis.stop()
            with pytest.raises(ClusterUnavailable, match="login throttle"):
                await throttle.wait("bob", "192.0.2.10")
            await throttle.failed("carol", "192.0.2.99")  # counted here meanwhile, never raised
            assert throttle._policy._records[("pair", "carol", "192.0.2.99")].failures == 1
        finally:
            await node.close()


async def test_a_user_id_guessed_on_two_nodes_raises_one_alarm_and_blocks_no_clean_address(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 32, item 5, in Redis: 20 failures for alice spread over two nodes and five addresses log
    the alarm once (on the node that counted the 20th) and count it; her login from an address that
    did not guess at her -- one that only failed for bob -- waits nothing; a guessing pair does."""
    clock = Clock()
    with running_redis(tmp_path) as redis:
        nodes = [ClusterNode(settings(redis.url, name), clock=clock) for name in ("a", "b")]
        policies = [LoginThrottle(clock=clock) for _ in nodes]
        throttles = [RedisLoginThrottle(n, p) for n, p in zip(nodes, policies, strict=True)]
        try:
            await throttles[0].failed("bob", "192.0.2.50")
            with caplog.at_level(logging.WARNING, logger="gateway.identity.throttle"):
                for n in range(20):
                    await throttles[n % 2].failed("alice", f"127.0.0.{2 + n % 5}")
                    clock.now += 1.0
            alarms = [r.getMessage() for r in caplog.records if "login alarm" in r.getMessage()]
            assert len(alarms) == 1 and "(cluster-wide)" in alarms[0] and "'alice'" in alarms[0], alarms
            assert sum(p.alarms for p in policies) == 1
            for throttle in throttles:
                assert await throttle.wait("alice", "127.0.0.7") == 0.0
                assert await throttle.wait("alice", "192.0.2.50") == 0.0
                assert await throttle.wait("alice", "127.0.0.3") > 0.0
            await throttles[1].succeeded("alice", "127.0.0.3")
            assert await throttles[0].wait("alice", "127.0.0.3") == 0.0
        finally:
            for node in nodes:
                await node.close()


async def test_one_users_failures_on_two_nodes_slow_her_pair_not_her_address(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 67 item 22 in Redis: 12 wrong passwords for alice from one address, spread over two
    nodes, slow alice there but not bob; failures there for five more user ids (six, over
    users_per_address 5) slow the whole address on both nodes, logged once."""
    clock = Clock()
    with running_redis(tmp_path) as redis:
        nodes = [ClusterNode(settings(redis.url, name), clock=clock) for name in ("a", "b")]
        throttles = [RedisLoginThrottle(n, LoginThrottle(clock=clock)) for n in nodes]
        try:
            for n in range(12):
                await throttles[n % 2].failed("alice", "192.0.2.80")
            for throttle in throttles:
                assert await throttle.wait("alice", "192.0.2.80") > 0
                assert await throttle.wait("bob", "192.0.2.80") == 0.0
            with caplog.at_level(logging.WARNING, logger="gateway.identity.throttle"):
                for n in range(5):
                    await throttles[n % 2].failed(f"user{n}", "192.0.2.80")
            for throttle in throttles:
                assert await throttle.wait("bob", "192.0.2.80") > 0
                assert await throttle.wait("bob", "192.0.2.81") == 0.0
            lockouts = [r.getMessage() for r in caplog.records if "over 5 user ids" in r.getMessage()]
            assert lockouts == [
                "login throttled (cluster-wide): 17 failed logins from 192.0.2.80 for over 5 user ids; "
                "waits double from 1 s"
            ], lockouts
        finally:
            for node in nodes:
                await node.close()
