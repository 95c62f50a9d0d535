"""Headless Chromium through Playwright for the signaling tests (never a browser Playwright downloads).

Pages run in Debian's `chromium-headless-shell` (the same Blink and WebRTC as `chromium`, without the
desktop browser's own UI): a test with it costs about two thirds of the CPU and wall time. A test asks
for the desktop browser with `full=True` where the shell differs: it shows no notifications, and it
ignores --unsafely-treat-insecure-origin-as-secure (no getUserMedia on a plain http:// page).

Importing this module skips the importing test module when playwright is missing, or fails it under
CI=true (tests/conftest.py's rule: CI never passes by skipping work).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from peers.binaries import in_ci, require_binary
from peers.netns import root_network_steady

try:
    from playwright.async_api import Page, Request, async_playwright, expect
except ImportError:  # pragma: no cover - depends on the machine
    if in_ci():
        raise
    pytest.skip("playwright is not installed (pip install -e '.[test]')", allow_module_level=True)

__all__ = [
    "AUDIO_PACKETS", "CHROMIUM_FLAGS", "RECORD_PEER_CONNECTIONS", "Page", "audio_flowing", "chromium_binary", "chromium_page",
    "expect",
    "log_in", "wait_for",
]  # fmt: skip

# Every `expect(...)` without a timeout of its own waits up to 10 s, not Playwright's 5: at 6 workers on 2
# cores (load 7-12 in the first minutes) a page's log-in ("Registered as Bob") once took longer than 5 s.
expect.set_options(timeout=10_000)

# Node's compile cache for Playwright's driver (a node process per page): its JavaScript is compiled
# once per machine instead of at every page, 0.13 of the driver's 0.6 CPU-s start.
os.environ.setdefault(
    "NODE_COMPILE_CACHE", os.path.join(tempfile.gettempdir(), "sip-webrtc-tests-node-cache")
)

# TESTING.md: flags that work as root with fake media on a loopback-only host.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--allow-loopback-in-peer-connection",
    # host candidates with addresses, not mDNS names: what the desktop browser does once the microphone
    # is granted (the headless shell would hide them even then, and bind port 5353)
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]


def chromium_binary(full: bool = False) -> str:
    """The headless shell (the default), or with ``full`` the desktop browser (its notifications)."""
    return require_binary("chromium" if full else "chromium-headless-shell")


def trust_ca(home: Path, ca: Path) -> None:
    """Trust the CA in ``ca`` for web servers in the NSS database of ``home`` (~/.pki/nssdb), where
    Chromium on Linux reads the user's own trust anchors: what a user does with `certutil` to accept the
    gateway's development CA, no --ignore-certificate-errors flag."""
    certutil = require_binary("certutil")
    database = home / ".pki" / "nssdb"
    database.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [certutil, "-N", "-d", f"sql:{database}", "--empty-password"], check=True, capture_output=True
    )
    subprocess.run(
        [certutil, "-A", "-d", f"sql:{database}", "-t", "C,,", "-n", "gateway-dev-ca", "-i", str(ca)],
        check=True,
        capture_output=True,
    )


@asynccontextmanager
async def chromium_page(
    trusted_ca: Path | None = None,
    flags: Sequence[str] = (),
    executable: str | None = None,
    full: bool = False,
) -> AsyncIterator[Page]:
    """A page in a fresh headless Chromium profile (trusting ``trusted_ca`` for HTTPS when given, with
    ``flags`` beside CHROMIUM_FLAGS, started by ``executable``: a wrapper of chromium_binary()'s, e.g. in a
    network namespace, peers/netns.py; the desktop browser with ``full``); uncaught page errors fail the
    test."""
    chromium = executable or chromium_binary(full)
    profile = tempfile.mkdtemp(prefix="signaling-chromium-")
    env: dict[str, str | float | bool] | None = None
    if trusted_ca is not None:
        home = Path(profile) / "home"
        trust_ca(home, trusted_ca)
        env = {**os.environ, "HOME": str(home)}
    try:
        async with async_playwright() as playwright:
            context = await playwright.chromium.launch_persistent_context(
                profile,
                executable_path=chromium,
                args=[*CHROMIUM_FLAGS, *flags],
                headless=True,
                viewport={"width": 1280, "height": 800},
                env=env,
            )
            try:
                page = context.pages[0] if context.pages else await context.new_page()
                _load_on_a_steady_network(page)
                errors: list[str] = []
                console: list[str] = []  # the console's errors and warnings (a module that failed to load)
                page.on("pageerror", lambda error: errors.append(str(error)))
                # requests not finished (a module the page waits for: its buttons stay disabled, no error)
                pending: dict[object, str] = {}

                def finished(request: Request) -> None:
                    pending.pop(request, None)

                page.on("request", lambda r: pending.__setitem__(r, r.url))
                page.on("requestfinished", finished)
                page.on("requestfailed", lambda r: console.append(f"request failed: {r.url} {r.failure}"))
                page.on(
                    "console",
                    lambda m: (
                        console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None
                    ),
                )
                try:
                    yield page
                except BaseException as exc:  # a failing test also tells what the page itself reported
                    if errors or console:
                        exc.add_note(f"the page's uncaught errors: {errors}; its console: {console[-20:]}")
                    if pending:
                        exc.add_note(f"the page's requests not finished: {list(pending.values())[:10]}")
                    raise
                assert errors == [], f"uncaught errors in the page: {errors}"
            finally:
                await context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def _load_on_a_steady_network(page: Page) -> None:
    """The page's goto and reload wait out, and hold off, a change of the root namespace's addresses
    (peers/netns.py: a page loading then would lose its scripts to ERR_NETWORK_CHANGED)."""
    for name in ("goto", "reload"):
        load = getattr(page, name)

        async def steady(*args: Any, _load: Callable[..., Any] = load, **kwargs: Any) -> Any:
            async with root_network_steady():
                return await _load(*args, **kwargs)

        setattr(page, name, steady)


# Records each RTCPeerConnection a page makes (add it with `page.add_init_script` before the page's own
# scripts run); AUDIO_PACKETS then sums the audio packets they received: a page's media, read from outside
# as a person hears it (the page's CSP allows no script of the test's own).
RECORD_PEER_CONNECTIONS = """(() => {
  const Original = window.RTCPeerConnection;
  window.__pcs = [];
  window.RTCPeerConnection = function (...args) { const pc = new Original(...args); window.__pcs.push(pc); return pc; };
  window.RTCPeerConnection.prototype = Original.prototype;
  Object.setPrototypeOf(window.RTCPeerConnection, Original);
})();"""
AUDIO_PACKETS = """async () => {
  let total = 0;
  for (const pc of window.__pcs || []) {
    const stats = await pc.getStats();
    stats.forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "audio") total += s.packetsReceived; });
  }
  return total;
}"""


async def audio_flowing(page: Page, within: float) -> float:
    """Seconds until the page's audio packets flow (3 more within 50 ms polls: not a straggler);
    TimeoutError past ``within``. The page needs RECORD_PEER_CONNECTIONS."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with asyncio.timeout(within):
        before = int(await page.evaluate(AUDIO_PACKETS))
        while True:
            await asyncio.sleep(0.05)
            now = int(await page.evaluate(AUDIO_PACKETS))
            if now > before + 2:
                return loop.time() - start
            before = now


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def log_in(page: Page, user: str, secret: str) -> None:
    await page.get_by_label("User id").fill(user)
    await page.get_by_label("Secret").fill(secret)
    await page.get_by_role("button", name="Log in").click()


async def read_meter(page: Page, element_id: str, minimum: float, timeout: float = 10.0) -> float:
    """Poll a <meter>'s value until it reaches `minimum` (the page's CSP forbids wait_for_function)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    value = 0.0
    while loop.time() < deadline:
        value = float(await page.evaluate(f"document.getElementById('{element_id}').value"))
        if value >= minimum:
            break
        await asyncio.sleep(0.05)
    return value
