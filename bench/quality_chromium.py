"""A real browser receiver for bench/quality_bench.py: headless Chromium (Playwright, /usr/bin/chromium).

The page asks for the (fake) microphone first, so that Chromium gathers plain host candidates (with
--allow-loopback-in-peer-connection: 127.0.0.1) instead of mDNS names a box could not resolve; it offers
Opus only (``setCodecPreferences``: the box must encode Opus from the phone's PCMU, as the aiortc column),
waits for gathering to complete (no trickle) and returns its offer. What it receives is played by an
``<audio>`` element (Chromium feeds a remote stream to WebAudio only while a media element plays it) and
recorded from WebAudio at 8 kHz (an ``AudioContext`` at 8000 Hz: Chromium resamples) by a
ScriptProcessor: the audio a user would hear, after Chromium's own jitter buffer and concealment (NetEq).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required", "--allow-loopback-in-peer-connection",
]  # fmt: skip

PAGE = "http://localhost/quality-receiver"
OFFER = """async () => {
  const mic = await navigator.mediaDevices.getUserMedia({audio: true});
  const pc = new RTCPeerConnection({iceServers: []});
  window.pc = pc;
  window.chunks = [];
  window.recording = false;
  const transceiver = pc.addTransceiver(mic.getAudioTracks()[0], {direction: 'sendrecv', streams: [mic]});
  transceiver.setCodecPreferences(RTCRtpReceiver.getCapabilities('audio').codecs
    .filter((c) => c.mimeType.toLowerCase() === 'audio/opus'));
  pc.ontrack = (e) => {
    const stream = e.streams[0] || new MediaStream([e.track]);
    window.player = new Audio();
    window.player.srcObject = stream;
    window.player.play();
    const ctx = new AudioContext({sampleRate: 8000});
    window.ctx = ctx;
    const tap = ctx.createScriptProcessor(1024, 1, 1);
    tap.onaudioprocess = (ev) => {
      if (window.recording) window.chunks.push(new Float32Array(ev.inputBuffer.getChannelData(0)));
    };
    ctx.createMediaStreamSource(stream).connect(tap);
    tap.connect(ctx.destination);
  };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') resolve();
    pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') resolve(); };
  });
  return pc.localDescription.sdp;
}"""

STOP = """() => {
  window.recording = false;
  const total = window.chunks.reduce((n, c) => n + c.length, 0);
  const out = new Int16Array(total);
  let at = 0;
  for (const chunk of window.chunks) {
    for (let i = 0; i < chunk.length; i++) out[at++] = Math.max(-32768, Math.min(32767, chunk[i] * 32768));
  }
  let text = '';
  const bytes = new Uint8Array(out.buffer);
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  window.pc.close();
  return btoa(text);
}"""


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """A persistent Chromium context (a fresh profile) whose pages are the receivers."""
    from playwright.async_api import async_playwright

    profile = tempfile.mkdtemp(prefix="quality-chromium-")
    try:
        async with async_playwright() as playwright:
            context = await playwright.chromium.launch_persistent_context(
                profile, executable_path="/usr/bin/chromium", args=FLAGS, headless=True
            )
            try:
                yield context
            finally:
                await context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


class ChromiumReceiver:
    """One call's page: ``offer()``, ``accept(answer)``, ``record()``, ``stop() -> 8 kHz int16``."""

    def __init__(self, context: Any) -> None:
        self.context = context
        self.page: Any = None

    async def offer(self) -> str:
        self.page = await self.context.new_page()
        # a secure context (http://localhost) for getUserMedia, served by Playwright: no server of ours
        await self.page.route(
            PAGE, lambda route: route.fulfill(body="<html></html>", content_type="text/html")
        )
        await self.page.goto(PAGE)
        return str(await self.page.evaluate(OFFER))

    async def accept(self, answer: str, timeout: float = 20) -> None:
        await self.page.evaluate("async (a) => pc.setRemoteDescription({type: 'answer', sdp: a})", answer)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (state := await self.page.evaluate("() => pc.connectionState")) != "connected":
            if loop.time() > deadline or state == "failed":
                raise TimeoutError(f"Chromium did not connect ({state})")
            await asyncio.sleep(0.05)

    async def record(self) -> None:
        await self.page.evaluate("() => { window.chunks = []; window.recording = true; }")

    async def stop(self) -> np.ndarray[Any, Any]:
        data = base64.b64decode(await self.page.evaluate(STOP))
        return np.frombuffer(data, dtype=np.int16).copy()

    async def close(self) -> None:
        if self.page is not None:
            await self.page.close()
