"""The one place that wires the gateway's parts together and owns start-up and graceful shutdown.

Start-up order: HTTP (health, later browser signaling), then the SIP user agent (transports,
registrations of the users with PBX credentials).
Shutdown runs the same list backwards; `close()` is idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable

from gateway.config import Config
from gateway.identity import InMemoryPresence, identity_map_from_config
from gateway.signaling.http import HealthSource, HttpServer, build_app
from gateway.sip import UASettings, UserAgent, registrations_for_users

logger = logging.getLogger(__name__)


class Gateway:
    def __init__(self, config: Config, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._started_at = clock()
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._closed = False
        self.http: HttpServer | None = None
        self.sip: UserAgent | None = None

    async def start(self) -> None:
        health = HealthSource(started_at=self._started_at, clock=self._clock, details=self._health_details)
        self.http = HttpServer(build_app(health), self.config.http.host, self.config.http.port)
        await self.http.start()
        self._closers.append(self.http.close)
        identities = identity_map_from_config(self.config, InMemoryPresence())
        registrations = registrations_for_users(await identities.store.all_users(), self.config.pbx)
        self.sip = UserAgent(UASettings.from_config(self.config, registrations))
        self._closers.append(self.sip.close)
        await self.sip.start()
        logger.info("gateway started")

    def _health_details(self) -> dict[str, object]:
        registrations = self.sip.registration_states() if self.sip is not None else {}
        return {"calls": 0, "sip": {"registrations": registrations}}

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        logger.info("gateway shutting down")
        for closer in reversed(self._closers):
            try:
                await closer()
            except Exception:  # one part failing to close must not keep the others open
                logger.exception("error while closing %r", closer)
        self._closers.clear()
        logger.info("gateway stopped")


async def serve(config: Config, stop: asyncio.Event | None = None) -> None:
    """Run the gateway until `stop` is set, or SIGINT/SIGTERM arrives when no event is given."""
    loop = asyncio.get_running_loop()
    if stop is None:
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
    gateway = Gateway(config)
    try:
        await gateway.start()
        await stop.wait()
    finally:
        await gateway.close()
