"""Unmodified browser SIP libraries (JsSIP 3, SIP.js 0.21) in headless Chromium, as a test peer.

peers/js-softphones/ holds the pinned npm packages (package-lock.json; `make test` runs `npm ci` and
bundles them with build.mjs into build/) and a page whose driver.js puts one API over both libraries.
:func:`softphone_server` serves that page on its own origin (which the gateway must allow in
http.allowed_origins, as for a softphone site its operator hosts) and :class:`Softphone` drives it. The page's `events` are polled: registered, registrationFailed {status}, progress
{status}, accepted, confirmed, ended, failed {status, cause}, incoming, dtmf {digit}, remote_audio.

    async with softphone_server() as origin, chromium_page() as page:
        phone = Softphone(page, "jssip")
        await phone.open(origin)
        await phone.start(ws_url, "sip:alice@realm", "password")
        await phone.wait_for("registered")
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

from aiohttp import web

from peers.binaries import in_ci

HERE = Path(__file__).resolve().parent / "js-softphones"
Library = Literal["jssip", "sipjs"]

__all__ = ["HERE", "Library", "Softphone", "SoftphoneError", "require_softphones", "softphone_server"]


class SoftphoneError(AssertionError):
    pass


def require_softphones() -> None:
    """Skip (fail under CI=true) when the bundles are not built (`make test` builds them)."""
    missing = [name for name in ("jssip.js", "sipjs.js") if not (HERE / "build" / name).exists()]
    if missing:
        message = f"peers/js-softphones/build/{', '.join(missing)} missing: run `make test-deps`"
        if in_ci():
            raise SoftphoneError(message)
        import pytest

        pytest.skip(message)


@asynccontextmanager
async def softphone_server() -> AsyncIterator[str]:
    """Serve peers/js-softphones on 127.0.0.1 (a free port); yields the origin. The page is on its own
    origin, as an operator's softphone site would be: the gateway must list it in http.allowed_origins.
    (Served from the loopback address space, as the gateway is: Chromium's local network access checks
    block a page fulfilled by Playwright's routing from opening a WebSocket to 127.0.0.1.)"""
    app = web.Application()
    app.router.add_static("/", HERE, show_index=False, follow_symlinks=False)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


class Softphone:
    """One library on one Playwright page (``page``: a playwright.async_api.Page)."""

    def __init__(self, page: Any, library: Library) -> None:
        self.page = page
        self.library = library
        self._taken: set[int] = set()

    async def open(self, origin: str) -> None:
        """Load the page from the server of :func:`softphone_server` at ``origin``."""
        await self.page.goto(origin.rstrip("/") + "/page.html")
        await self.page.wait_for_function("window.softphone !== undefined")

    async def start(
        self, ws_url: str, uri: str, password: str, authorization_user: str | None = None
    ) -> None:
        options = {
            "library": self.library,
            "wsUrl": ws_url,
            "uri": uri,
            "password": password,
            "authorizationUser": authorization_user,
        }
        await self.page.evaluate(f"softphone.start({json.dumps(options)})")

    async def events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = await self.page.evaluate("softphone.events")
        return events

    async def wait_for(
        self, kind: str | tuple[str, ...], timeout: float = 15, **match: Any
    ) -> dict[str, Any]:
        """The first event not yet taken of type ``kind`` (or one of several) whose fields match."""
        kinds = (kind,) if isinstance(kind, str) else kind
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            events = await self.events()
            for index, event in enumerate(events):
                if index in self._taken or event.get("type") not in kinds:
                    continue
                if all(event.get(key) == value for key, value in match.items()):
                    self._taken.add(index)
                    return event
            if loop.time() > deadline:
                raise SoftphoneError(
                    f"{self.library}: no {kind} {match} within {timeout} s; events: {events}"
                )
            await asyncio.sleep(0.1)

    async def call(self, target: str) -> None:
        await self.page.evaluate(f"softphone.call({json.dumps(target)})")

    async def answer(self) -> None:
        await self.page.evaluate("softphone.answer()")

    async def dtmf(self, digit: str, transport: Literal["info", "rfc4733"] = "info") -> None:
        await self.page.evaluate(f"softphone.sendDtmf({json.dumps(digit)}, {json.dumps(transport)})")

    async def hangup(self) -> None:
        await self.page.evaluate("softphone.hangup()")

    async def unregister(self) -> None:
        await self.page.evaluate("softphone.unregister()")

    async def remote_tone(self, freq: float) -> float:
        """The received audio's level at ``freq`` Hz above the spectrum's median, in dB."""
        level: float = await self.page.evaluate(f"softphone.remoteTone({float(freq)})")
        return level

    async def hears(self, freq: float, *, above_db: float = 20.0, timeout: float = 10.0) -> float:
        """Wait until ``freq`` stands ``above_db`` over the median of the spectrum; the best level seen."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        best = -999.0
        while loop.time() < deadline:
            best = max(best, await self.remote_tone(freq))
            if best >= above_db:
                return best
            await asyncio.sleep(0.2)
        raise SoftphoneError(f"{self.library}: {freq} Hz not heard (best {best:.1f} dB over the median)")
