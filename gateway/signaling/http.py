"""The gateway's HTTP server: health endpoint now; browser signaling and the offer/answer API later.

This package is the only one that imports aiohttp (ARCHITECTURE.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aiohttp import web

from gateway import __version__

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HealthSource:
    """What /healthz reports: where the figures come from is the app's business."""

    started_at: float
    clock: Callable[[], float] = time.monotonic
    details: Callable[[], Mapping[str, object]] = dict


HEALTH_KEY = web.AppKey("health", HealthSource)


async def healthz(request: web.Request) -> web.Response:
    source = request.app[HEALTH_KEY]
    body: dict[str, object] = {
        "status": "ok",
        "version": __version__,
        "uptime_s": round(source.clock() - source.started_at, 3),
    }
    body.update(source.details())
    return web.json_response(body)


def build_app(health: HealthSource) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app[HEALTH_KEY] = health
    app.router.add_get("/healthz", healthz)
    return app


class HttpServer:
    """Owns the aiohttp runner and its listening site; `close()` is idempotent."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self._app, shutdown_timeout=2.0)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self._host, self._port)
        await self._site.start()
        logger.info("HTTP listening on %s", ", ".join(self.urls))

    @property
    def urls(self) -> list[str]:
        """Where the server listens (with the real port when the config asked for port 0)."""
        if self._runner is None:
            return []
        urls = []
        for address in self._runner.addresses:
            host, port = address[0], address[1]
            host = f"[{host}]" if ":" in host else host
            urls.append(f"http://{host}:{port}")
        return urls

    async def close(self) -> None:
        runner, self._runner, self._site = self._runner, None, None
        if runner is not None:
            await runner.cleanup()
