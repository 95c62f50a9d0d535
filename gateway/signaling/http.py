"""The gateway's HTTP server (HTTP or HTTPS, and a redirect from plain HTTP): /healthz here, the browser
routes in routes.py.

This package is the only one that imports aiohttp (ARCHITECTURE.md).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Middleware

from gateway import __version__
from gateway.fd_reserve import FdReserve
from gateway.listen import ListenError
from gateway.logs import RateLimit, escape_controls
from gateway.signaling.gate import ConnectionGate, HttpLimits, body_deadline
from gateway.signaling.proxies import Network, forwarded_client_middleware

logger = logging.getLogger(__name__)

# The web application, named for the modules outside this package that are handed one to add routes to
# (gateway/ops, gateway/cluster): they import this name, not aiohttp (tests/test_contracts.py).
WebApp: TypeAlias = web.Application


@dataclass(frozen=True, slots=True)
class HealthSource:
    """What /healthz reports: where the figures come from is the app's business."""

    started_at: float
    clock: Callable[[], float] = time.monotonic
    details: Callable[[], Mapping[str, object]] = dict
    show_version: bool = False  # http.expose_version: off by default, a version helps an attacker pick


HEALTH_KEY = web.AppKey("health", HealthSource)


async def healthz(request: web.Request) -> web.Response:
    source = request.app[HEALTH_KEY]
    body: dict[str, object] = {"status": "ok", "uptime_s": round(source.clock() - source.started_at, 3)}
    if source.show_version:
        body["version"] = __version__
    body.update(source.details())
    return web.json_response(body)


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    """`Server: sip-webrtc-gateway`, not aiohttp's `Python/3.x aiohttp/3.x` (versions help an attacker)."""
    server = "sip-webrtc-gateway"
    if request.app[HEALTH_KEY].show_version:
        server += f"/{__version__}"
    response.headers["Server"] = server


def _first_middlewares(trusted_proxies: Sequence[Network]) -> list[Middleware]:
    return [forwarded_client_middleware(trusted_proxies)] if trusted_proxies else []


def build_app(health: HealthSource, trusted_proxies: Sequence[Network] = ()) -> web.Application:
    """The HTTP listener's app; behind `trusted_proxies` requests carry their client's address."""
    app = web.Application(client_max_size=64 * 1024, middlewares=_first_middlewares(trusted_proxies))
    app[HEALTH_KEY] = health
    app.router.add_get("/healthz", healthz)
    app.on_response_prepare.append(_server_header)
    return app


def build_websocket_app(
    health: HealthSource,
    path: str,
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    trusted_proxies: Sequence[Network] = (),
) -> web.Application:
    """A listener's app that serves one WebSocket ``path`` and nothing else (sip.websocket.listen)."""
    app = web.Application(client_max_size=64 * 1024, middlewares=_first_middlewares(trusted_proxies))
    app[HEALTH_KEY] = health  # the Server header's version setting
    app.router.add_get(path, handler)
    app.on_response_prepare.append(_server_header)
    return app


class QuietServerLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server logger, minus the ERROR traceback it writes for every malformed request or
    connection a client breaks off (issue 10: unauthenticated log flooding): those become one warning
    line, rate-limited. A real exception in a handler keeps its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.getLogger("aiohttp.server"), {})
        self._limit = RateLimit()

    def exception(self, msg: object, *args: object, exc_info: object = True, **kwargs: object) -> None:
        if isinstance(exc_info, HttpProcessingError | ConnectionError):
            if self._limit.allow(self.logger, logging.WARNING):
                detail = (
                    str(exc_info).strip().splitlines()[0][:160]
                    if str(exc_info).strip()
                    else type(exc_info).__name__
                )
                self.logger.warning("%s: %s", str(msg) % args, escape_controls(detail))
            return
        self.logger.error(msg, *args, exc_info=exc_info, **kwargs)  # type: ignore[arg-type]


class _GatedSite(web.BaseSite):
    """aiohttp's TCPSite, with a :class:`ConnectionGate` between the socket and the request handler
    (caps at accept, TLS under a deadline, the first header's deadline: gateway/signaling/gate.py)."""

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        gate: ConnectionGate,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._where = (host, port)
        self.gate = gate

    @property
    def name(self) -> str:
        return f"{'https' if self._ssl_context else 'http'}://{self._where[0]}:{self._where[1]}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        if server is None:
            raise RuntimeError("the runner is not set up")
        reserve = self.gate.fd_reserve
        self._server = await asyncio.get_running_loop().create_server(
            self.gate.factory(server, self._ssl_context),
            *self._where,
            backlog=reserve.accept_burst if reserve is not None else self._backlog,
        )

    async def stop(self) -> None:
        self.gate.close_all()
        await super().stop()


class HttpServer:
    """Owns the aiohttp runner and its listening site (HTTPS when given an ``ssl_context``, and then a
    plain HTTP ``redirect_port`` answering 308 to the https URL, when set); `close()` is idempotent.
    ``limits`` bound what a peer may hold before a request is in (gateway/signaling/gate.py), each
    connection taking a descriptor of ``fd_reserve``."""

    def __init__(
        self,
        app: web.Application,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        redirect_port: int | None = None,
        limits: HttpLimits | None = None,
        fd_reserve: FdReserve | None = None,
    ) -> None:
        self._app = app
        self.limits = limits or HttpLimits()
        self._fd_reserve = fd_reserve
        self.gates: list[ConnectionGate] = []  # one per listening socket (tests, metrics)
        self._host = host
        self._port = port
        self._ssl = ssl_context
        self._redirect_port = redirect_port
        self._runner: web.AppRunner | None = None
        self._redirect: web.AppRunner | None = None

    async def start(self, name: str = "HTTP") -> None:
        """Listen; a port that cannot open raises `ListenError` naming `name` ("HTTP", "HTTPS"...), the
        address and the reason (the runner is cleaned up first)."""
        keepalive = self.limits.keepalive_timeout  # aiohttp's: idle between requests, and their headers
        self._app.middlewares.append(body_deadline(self.limits.body_timeout))
        self._runner = web.AppRunner(
            self._app, shutdown_timeout=0.5, logger=QuietServerLog(), keepalive_timeout=keepalive
        )
        await self._runner.setup()
        what = f"{name}S" if self._ssl is not None and name == "HTTP" else name
        await self._site(self._runner, self._port, what, self._ssl)
        if self._ssl is not None and self._redirect_port is not None:
            self._redirect = web.AppRunner(
                _redirect_app(self.port), shutdown_timeout=0.5, keepalive_timeout=keepalive
            )
            await self._redirect.setup()
            await self._site(self._redirect, self._redirect_port, "HTTP redirect", None)
        logger.info("HTTP listening on %s", ", ".join(self.urls + self.redirect_urls))

    async def _site(
        self, runner: web.AppRunner, port: int, what: str, ssl_context: ssl.SSLContext | None
    ) -> None:
        gate = ConnectionGate(what, self.limits, self._fd_reserve)
        self.gates.append(gate)
        try:
            await _GatedSite(runner, self._host, port, gate, ssl_context).start()
        except OSError as exc:
            await self.close()
            raise ListenError(what, self._host, port, exc) from exc

    @property
    def port(self) -> int:
        """The real port (when the config asked for 0)."""
        addresses = self._runner.addresses if self._runner is not None else []
        return int(addresses[0][1]) if addresses else self._port

    @property
    def app(self) -> web.Application:
        """The application served (its routes: what /openapi.json must describe)."""
        return self._app

    @property
    def urls(self) -> list[str]:
        """Where the server listens (with the real port when the config asked for port 0)."""
        return _urls(self._runner, "https" if self._ssl is not None else "http")

    @property
    def redirect_urls(self) -> list[str]:
        return _urls(self._redirect, "http")

    async def close(self) -> None:
        for runner in (self._redirect, self._runner):
            if runner is not None:
                await runner.cleanup()
        self._runner = self._redirect = None


def _urls(runner: web.AppRunner | None, scheme: str) -> list[str]:
    if runner is None:
        return []
    urls = []
    for address in runner.addresses:
        host, port = address[0], address[1]
        host = f"[{host}]" if ":" in host else host
        urls.append(f"{scheme}://{host}:{port}")
    return urls


def _redirect_app(https_port: int) -> web.Application:
    """Every plain HTTP request: 308 to the same path on https (the method and body are kept)."""

    async def redirect(request: web.Request) -> web.Response:
        host = request.url.host or "localhost"
        host = f"[{host}]" if ":" in host else host
        port = "" if https_port == 443 else f":{https_port}"
        location = f"https://{host}{port}{request.rel_url}"
        return web.Response(status=308, headers={"Location": location, "Cache-Control": "no-cache"})

    app = web.Application(client_max_size=1024)
    app.router.add_route("*", "/{tail:.*}", redirect)
    return app
