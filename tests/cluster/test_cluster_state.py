"""The cluster stores against a real Redis (peers/redis.py): registration ownership moves within one lease
when its holder dies and never has two owners; presence and revocations are shared; an outage raises the
clear error and the node recovers by itself when Redis is back."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path
from typing import Any

import pytest

from gateway.cluster import ClusterNode, ClusterUnavailable
from gateway.cluster.presence import ClusterPresence
from gateway.cluster.registrations import RegistrationOwnership
from gateway.cluster.stores import RedisRevocations
from gateway.config.cluster import ClusterSection
from gateway.config.errors import ConfigError
from gateway.config.loader import config_from_mapping
from gateway.ops import logctx
from peers.redis import running_redis

AOR = "sip:1001@127.0.0.1"
# Where the instances say they answer HTTP: a port this process holds bound and never listens on. A
# survivor probes a dead instance's address before taking its calls (gateway/cluster/live_calls.py): 8080
# was sometimes another test's listener, and a merely free port can still answer (another listener later,
# or a TCP self-connect, when the probe's ephemeral source port is the port itself); the calls were then
# "left to" the dead instance. Held, the port refuses every probe.
_HELD_PORT = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
_HELD_PORT.bind(("127.0.0.2", 0))
ADVERTISED_HTTP = f"http://127.0.0.2:{_HELD_PORT.getsockname()[1]}"


def settings(url: str, instance: str, **extra: Any) -> ClusterSection:
    config = config_from_mapping(
        {
            "web_auth": {"session_secret": "unit-session-secret-0123456789"},
            "cluster": {
                "redis": url,
                "instance_id": instance,
                "advertise": {"sip": "127.0.0.2:5070", "http": ADVERTISED_HTTP},
                "secret": "unit-cluster-secret-0123",
                "heartbeat": 0.2,
                "lease": 0.6,
                "redis_timeout": 0.3,
                **extra,
            },
        },
        {},
    )
    assert config.cluster is not None
    return config.cluster


class Registrar:
    """An in-memory stand-in for the UA's RegistrationClient: which AORs it was told to register."""

    def __init__(self) -> None:
        self.active: set[str] = set()

    def start_one(self, aor: str) -> None:
        self.active.add(aor)

    def stop_one(self, aor: str, *, unregister: bool = True) -> None:
        self.active.discard(aor)


async def test_registration_moves_within_a_lease_when_its_owner_dies(tmp_path: Path) -> None:
    with running_redis(tmp_path) as redis:
        a, b = ClusterNode(settings(redis.url, "a")), ClusterNode(settings(redis.url, "b"))
        reg_a, reg_b = Registrar(), Registrar()
        own_a, own_b = RegistrationOwnership(a, reg_a, [AOR]), RegistrationOwnership(b, reg_b, [AOR])
        await a.start()
        await b.start()
        try:
            await asyncio.sleep(0.5)  # several heartbeats of both
            assert (reg_a.active, reg_b.active) == ({AOR}, set())  # one owner, the first
            assert await own_b.owner(AOR) == "a"
            assert a._task is not None
            a._task.cancel()  # a dies: no more heartbeats, nothing released
            started = asyncio.get_running_loop().time()
            while not reg_b.active:
                await asyncio.sleep(0.02)
            took = asyncio.get_running_loop().time() - started
            assert took <= a.settings.lease + b.settings.heartbeat + 0.2, took
            assert await own_b.owner(AOR) == "b"
            await a.beat()  # a comes back to life: it must notice it lost the lock and stop
            assert reg_a.active == set() and own_a.held == set()
        finally:
            await b.close()
            await a.close()


async def test_presence_revocation_and_an_outage(tmp_path: Path) -> None:
    with running_redis(tmp_path) as redis:
        a, b = ClusterNode(settings(redis.url, "a")), ClusterNode(settings(redis.url, "b"))
        on_a, on_b = ClusterPresence(a), ClusterPresence(b)
        await a.start()
        await b.start()
        try:
            await on_a.add("alice", "s1")
            assert await on_b.owners("alice") == ("a",)
            assert await on_a.owners("alice") == ()  # itself is not "another instance"
            assert await on_b.sessions_of("alice") == ()
            assert set(await b.instances()) == {"a", "b"}
            revocations = RedisRevocations(a)
            await revocations.revoke("family-1", a._clock() + 60)
            assert await RedisRevocations(b).is_revoked("family-1")
            assert not await RedisRevocations(b).is_revoked("family-2")
            redis.stop()
            with pytest.raises(ClusterUnavailable, match=r"shared state \(Redis\) unavailable"):
                await on_b.add("bob", "s2")
            assert await on_b.sessions_of("bob") == ()  # the refused login left nothing behind
            assert not b.available
            with pytest.raises(ClusterUnavailable):
                await RedisRevocations(b).is_revoked("family-1")
            redis.start()  # appendonly: what was acknowledged is still there
            for _ in range(50):
                await asyncio.sleep(0.1)
                if b.available:
                    break
            assert b.available, "the node did not recover by itself"
            await on_b.add("bob", "s2")
            assert await on_a.owners("bob") == ("b",)
            assert await RedisRevocations(b).is_revoked("family-1")
            await on_a.remove("alice", "s1")
            assert await on_b.owners("alice") == ()
        finally:
            await b.close()
            await a.close()


def test_cluster_section_checks() -> None:
    with pytest.raises(ConfigError, match=r"cluster\.redis: give exactly one of redis"):
        settings("redis://127.0.0.1:1/0", "a", sentinel={"addresses": ["127.0.0.1:26379"]})
    with pytest.raises(ConfigError, match=r"cluster\.lease: must be at least twice heartbeat"):
        settings("redis://127.0.0.1:1/0", "a", heartbeat=1.0, lease=1.5)
    with pytest.raises(ConfigError, match=r"web_auth\.session_secret: required with cluster"):
        config_from_mapping(
            {
                "cluster": {
                    "redis": "redis://127.0.0.1:1/0",
                    "instance_id": "a",
                    "advertise": {"sip": "127.0.0.2:5070", "http": "http://127.0.0.2:8080"},
                    "secret": "unit-cluster-secret-0123",
                }
            },
            {},
        )
    with pytest.raises(ConfigError, match=r"cluster\.instance_id"):
        settings("redis://127.0.0.1:1/0", "not valid!")


async def test_a_registration_lock_redis_lost_is_kept_by_its_holder(tmp_path: Path) -> None:
    """Issue 65 item 3: a Redis emptied (restarted without its files, a replica promoted without the lock)
    holds no registration lock; its holder takes it again at its next heartbeat and goes on registering,
    rather than taking it for lost to another instance (stop) and registering again a heartbeat later."""
    with running_redis(tmp_path) as redis:
        node = ClusterNode(settings(redis.url, "a"))
        stops: list[str] = []
        registrar = Registrar()
        registrar.stop_one = lambda aor, *, unregister=True: stops.append(aor)  # type: ignore[method-assign]
        ownership = RegistrationOwnership(node, registrar, [AOR])
        try:
            await node.beat()
            assert ownership.held == {AOR} and registrar.active == {AOR}
            await node.redis.flushall()
            await node.beat()
            assert stops == [] and ownership.held == {AOR}
            assert await ownership.owner(AOR) == "a"
        finally:
            await node.close()


async def test_redis_lost_while_a_call_asks_is_logged_as_no_calls(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """ "Redis unreachable" is about the instance: when the command that finds it out is a call's (its
    record written from its own task), the line does not carry that call's ids (it did: call= ... on a
    node's warning, read as if that call had a Redis problem)."""
    logctx.install_record_factory()
    with running_redis(tmp_path) as redis:
        node = ClusterNode(settings(redis.url, "a"))
        try:
            await node.beat()
            redis.stop(kill=True)
            with caplog.at_level(logging.INFO, logger="gateway.cluster.node"), logctx.bind_call() as call:
                logctx.set_call_id(call, "c-asking")
                with pytest.raises(ClusterUnavailable):
                    await node.run("write a call's record", lambda client: client.set("k", "v"))
        finally:
            await node.close()
    [line] = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert getattr(line, "call", None) is None and "c-asking" not in logctx.call_fields(line), line.__dict__
