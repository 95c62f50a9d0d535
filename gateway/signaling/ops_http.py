"""HTTP for operations: `/readyz` (readiness JSON, 503 when not ready), `/metrics` (Prometheus text, with
an optional bearer token), and the call records' webhook POST. The figures come from gateway/ops; this
package is the one that speaks HTTP (aiohttp)."""

from __future__ import annotations

import hmac
from collections.abc import Callable

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest

from gateway.ops.metrics import CONTENT_TYPE

ReadyReport = Callable[[], tuple[bool, dict[str, object]]]


def add_ops_routes(
    app: web.Application,
    *,
    ready: ReadyReport,
    registry: CollectorRegistry | None,
    token: str | None = None,
    healthz: bool = False,
) -> None:
    """/readyz, and /metrics when `registry` is given (401 without `Authorization: Bearer <token>` when
    a token is set); `healthz`: also a bare liveness /healthz (a listener of its own)."""

    async def readyz(request: web.Request) -> web.Response:
        is_ready, body = ready()
        return web.json_response(body, status=200 if is_ready else 503)

    app.router.add_get("/readyz", readyz)
    if healthz:

        async def alive(request: web.Request) -> web.Response:
            return web.json_response({"status": "ok"})

        app.router.add_get("/healthz", alive)
    if registry is None:
        return
    expected = f"Bearer {token}".encode() if token is not None else None

    async def metrics(request: web.Request) -> web.Response:
        if expected is not None:
            given = request.headers.get("Authorization", "").encode("utf-8", "replace")
            if not hmac.compare_digest(given, expected):
                return web.Response(
                    status=401,
                    text="bearer token required\n",
                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                )
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE})

    app.router.add_get("/metrics", metrics)


def ops_app() -> web.Application:
    """The app of a listener of its own for /metrics, /healthz and /readyz (metrics.listen)."""
    return web.Application(client_max_size=1024)


async def post_json(url: str, body: str, timeout: float) -> int:
    """POST `body` (JSON) to `url`; the HTTP status."""
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with (
        aiohttp.ClientSession(timeout=client_timeout) as session,
        session.post(url, data=body, headers={"Content-Type": "application/json"}) as response,
    ):
        return response.status
