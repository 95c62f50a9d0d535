"""The in-process cluster the cluster tests share (issue 18): gateway instances on 127.0.0.2-127.0.0.4
sharing a real Redis, optionally behind the shipped Kamailio edge (deploy/kamailio-cluster.cfg) and
HAProxy (deploy/haproxy.cfg), all on loopback.

    async with cluster(tmp_path, 3, fronts=True) as c:
        c.gateways, c.redis, c.edge.aor("1001"), c.front.url, c.holder("alice"), c.urls

The process-per-instance flavour (for kill -9) is tests/e2e/cluster/cluster_procs.py.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.app import Gateway
from gateway.config import Config
from peers.haproxy import HaProxy, running_haproxy
from peers.kamailio_edge import KamailioEdge, running_edge
from peers.ports import free_port
from peers.redis import Redis, running_redis
from tests.e2e.harness import gateway_config, running_gateway

HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
CLUSTER_SECRET = "e2e-cluster-secret-0123456789"
SESSION_SECRET = "e2e-cluster-session-secret-0123456789"
LEASE = 5.0  # instance_config's cluster.lease (heartbeat 0.5 s): the instances share the test's event
# loop, which a loaded CI worker can stall past a 2 s lease (an instance then missing from a listing)


def instance_config(
    index: int,
    redis: Redis,
    pbx: str | None = None,
    trusted: tuple[str, ...] = ("127.0.0.1/32",),
    **sections: Any,
) -> Config:
    """Instance `index` (0-2) on HOSTS[index]: its own SIP and HTTP ports, RTP from 42000 + 600 * index;
    `trusted`: sip.trusted_sources (Kamailio and the desk phone; add the instances for calls between them);
    `sections`: more gateway.yaml sections (harness.gateway_config's overrides)."""
    host = HOSTS[index]
    sip_port = free_port(socket.SOCK_DGRAM, host)
    http_port = free_port(socket.SOCK_STREAM, host)
    sip = {"listen": [{"transport": "udp", "host": host, "port": sip_port}], "trusted_sources": list(trusted)}
    return gateway_config(
        pbx,
        sip={**sip, **sections.pop("sip", {})},
        http={"host": host, "port": http_port, **sections.pop("http", {})},
        media={"rtp_ports": {"start": 42000 + 600 * index}},
        web_auth={"session_secret": SESSION_SECRET, **sections.pop("web_auth", {})},
        cluster={
            "redis": redis.url,
            "instance_id": f"gw{index + 1}",
            "advertise": {"sip": f"{host}:{sip_port}", "http": f"http://{host}:{http_port}"},
            "secret": CLUSTER_SECRET,
            "heartbeat": 0.5,
            "lease": LEASE,
        },
        **sections,
    )


@contextlib.asynccontextmanager
async def running_cluster(configs: list[Config]) -> AsyncIterator[list[Gateway]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(running_gateway(c)) for c in configs]


@contextlib.contextmanager
def fronts(tmp_path: Path, configs: list[Config]) -> Iterator[tuple[KamailioEdge, HaProxy]]:
    sip = [(c.sip.listen[0].host, c.sip.listen[0].port) for c in configs]
    http = [f"{c.http.host}:{c.http.port}" for c in configs]
    with running_edge(tmp_path, sip) as edge, running_haproxy(tmp_path / "haproxy", http) as front:
        yield edge, front


def holder(gateways: list[Gateway], user: str) -> Gateway:
    """The one instance holding `user`'s sessions."""
    found = [g for g in gateways if g.cluster is not None and online(g, user)]
    assert len(found) == 1, f"{user} is online on {len(found)} instances"
    return found[0]


def online(gateway: Gateway, user: str) -> bool:
    """Whether `gateway` holds a session of `user` (its share of the cluster's presence)."""
    assert gateway.cluster is not None
    return bool(gateway.cluster.presence._local._sessions.get(user))


@dataclass
class Cluster:
    redis: Redis
    configs: list[Config]
    gateways: list[Gateway]
    kamailio: KamailioEdge | None = None  # with fronts=True
    haproxy: HaProxy | None = None

    @property
    def edge(self) -> KamailioEdge:
        assert self.kamailio is not None, "cluster(..., fronts=True) for the Kamailio edge"
        return self.kamailio

    @property
    def front(self) -> HaProxy:
        assert self.haproxy is not None, "cluster(..., fronts=True) for HAProxy"
        return self.haproxy

    @property
    def urls(self) -> list[str]:
        return [g.http_url for g in self.gateways]

    def holder(self, user: str) -> Gateway:
        return holder(self.gateways, user)


@contextlib.asynccontextmanager
async def cluster(
    tmp_path: Path, instances: int = 3, *, fronts: bool = False, **config: Any
) -> AsyncIterator[Cluster]:
    """Redis, `instances` gateways (instance_config with `config`), and with `fronts` Kamailio and HAProxy
    in front of them; everything stopped on the way out."""
    with running_redis(tmp_path) as redis:
        configs = [instance_config(i, redis, **config) for i in range(instances)]
        async with running_cluster(configs) as gateways:
            if not fronts:
                yield Cluster(redis, configs, gateways)
                return
            with _fronts(tmp_path, configs) as (edge, front):
                yield Cluster(redis, configs, gateways, edge, front)


_fronts = fronts
