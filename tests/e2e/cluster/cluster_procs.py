"""Gateway instances as separate processes (`python -m gateway run -c FILE --ready-file PATH`), for the
cluster tests and bench/cluster_bench.py, so that `kill -9` of one is real (issue 18 behaviour 2).

    with running_redis(tmp_path) as redis:
        async with process_cluster(tmp_path, redis.url, rtp_base=42200) as instances:
            instances[0].kill()             # SIGKILL: no BYE, no unregister, leases left to lapse
            instances[1].drain()            # SIGUSR1: no new calls, /readyz 503, exits once calls end
            await instances[1].restart()    # the same config (ports, instance id) again
            await instances[2].status()     # GET /cluster/status (the cluster secret)

Instance `i` listens on 127.0.0.(2+i) with SIP on UDP and HTTP on free ports, RTP from `rtp_base +
600 * i` (200 ports; without `rtp_base`, 200 free ports of its own); its log is `tmp_path/gw{i+1}.log`.
Every process is killed on teardown.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import yaml

from peers.demo import ALICE_HASH
from peers.ports import free_port, free_range
from peers.scratch import scratch_dir
from tests.conftest import REPO
from tests.e2e.cluster.cluster_harness import CLUSTER_SECRET, HOSTS, SESSION_SECRET
from tests.e2e.harness import BOB_HASH, wait_until


def instance_mapping(
    index: int,
    redis_url: str,
    *,
    rtp_base: int | None = None,
    pbx: str | None = None,
    heartbeat: float = 0.5,
    lease: float = 2.0,
    extra: dict[str, Any] | None = None,
    alice: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """gateway.yaml (as a mapping) of instance `index`: alice (1001) and bob (1002) as in the in-process
    tests, the shared session secret, Kamailio (127.0.0.1) trusted. RTP from `rtp_base + 600 * index` (200
    ports), or without `rtp_base` from 200 ports free now in this worker's band (peers/ports.free_range);
    `extra`: more sections (merged into a mapping section, a list such as `routes` as it is); `alice`: more
    keys of alice's user entry (her API keys, her SIP password)."""
    host = HOSTS[index]
    sip_port = free_port(socket.SOCK_DGRAM, host)
    http_port = free_port(socket.SOCK_STREAM, host)
    start = free_range(200) if rtp_base is None else rtp_base + 600 * index
    mapping: dict[str, Any] = {
        "sip": {
            "listen": [{"transport": "udp", "host": host, "port": sip_port}],
            "trusted_sources": ["127.0.0.1/32"],
        },
        "media": {"rtp_ports": {"start": start, "end": start + 199}},
        "pbx": {"address": pbx, "domain": "127.0.0.1"} if pbx else {"domain": "127.0.0.1"},
        "http": {"host": host, "port": http_port},
        "users": [
            {
                "id": "alice",
                "display_name": "Alice",
                "sip": "1001",
                "allow_outbound": ["."],
                "web_secret_hash": ALICE_HASH,
            },
            {
                "id": "bob",
                "display_name": "Bob",
                "sip": "1002",
                "allow_outbound": ["."],
                "web_secret_hash": BOB_HASH,
            },
        ],
        "web_auth": {"session_secret": SESSION_SECRET},
        "state_dir": str(scratch_dir("gateway-state-")),
        "cluster": {
            "redis": redis_url,
            "instance_id": f"gw{index + 1}",
            "advertise": {"sip": f"{host}:{sip_port}", "http": f"http://{host}:{http_port}"},
            "secret": CLUSTER_SECRET,
            "heartbeat": heartbeat,
            "lease": lease,
        },
    }
    for section, values in (extra or {}).items():  # a mapping merged into the section; a list (routes) as is
        mapping[section] = {**mapping.get(section, {}), **values} if isinstance(values, dict) else values
    mapping["users"][0].update(alice or {})
    return mapping


async def handovers_written(
    redis_url: str, instance: str, count: int, timeout: float = 5.0
) -> list[dict[str, Any]]:
    """Once ``instance`` has ``count`` handovers in Redis (within ``timeout`` s): each, read as JSON without
    its seal (the survivor's to check)."""
    client = redis.Redis.from_url(redis_url)
    try:
        key = f"gw:handover:{instance}"
        await wait_until(lambda: client.hlen(key) == count, timeout=timeout)
        values = [v if isinstance(v, str) else v.decode() for v in client.hvals(key)]
    finally:
        client.close()
    return [json.loads(value.rpartition(";")[0]) for value in values]


@dataclass
class GatewayProcess:
    """One gateway instance run by the CLI, in its own process group."""

    index: int
    mapping: dict[str, Any]
    workdir: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def id(self) -> str:
        return str(self.mapping["cluster"]["instance_id"])

    @property
    def host(self) -> str:
        return str(self.mapping["http"]["host"])

    @property
    def sip(self) -> tuple[str, int]:
        listen = self.mapping["sip"]["listen"][0]
        return str(listen["host"]), int(listen["port"])

    @property
    def http_address(self) -> str:
        return f"{self.host}:{self.mapping['http']['port']}"

    @property
    def http_url(self) -> str:
        return f"http://{self.http_address}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.id}.log"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    async def start(self, timeout: float = 30.0) -> None:
        config = self.workdir / f"{self.id}.yaml"
        config.write_text(yaml.safe_dump(self.mapping))
        ready = self.workdir / f"{self.id}.ready"
        ready.unlink(missing_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway", "run", "-c", str(config), "--ready-file", str(ready)],
                cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gateway {self.id} did not start:\n{self.log()[-3000:]}")
            await asyncio.sleep(0.05)

    def kill(self) -> None:
        """kill -9: the process dies at once, leaving its leases in Redis to lapse."""
        self.signal(signal.SIGKILL)

    def drain(self) -> None:
        """SIGUSR1: drain (docs/deploy.md), then the process exits by itself."""
        self.signal(signal.SIGUSR1)

    def signal(self, sig: int) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, sig)

    async def wait(self, timeout: float) -> int:
        assert self.process is not None
        return await asyncio.to_thread(self.process.wait, timeout)

    async def restart(self) -> None:
        if self.alive():
            raise RuntimeError(f"gateway {self.id} is still running")
        await self.start()

    async def status(self) -> dict[str, Any]:
        return await asyncio.to_thread(self._get_json, "/cluster/status")

    def ready(self) -> bool:
        """GET /readyz answers 200."""
        try:
            with urllib.request.urlopen(self.http_url + "/readyz", timeout=2):
                return True
        except (urllib.error.URLError, OSError):
            return False

    def _get_json(self, path: str) -> dict[str, Any]:
        request = urllib.request.Request(
            self.http_url + path, headers={"Authorization": f"Bearer {CLUSTER_SECRET}"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            body: dict[str, Any] = json.load(response)
            return body

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


@contextlib.asynccontextmanager
async def process_cluster(
    workdir: Path, mappings: Sequence[dict[str, Any]]
) -> AsyncIterator[list[GatewayProcess]]:
    """Start one process per mapping (concurrently); all are killed on the way out."""
    instances = [GatewayProcess(i, m, workdir) for i, m in enumerate(mappings)]
    try:
        await asyncio.gather(*(g.start() for g in instances))
        yield instances
    finally:
        for instance in instances:
            instance.stop()
