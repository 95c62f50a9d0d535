"""Headless Firefox ESR (Debian's `firefox-esr`) as a test peer, driven over Marionette.

The second browser engine users run: its WebRTC stack (media/webrtc, its own SDP habits: mids "0", "1",
a=ssrc lines, its own extmap ids, a=setup:actpass) in front of the gateway. We start it ourselves,
``firefox-esr -headless -marionette -no-remote -profile <fresh dir>`` in a session of its own, and kill
its process group by PID when done. Fake media and no prompts come from the profile's preferences
(user.js, :data:`PREFS`): Firefox has no command-line flags for them.

Mozilla's ``marionette-driver`` (PyPI) speaks Marionette's protocol over a blocking socket; every call
runs in a worker thread (``asyncio.to_thread``), one at a time, so :class:`FirefoxPage` is an asyncio
API shaped like the part of Playwright's ``Page`` the tests use: ``goto``, ``evaluate``, ``fill`` /
``click`` by CSS selector, ``text``, ``wait_for_text`` / ``wait_for_function`` (polled), ``reload``.
A script runs in the page's own scope (Marionette's ``sandbox=None``, what WebDriver does), so it sees
the page's globals (``window.softphone``); the page's Content-Security-Policy does not apply to it.

Firefox prints the page's uncaught errors ("JavaScript error: <url>, line N: ...") and console errors
("console.error: ...") on its stdout (``devtools.console.stdout.content``); :meth:`FirefoxPage.errors`
reads them back from that log, and :func:`firefox_page` adds them to a failing test's report.

Headless Firefox on a machine without a sound server has no audio output: an ``AudioContext`` stays
``suspended`` (its AnalyserNode reads nothing), but WebRTC, ``<audio>`` elements and ``MediaRecorder``
work. :meth:`FirefoxPage.tone` therefore records a stream with ``MediaRecorder`` for a while, decodes the
recording (``OfflineAudioContext.decodeAudioData``) and measures a tone in it with a Goertzel filter.
The fake microphone sends a pure 1 kHz sine (:data:`FAKE_MIC_HZ`, about -23 dBFS).

    async with firefox_page() as page:
        await page.goto(gateway_url)          # http://localhost:<port>: a secure context
        await page.fill("#login-user", "alice")
        await page.click("#login-button")
        await page.wait_for_text("#status", "Registered as Alice")
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from peers.binaries import require_binary, unavailable
from peers.ports import free_port

__all__ = ["FAKE_MIC_HZ", "PREFS", "Firefox", "FirefoxError", "FirefoxPage", "firefox_page", "local_url"]

T = TypeVar("T")

# Firefox's fake microphone (media.navigator.streams.fake): a continuous sine at 1 kHz.
FAKE_MIC_HZ = 1000.0

# The profile's preferences (user.js). Marionette applies its own recommended set too once it runs
# (remote/shared/RecommendedPreferences.sys.mjs); the ones that matter before it does are here.
PREFS: dict[str, bool | int | str] = {
    # fake media, no permission prompt, autoplay allowed (TESTING.md)
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    "media.autoplay.default": 0,
    "media.autoplay.block-webaudio": False,
    # ICE on a loopback-only host, host candidates with addresses (not mDNS names)
    "media.peerconnection.ice.loopback": True,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    # the page's errors and console on stdout (FirefoxPage.errors); not the browser's own
    "devtools.console.stdout.content": True,
    "devtools.console.stdout.chrome": False,
    # no network chatter on a closed machine: updates, telemetry, captive portal, safebrowsing,
    # normandy/nimbus, remote settings, search and region updates, first-run and what's-new pages
    "app.update.disabledForTesting": True,
    "app.update.auto": False,
    "app.normandy.enabled": False,
    "app.normandy.api_url": "",
    "app.shield.optoutstudies.enabled": False,
    "messaging-system.rsexperimentloader.enabled": False,
    "services.settings.server": "data:,#remote-settings-dummy/v1",
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.unified": False,
    "toolkit.telemetry.archive.enabled": False,
    "toolkit.telemetry.server": "",
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "datareporting.healthreport.uploadEnabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.usage.uploadEnabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.blockedURIs.enabled": False,
    "browser.safebrowsing.update.enabled": False,
    "extensions.update.enabled": False,
    "extensions.systemAddon.update.enabled": False,
    "extensions.getAddons.cache.enabled": False,
    "browser.search.update": False,
    "browser.region.network.url": "",
    "browser.region.update.enabled": False,
    "geo.provider.network.url": "",
    "dom.push.connection.enabled": False,
    "network.dns.disablePrefetch": True,
    "network.prefetch-next": False,
    "network.http.speculative-parallel-limit": 0,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.page": 0,
    "browser.startup.homepage": "about:blank",
    "browser.startup.homepage_override.mstone": "ignore",
    "startup.homepage_welcome_url": "about:blank",
    "startup.homepage_welcome_url.additional": "",
    "browser.aboutwelcome.enabled": False,
    "browser.newtabpage.enabled": False,
    "browser.newtab.preload": False,
    "browser.sessionstore.resume_from_crash": False,
    "browser.backup.enabled": False,
    "browser.ml.enable": False,
    "browser.translations.enable": False,
    # no spare content process waiting (2 cores, several browsers at once)
    "dom.ipc.processPrelaunch.enabled": False,
}

# A script run by evaluate(): an expression, or a function's source called with the argument (as
# Playwright's page.evaluate). A Promise it returns is awaited by Marionette.
_EVALUATE = (
    "const __value = (\n{}\n);\nreturn typeof __value === 'function' ? __value(arguments[0]) : __value;"
)

# Text as Playwright's to_have_text compares it: textContent with its whitespace collapsed.
_TEXT = "(s) => { const e = document.querySelector(s); return e ? e.textContent.replace(/\\s+/g, ' ').trim() : null; }"

# Records a stream (an element's srcObject, or the first local/remote stream found) for `seconds`,
# decodes the recording and measures `freq` in 50 ms blocks (Goertzel over the block's energy: 1.0 for
# a pure tone): the share of blocks that carry it, and the blocks' mean RMS (full scale 1.0).
_TONE = """async ([id, freq, seconds]) => {
  const element = document.getElementById(id);
  const stream = element && element.srcObject;
  if (!stream || stream.getAudioTracks().length === 0) return { heard: 0, rms: 0, blocks: 0, why: 'no stream' };
  const recorder = new MediaRecorder(new MediaStream(stream.getAudioTracks()), { mimeType: 'audio/ogg; codecs=opus' });
  const chunks = [];
  recorder.ondataavailable = (e) => chunks.push(e.data);
  const stopped = new Promise((resolve) => { recorder.onstop = resolve; });
  recorder.start();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  recorder.stop();
  await stopped;
  const data = await new Blob(chunks).arrayBuffer();
  if (data.byteLength === 0) return { heard: 0, rms: 0, blocks: 0, why: 'empty recording' };
  const audio = await new OfflineAudioContext(1, 48000, 48000).decodeAudioData(data);
  const x = audio.getChannelData(0);
  const size = Math.round(audio.sampleRate / 20);
  const coeff = 2 * Math.cos((2 * Math.PI * freq) / audio.sampleRate);
  let blocks = 0, heard = 0, level = 0;
  for (let start = 0; start + size <= x.length; start += size) {
    let s1 = 0, s2 = 0, energy = 0;
    for (let i = start; i < start + size; i++) {
      const s0 = x[i] + coeff * s1 - s2;
      s2 = s1;
      s1 = s0;
      energy += x[i] * x[i];
    }
    const power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    const ratio = energy > 0 ? (2 * power) / (size * energy) : 0;
    const blockRms = Math.sqrt(energy / size);
    blocks += 1;
    level += blockRms;
    if (ratio >= 0.5 && blockRms >= 0.005) heard += 1;
  }
  return { heard: blocks ? heard / blocks : 0, rms: blocks ? level / blocks : 0, blocks };
}"""

# Lines of Firefox's stdout that are the page's: its uncaught errors and its console's errors.
_PAGE_ERROR = re.compile(r"^(JavaScript error: (?:https?|blob):.*|console\.error: .*)$")


class FirefoxError(AssertionError):
    """Firefox did not start, or the page did not do what the test waited for."""


def _marionette() -> tuple[Any, Any]:
    """marionette_driver's ``Marionette`` client and ``By``, imported when first needed. Its package
    imports mozrunner's device support, which warns of telnetlib and distro's deprecations at import.
    Missing, it skips the test (fails it under CI=true), as a missing browser does."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            from marionette_driver.by import By
            from marionette_driver.marionette import Marionette
        except ImportError as exc:
            unavailable(f"marionette-driver is not installed (pip install -e '.[test]'): {exc}")
    return Marionette, By


def local_url(url: str) -> str:
    """``url`` with a 127.0.0.1 host as ``localhost``: Firefox gives ``navigator.mediaDevices`` only to
    secure contexts, and an http:// page is one on ``localhost`` (which it resolves to loopback itself)."""
    return re.sub(r"^(https?://)127\.0\.0\.1(?=[:/]|$)", r"\1localhost", url)


class FirefoxPage:
    """The one tab of a :class:`Firefox`; every method is a coroutine but :meth:`errors`."""

    def __init__(self, browser: Firefox) -> None:
        self._browser = browser

    async def _call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(self._browser.call, function, *args, **kwargs)

    async def goto(self, url: str) -> None:
        """Load ``url`` (127.0.0.1 becomes localhost: see :func:`local_url`) and wait for its load."""
        await self._call(lambda client: client.navigate(local_url(url)))

    async def reload(self) -> None:
        await self._call(lambda client: client.refresh())

    async def url(self) -> str:
        found: str = await self._call(lambda client: client.get_url())
        return found

    async def evaluate(self, script: str, arg: Any = None, *, timeout: float = 30.0) -> Any:
        """The value of ``script`` in the page: an expression, or a function's source (``"(arg) =>
        ..."``, ``"async () => ..."``) called with ``arg``; a Promise is awaited (up to ``timeout``)."""
        body = _EVALUATE.format(script)
        return await self._call(
            lambda client: client.execute_script(
                body, script_args=(arg,), sandbox=None, script_timeout=int(timeout * 1000)
            )
        )

    async def wait_for_function(self, script: str, arg: Any = None, *, timeout: float = 10.0) -> Any:
        """Poll ``script`` (as :meth:`evaluate`) until its value is truthy; that value."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        value: Any = None
        while True:
            value = await self.evaluate(script, arg)
            if value:
                return value
            if loop.time() > deadline:
                raise FirefoxError(f"{script!r} stayed {value!r} for {timeout} s{self._errors_note()}")
            await asyncio.sleep(0.05)

    async def fill(self, selector: str, text: str) -> None:
        """Clear the field at ``selector`` and type ``text`` into it (key events, as a user)."""

        def fill(client: Any) -> None:
            _, by = _marionette()
            field = client.find_element(by.CSS_SELECTOR, selector)
            field.clear()
            if text:
                field.send_keys(text)

        await self._call(fill)

    async def click(self, selector: str) -> None:
        """A click on the element at ``selector`` (scrolled into view; a user gesture for the page)."""

        def click(client: Any) -> None:
            _, by = _marionette()
            client.find_element(by.CSS_SELECTOR, selector).click()

        await self._call(click)

    async def text(self, selector: str) -> str | None:
        """The element's textContent, whitespace collapsed (None: no such element)."""
        found: str | None = await self.evaluate(_TEXT, selector)
        return found

    async def visible(self, selector: str) -> bool:
        """The element exists and is rendered (not hidden, not display:none)."""
        shown: bool = await self.evaluate(
            "(s) => { const e = document.querySelector(s); return !!e && e.checkVisibility(); }", selector
        )
        return shown

    async def wait_for_text(
        self, selector: str, text: str, *, contains: bool = False, timeout: float = 10.0
    ) -> None:
        """Poll until the element's text (:meth:`text`) is ``text`` (or, ``contains``, holds it)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            now = await self.text(selector)
            if now is not None and (text in now if contains else now == text):
                return
            if loop.time() > deadline:
                wanted = f"{'holding ' if contains else ''}{text!r}"
                raise FirefoxError(
                    f"{selector} shows {now!r}, not {wanted}, after {timeout} s{self._errors_note()}"
                )
            await asyncio.sleep(0.05)

    async def wait_for_visible(self, selector: str, visible: bool = True, *, timeout: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while await self.visible(selector) != visible:
            if loop.time() > deadline:
                state = "visible" if visible else "hidden"
                raise FirefoxError(f"{selector} not {state} after {timeout} s{self._errors_note()}")
            await asyncio.sleep(0.05)

    async def tone(
        self, freq: float, seconds: float = 1.5, element_id: str = "remote-audio"
    ) -> tuple[float, float]:
        """(share of 50 ms blocks that carry ``freq``, mean RMS) of the stream that the element
        ``element_id`` plays, recorded for ``seconds`` (see the module's note)."""
        found = await self.evaluate(_TONE, [element_id, freq, seconds], timeout=seconds + 15)
        if not found["blocks"]:
            raise FirefoxError(f"no audio to measure in #{element_id}: {found}")
        return float(found["heard"]), float(found["rms"])

    async def expect_hears(
        self,
        freq: float,
        *,
        share: float = 0.5,
        level: float = 0.005,
        tries: int = 4,
        element_id: str = "remote-audio",
    ) -> None:
        """``freq`` in at least ``share`` of a 1.5 s recording's blocks at a mean RMS above ``level``, in
        one of ``tries`` recordings in a row (the first may start before the media does)."""
        heard, rms = 0.0, 0.0
        for _ in range(tries):
            heard, rms = await self.tone(freq, element_id=element_id)
            if heard >= share and rms > level:
                return
        raise FirefoxError(
            f"the page does not hear {freq} Hz (share {heard:.2f}, rms {rms:.4f}){self._errors_note()}"
        )

    def errors(self) -> list[str]:
        """The page's uncaught errors and console errors so far (from Firefox's stdout)."""
        return self._browser.page_errors()

    def _errors_note(self) -> str:
        errors = self.errors()
        return f"; the page's errors: {errors[-10:]}" if errors else ""


class Firefox:
    """One headless Firefox ESR with a fresh profile, a Marionette session and its one tab (``page``).

    :meth:`start` and :meth:`close` block (start them in a thread from async code); ``close`` kills the
    browser's process group by PID and removes the profile, and may be called more than once."""

    def __init__(
        self, prefs: dict[str, bool | int | str] | None = None, startup_timeout: float = 60.0
    ) -> None:
        self.binary = require_binary("firefox-esr")
        self.port = free_port()
        self.prefs = {**PREFS, "marionette.port": self.port, **(prefs or {})}
        self.startup_timeout = startup_timeout
        self.profile = Path(tempfile.mkdtemp(prefix="firefox-profile-"))
        self.log_path = self.profile / "firefox.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.client: Any = None
        self.page = FirefoxPage(self)
        self._lock = threading.Lock()

    def start(self) -> Firefox:
        marionette, _ = _marionette()
        with open(self.profile / "user.js", "w", encoding="utf-8") as prefs:
            for name, value in self.prefs.items():
                prefs.write(f"user_pref({json.dumps(name)}, {json.dumps(value)});\n")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [self.binary, "-headless", "-marionette", "-no-remote", "-profile", str(self.profile)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "MOZ_CRASHREPORTER_DISABLE": "1", "MOZ_HEADLESS": "1"},
                start_new_session=True,
            )
        try:
            self._wait_for_port()
            self.client = marionette(host="127.0.0.1", port=self.port, socket_timeout=120)
            self.client.start_session(timeout=self.startup_timeout)
        except BaseException as exc:
            exc.add_note(f"firefox's log: {self.log_tail()}")
            self.close()
            raise
        return self

    def _wait_for_port(self) -> None:
        """Until Marionette listens (FirefoxError when Firefox exits first or the time is up)."""
        import socket

        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise FirefoxError(f"firefox-esr exited with {self.process.returncode}")
            with socket.socket() as probe:
                probe.settimeout(0.5)
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise FirefoxError(f"Marionette did not listen on port {self.port} within {self.startup_timeout} s")

    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``function(client, ...)`` with the Marionette client, one call at a time (its socket is one)."""
        with self._lock:
            if self.client is None:
                raise FirefoxError("Firefox is not running")
            return function(self.client, *args, **kwargs)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def page_errors(self) -> list[str]:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if _PAGE_ERROR.match(line)]

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            client.cleanup_ran = True  # its __del__ would delete the session: the process goes below
            with contextlib.suppress(Exception):
                client.client.close()
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Firefox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def _reported(page: FirefoxPage, check_errors: bool) -> Iterator[None]:
    try:
        yield
    except BaseException as exc:
        errors = page.errors()
        if errors:
            exc.add_note(f"the page's uncaught and console errors: {errors[-20:]}")
        raise
    if check_errors:
        uncaught = [line for line in page.errors() if line.startswith("JavaScript error:")]
        assert uncaught == [], f"uncaught errors in the page: {uncaught}"


@contextlib.asynccontextmanager
async def firefox_page(
    prefs: dict[str, bool | int | str] | None = None, *, check_errors: bool = True
) -> AsyncIterator[FirefoxPage]:
    """The page of a fresh headless Firefox ESR (``prefs`` beside :data:`PREFS`), as ``chromium_page()``
    in tests/signaling/browser.py: a failing test also reports the page's errors and console errors, and
    uncaught errors in the page fail the test (``check_errors``)."""
    browser = Firefox(prefs)
    try:
        await asyncio.to_thread(browser.start)
        with _reported(browser.page, check_errors):
            yield browser.page
    finally:
        await asyncio.to_thread(browser.close)
