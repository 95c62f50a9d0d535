"""Unmodified browser SIP libraries (JsSIP 3, SIP.js 0.21) in headless Chromium, as a test peer.

peers/js-softphones/ holds the pinned npm packages (package-lock.json; `make test` runs `npm ci` and
bundles them with build.mjs into build/) and a page whose driver.js puts one API over both libraries.
The page's `events` are polled: connected, disconnected, registered, registrationFailed {status, cause},
unregistered, progress {status}, accepted, confirmed, ended {originator}, failed {status, cause},
incoming {from}, dtmf {digit, originator}, hold / unhold {originator}, remote_audio, remote_video; for
transfers refer {target} (the far end's REFER, accepted), referCall {of} (the call placed for it),
referAccepted / referFailed {status} and referNotify {status} (our REFER's answer and NOTIFYs); for
chat message {body, contentType}, messageSent / messageFailed {status}; for an ICE restart
iceRestarted, iceRestartFailed {status}. Each call has a number (0 first,
a call placed for a REFER too), in its events' ``call``; the page acts on the latest unless told.

The page reaches the browser in one of two ways:

- routed (no web server of its own): ``async with Softphone(page, lib, origin=gateway_origin)`` makes
  Playwright fulfil ``<origin>/__softphone/...`` from peers/js-softphones, so the SIP WebSocket upgrade
  is same-origin for the gateway. The page then has no IP address, and Chromium's Local Network Access
  checks treat it as public and block its WebSocket to 127.0.0.1 (net::ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_
  CHECKS) unless the user allows it: the context is granted ``local-network-access`` for that origin, as
  a user clicking "Allow" on Chromium's prompt does.

      async with chromium_page() as page, Softphone(page, "jssip", origin=gateway.http_url) as phone:
          await phone.register(ws_url, "sip:alice@realm", "password")
          await phone.wait_for("registered")

- served: :func:`softphone_server` serves it on an origin of its own (which the gateway must allow in
  http.allowed_origins, as for a softphone site its operator hosts), then ``await phone.open(origin)``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlsplit

from aiohttp import web

from peers.binaries import in_ci

if TYPE_CHECKING:
    from playwright.async_api import Route

HERE = Path(__file__).resolve().parent / "js-softphones"
# Where the routed page lives on the origin it is served for (never reaches that origin's server).
ROUTE_PREFIX = "/__softphone/"
Library = Literal["jssip", "sipjs"]

__all__ = [
    "HERE",
    "ROUTE_PREFIX",
    "Library",
    "Softphone",
    "SoftphoneError",
    "axe_script",
    "require_softphones",
    "softphone_server",
]


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


def _node_module(package: str, file: str) -> str:
    """A file of a package pinned in peers/js-softphones/package-lock.json; skips (fails under CI=true)
    when `npm ci` has not installed it."""
    path = HERE / "node_modules" / package / file
    if not path.exists():
        message = f"peers/js-softphones/node_modules/{package} missing: run `make test-deps`"
        if in_ci():
            raise SoftphoneError(message)
        import pytest

        pytest.skip(message)
    return path.read_text(encoding="utf-8")


def whip_script() -> str:
    """Medooze's WHIP client (npm whip-whep: an ES module exporting WHIPClient, unmodified) as a module
    script that also sets ``window.WHIPClient``."""
    return _node_module("whip-whep", "whip.js") + "\nwindow.WHIPClient = WHIPClient;\n"


def axe_script() -> str:
    """axe-core (the accessibility checker) to inject into a page."""
    return _node_module("axe-core", "axe.min.js")


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


def routed_file(url: str) -> Path | None:
    """The file under :data:`HERE` that a routed ``url`` names, or None (outside the prefix, ``..``)."""
    path = unquote(urlsplit(url).path)
    if not path.startswith(ROUTE_PREFIX):
        return None
    target = (HERE / path.removeprefix(ROUTE_PREFIX)).resolve()
    if not target.is_relative_to(HERE) or not target.is_file():
        return None
    return target


class Softphone:
    """One library on one Playwright page (``page``: a playwright.async_api.Page).

    With ``origin``, ``async with`` serves the page there by routing (see the module's note) and opens
    it; leaving removes the route. Without, call :meth:`open` with a :func:`softphone_server` origin."""

    def __init__(self, page: Any, library: Library, *, origin: str | None = None) -> None:
        self.page = page
        self.library = library
        self.origin = origin.rstrip("/") if origin is not None else None
        self._taken: set[int] = set()
        self._routed: str | None = None

    async def __aenter__(self) -> Softphone:
        if self.origin is not None:
            await self.serve(self.origin)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    async def serve(self, origin: str) -> None:
        """Route ``<origin>/__softphone/**`` to peers/js-softphones, let the page reach loopback, open it."""
        origin = origin.rstrip("/")
        pattern = origin + ROUTE_PREFIX + "**"
        await self.page.route(pattern, self._fulfil)
        self._routed = pattern
        # a grant replaces the origin's grants (Chromium 156): keep the microphone with it
        await self.page.context.grant_permissions(["local-network-access", "microphone"], origin=origin)
        await self.page.goto(origin + ROUTE_PREFIX + "page.html")
        await self.page.wait_for_function("window.softphone !== undefined")

    async def close(self) -> None:
        """Remove the route (idempotent); the page and its library stay until the page closes."""
        pattern, self._routed = self._routed, None
        if pattern is not None and not self.page.is_closed():
            await self.page.unroute(pattern, self._fulfil)

    async def _fulfil(self, route: Route) -> None:
        path = routed_file(route.request.url)
        if path is None:
            await route.fulfill(status=404, body="not a softphone file")
        else:
            await route.fulfill(path=path)

    async def open(self, origin: str) -> None:
        """Load the page from the server of :func:`softphone_server` at ``origin``."""
        await self.page.goto(origin.rstrip("/") + "/page.html")
        await self.page.wait_for_function("window.softphone !== undefined")

    async def register(
        self, ws_url: str, uri: str, password: str, authorization_user: str | None = None
    ) -> None:
        """Start the library's user agent on ``ws_url`` and register ``uri`` (see :meth:`wait_for`)."""
        await self.start(ws_url, uri, password, authorization_user)

    async def registered(self, http_url: str, uri: str, password: str) -> None:
        """Start on the gateway's SIP WebSocket (``<http_url>/sip``) and wait until ``uri`` is registered."""
        await self.start(http_url.replace("http", "ws", 1) + "/sip", uri, password)
        await self.wait_for("registered")

    async def start(
        self,
        ws_url: str,
        uri: str,
        password: str,
        authorization_user: str | None = None,
        *,
        quick_recovery: bool = False,
    ) -> None:
        """Register; ``quick_recovery`` (JsSIP): an application tuned for network changes (driver.js
        `quickRecovery`: a socket given up reconnects at once, offers go 300 ms after the last candidate)."""
        options = {
            "library": self.library,
            "wsUrl": ws_url,
            "uri": uri,
            "password": password,
            "authorizationUser": authorization_user,
            "quickRecovery": quick_recovery,
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

    async def call(self, target: str, *, video: bool = False, extra_headers: tuple[str, ...] = ()) -> None:
        """Place a call; ``video``: with the (fake) camera too, the far end's picture shown in the
        page's <video>; ``extra_headers``: more header lines of the INVITE ("Recv-Info: call-quality")."""
        options = json.dumps({"video": video, "extraHeaders": list(extra_headers)})
        await self.page.evaluate(f"softphone.call({json.dumps(target)}, {options})")

    async def answer(self, *, video: bool = False) -> None:
        await self.page.evaluate(f"softphone.answer({json.dumps({'video': video})})")

    async def remote_video(self) -> dict[str, Any]:
        """The received video: ``framesDecoded``, ``frameWidth``, ``frameHeight``, ``codec`` (the
        inbound-rtp stats) and ``picture`` (what the page's <video> shows: ``width``, ``height``, ``mean``
        [R, G, B]; None before any picture)."""
        found: dict[str, Any] = await self.page.evaluate("softphone.remoteVideo()")
        return found

    async def sees(self, *, frames: int = 30, timeout: float = 15.0) -> dict[str, Any]:
        """Wait until ``frames`` pictures were decoded and the <video> shows one; the last reading."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        seen: dict[str, Any] = {}
        while loop.time() < deadline:
            seen = await self.remote_video()
            if seen["framesDecoded"] >= frames and seen["picture"] is not None:
                return seen
            await asyncio.sleep(0.2)
        raise SoftphoneError(f"{self.library}: no remote video (last: {seen})")

    async def m_lines(self) -> dict[str, list[dict[str, Any]]]:
        """The kinds and ports of the session's local and remote descriptions' m-lines."""
        lines: dict[str, list[dict[str, Any]]] = await self.page.evaluate("softphone.mLines()")
        return lines

    async def dtmf(self, digit: str, transport: Literal["info", "rfc4733"] = "info") -> None:
        await self.page.evaluate(f"softphone.sendDtmf({json.dumps(digit)}, {json.dumps(transport)})")

    async def hangup(self, call: int | None = None) -> None:
        await self.page.evaluate(f"softphone.hangup({json.dumps({'call': call})})")

    async def select(self, call: int) -> None:
        """Make call number ``call`` the current one (what hold, dtmf, transfer... act on)."""
        await self.page.evaluate(f"softphone.select({int(call)})")

    async def transfer(self, target: str, *, call: int | None = None, replaces: int | None = None) -> None:
        """The library's REFER of the call (the current one or ``call``) to ``target``: JsSIP's
        ``session.refer(target)``, SIP.js's ``session.refer(uri)``; with ``replaces`` (another call's
        number) attended, its Refer-To naming that call's dialog (JsSIP's ``replaces`` option, SIP.js's
        ``refer(otherSession)``). Then wait_for("referAccepted"), ("referNotify")."""
        options = json.dumps({"call": call, "replaces": replaces})
        await self.page.evaluate(f"softphone.transfer({json.dumps(target)}, {options})")

    async def message(self, text: str, *, call: int | None = None) -> None:
        """Chat: a text/plain MESSAGE in the call's dialog (JsSIP's ``sendRequest(MESSAGE)``, SIP.js's
        ``session.message()``); then wait_for("messageSent")."""
        await self.page.evaluate(f"softphone.message({json.dumps(text)}, {json.dumps({'call': call})})")

    async def unregister(self) -> None:
        await self.page.evaluate("softphone.unregister()")

    async def hold(self) -> None:
        """A re-INVITE offering sendonly (both libraries); then wait_for("hold")."""
        await self.page.evaluate("softphone.hold()")

    async def unhold(self) -> None:
        await self.page.evaluate("softphone.unhold()")

    async def drop_socket(self, gone: bool = False) -> None:
        """The library's WebSocket closed under it mid-call; the library reconnects and REGISTERs again
        (JsSIP by itself, SIP.js as an application's onDisconnect makes it): then wait_for("registered").
        ``gone`` (JsSIP): its network went, and the application gives the socket up at once."""
        await self.page.evaluate(f"softphone.dropSocket({json.dumps(gone)})")

    async def restart_ice(self) -> None:
        """ICE restarted by the library's own re-INVITE with new ICE credentials (JsSIP's
        ``renegotiate({rtcOfferConstraints: {iceRestart: true}})``, SIP.js's ``invite()`` with
        ``offerOptions: {iceRestart: true}``); then wait_for("iceRestarted") or ("iceRestartFailed")."""
        await self.page.evaluate("softphone.restartIce()")

    async def ice(self) -> dict[str, Any]:
        """The call's ICE: ``local`` and ``remote`` ufrags (the remote one is the gateway's), ``state``
        (the connection state), ``pair`` (the selected pair's local candidate, "address:port"),
        ``remoteAudio`` and ``remoteSdp`` (the gateway's last description: its m=audio line, all of it)."""
        found: dict[str, Any] = await self.page.evaluate("softphone.ice()")
        return found

    async def add_video(self) -> None:
        """The camera added mid-call by the library's own re-INVITE (JsSIP renegotiate(), SIP.js
        invite() with video constraints); then wait_for("renegotiated") or ("renegotiationFailed")."""
        await self.page.evaluate("softphone.addVideo()")

    async def drop_video(self) -> None:
        """The video transceiver stopped (port 0) and renegotiated by the library's re-INVITE."""
        await self.page.evaluate("softphone.dropVideo()")

    async def camera_ready(self) -> None:
        """The camera on the call's RTCPeerConnection without renegotiating: a video the far end adds by
        re-INVITE is answered with it."""
        await self.page.evaluate("softphone.cameraReady()")

    async def sending_video(self) -> bool:
        """A live camera track goes out on a video transceiver that sends."""
        sending: bool = await self.page.evaluate("softphone.sendingVideo()")
        return sending

    async def remote_level(self) -> float:
        """RMS of the received audio (0..1 of full scale), 0 before any arrives."""
        level: float = await self.page.evaluate("softphone.remoteLevel()")
        return level

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
