"""A real Prometheus (Debian ``prometheus``) on a loopback port, scraping one target every second, and its
``promtool`` (the same package) to lint an exposition, for tests of what an operator's monitoring sees.

    async with running_prometheus(tmp_path, gateway.ops.metrics_url, token=TOKEN) as prometheus:
        await prometheus.wait_until_up()                        # the target, once a scrape succeeded
        await prometheus.query("gateway_pbx_reachable")         # [{"metric": {...}, "value": [t, "1"]}]
        await prometheus.query_error("rate(x[1m]")              # Prometheus's parse error, or None
    code, output = await check_metrics(text)                    # `promtool check metrics`: 0 when clean

The configuration (JSON, which is YAML) and the TSDB live in the test's directory; the server runs in the
foreground and is ended by its PID (SIGTERM, then SIGKILL) on leaving the block. Queries go through its
HTTP API (/api/v1/query, /api/v1/targets) with aiohttp, so a gateway in the same event loop keeps serving
its scrapes meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from peers.binaries import require_binary
from peers.ports import free_port

__all__ = ["Prometheus", "PrometheusError", "check_metrics", "running_prometheus"]

JOB = "gateway"


class PrometheusError(AssertionError):
    """Prometheus refused a query, or what a test waited for did not come; the message ends with its log."""


@dataclass
class Prometheus:
    host: str
    port: int
    workdir: Path
    process: subprocess.Popen[bytes]
    http: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "prometheus.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def api(self, path: str, **params: str) -> tuple[int, dict[str, Any]]:
        """GET /api/v1/`path`: (HTTP status, the JSON body: status, data or errorType and error)."""
        async with self.http.get(f"{self.url}/api/v1/{path}", params=params) as reply:
            body: dict[str, Any] = await reply.json(content_type=None)
            return reply.status, body

    async def query_error(self, expr: str) -> str | None:
        """None when Prometheus evaluates `expr` (an instant query, now); else its error (bad_data...)."""
        _, body = await self.api("query", query=expr)
        return None if body.get("status") == "success" else f"{body.get('errorType')}: {body.get('error')}"

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector of `expr` now: [{"metric": {labels}, "value": [time, "text"]}, ...]."""
        _, body = await self.api("query", query=expr)
        if body.get("status") != "success":
            raise PrometheusError(f"{expr}: {body.get('errorType')}: {body.get('error')}")
        data = body["data"]
        if data["resultType"] != "vector":
            return [{"metric": {}, "value": data["result"]}]  # a scalar or a string
        result: list[dict[str, Any]] = data["result"]
        return result

    async def values(self, expr: str) -> list[float]:
        return [float(sample["value"][1]) for sample in await self.query(expr)]

    async def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets: scrapeUrl, health ("up", "down", "unknown"), lastError..."""
        _, body = await self.api("targets", state="active")
        targets: list[dict[str, Any]] = body["data"]["activeTargets"]
        return targets

    async def wait_for(
        self, expr: str, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 20.0
    ) -> list[dict[str, Any]]:
        """Query `expr` until `predicate(result)` holds (scrapes are 1 s apart); the result it held for."""
        deadline = time.monotonic() + timeout
        while True:
            result = await self.query(expr)
            if predicate(result):
                return result
            if time.monotonic() > deadline:
                raise PrometheusError(f"{expr} still {result} after {timeout} s\n{self.log()[-2000:]}")
            await asyncio.sleep(0.25)

    async def wait_until_up(self, timeout: float = 20.0) -> dict[str, Any]:
        """The one target, once Prometheus has scraped it successfully."""
        deadline = time.monotonic() + timeout
        while True:
            targets = await self.targets()
            if targets and all(t["health"] == "up" for t in targets):
                return targets[0]
            if time.monotonic() > deadline:
                raise PrometheusError(f"targets not up after {timeout} s: {targets}\n{self.log()[-2000:]}")
            await asyncio.sleep(0.25)


def scrape_config(target_url: str | None, token: str | None, interval: float) -> dict[str, Any]:
    """Prometheus's configuration: scrape `target_url` (its scheme, host:port and path) every `interval`
    seconds, with `Authorization: Bearer <token>` when one is given; no target at all when None."""
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": f"{interval:g}s",
            "scrape_timeout": f"{interval:g}s",
            "evaluation_interval": f"{interval:g}s",
        },
        "scrape_configs": [],
    }
    if target_url is not None:
        parts = urlsplit(target_url)
        job: dict[str, Any] = {
            "job_name": JOB,
            "scheme": parts.scheme,
            "metrics_path": parts.path or "/metrics",
            "static_configs": [{"targets": [parts.netloc]}],
        }
        if token is not None:
            job["authorization"] = {"type": "Bearer", "credentials": token}
        config["scrape_configs"].append(job)
    return config


@contextlib.asynccontextmanager
async def running_prometheus(
    workdir: Path,
    target_url: str | None,
    *,
    token: str | None = None,
    interval: float = 1.0,
    host: str = "127.0.0.1",
    timeout: float = 30.0,
) -> AsyncIterator[Prometheus]:
    """Prometheus on a free port of `host`, scraping `target_url` (None: nothing, to evaluate queries)."""
    binary = require_binary("prometheus")
    directory = workdir / "prometheus"
    (directory / "data").mkdir(parents=True, exist_ok=True)
    config_path = directory / "prometheus.yml"
    config_path.write_text(json.dumps(scrape_config(target_url, token, interval), indent=2))
    port = free_port(socket.SOCK_STREAM, host)
    with (directory / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(
            [binary, f"--config.file={config_path}", f"--storage.tsdb.path={directory / 'data'}",
             f"--web.listen-address={host}:{port}", "--storage.tsdb.retention.time=1h"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
    try:
        async with aiohttp.ClientSession() as http:
            prometheus = Prometheus(host, port, directory, process, http)
            deadline = time.monotonic() + timeout
            while not await _ready(prometheus):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise PrometheusError(f"prometheus did not start:\n{prometheus.log()[-2000:]}")
                await asyncio.sleep(0.1)
            yield prometheus
    finally:
        await _end(process)


async def _ready(prometheus: Prometheus) -> bool:
    try:
        async with prometheus.http.get(f"{prometheus.url}/-/ready") as reply:
            return reply.status == 200
    except (aiohttp.ClientError, OSError):
        return False


async def _end(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to its PID, SIGKILL when it has not exited within 5 s (waiting without blocking the loop)."""
    for stop in (process.terminate, process.kill):
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            stop()
        deadline = time.monotonic() + 5
        while process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    process.wait(5)


async def check_metrics(text: str) -> tuple[int, str]:
    """`promtool check metrics` on an exposition in the text format: (exit code, what it printed)."""
    binary = require_binary("promtool")
    process = await asyncio.create_subprocess_exec(
        binary, "check", "metrics",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        async with asyncio.timeout(60):
            output, _ = await process.communicate(text.encode())
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return process.returncode if process.returncode is not None else -1, output.decode(errors="replace")
