"""A real browser at both ends of bench/quality_bench.py's speech: headless Chromium (Playwright,
/usr/bin/chromium) as sender and receiver.

Sender: Chromium's fake microphone plays the reference speech once (``capture_file``: 48 kHz, after
``LEAD`` s of silence, ``--use-file-for-fake-audio-capture=...%noloop``) with the page's audio processing
off (no echo cancellation, noise suppression or gain control, which would change the speech before it is
encoded); Chromium encodes it as it does for any call: Opus with in-band FEC when the answer asks for it
(``useinbandfec=1``) and its RTCP receiver reports show loss, and RFC 2198 RED around Opus when the answer
keeps the ``red`` it offers. What a phone hears of a Chrome user's voice, then, with Chrome's own
choices, not a model of them.

Receiver: the page asks for the (fake) microphone first, so that Chromium gathers plain host candidates
(with --allow-loopback-in-peer-connection: 127.0.0.1) instead of mDNS names a box could not resolve; it
offers Opus (and red over Opus, as Chrome does by default: ``setCodecPreferences`` keeps only those two,
so the box must encode Opus from the phone's PCMU, as the aiortc column), or with ``codecs=G711`` PCMU
only (the phone's G.711 passed through: Chromium's NetEq conceals its losses), or ``ALL`` its own default
offer, every codec it has (the box chooses, as with any browser), waits for gathering to
complete (no trickle) and returns its offer. What it receives is played by an ``<audio>`` element (Chromium
feeds a remote stream to WebAudio only while a media element plays it) and recorded from WebAudio at 8 kHz,
or 16 kHz for a wideband phone (an ``AudioContext`` at that rate: Chromium resamples) by a
ScriptProcessor: the audio a user would hear, after Chromium's own jitter buffer and concealment (NetEq).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy is the bench extra's; tests/e2e/media/test_chromium_red.py drives a page without it
    import numpy as np

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required", "--allow-loopback-in-peer-connection",
]  # fmt: skip

LEAD = 2.0  # seconds of silence before the speech in the fake microphone: the call connects meanwhile
PAGE = "http://localhost/quality-receiver"
OPUS = ("audio/opus", "audio/red")  # Chrome's defaults for voice: the box transcodes a G.711 phone
G711 = ("audio/pcmu",)  # the phone's G.711 passed through to Chromium
ALL = ()  # Chromium's own offer, every codec it has (Opus, RED, G.722, PCMU, PCMA...): the box chooses
OFFER = """async ([rate, codecs]) => {
  const mic = await navigator.mediaDevices.getUserMedia({audio: {
    echoCancellation: false, noiseSuppression: false, autoGainControl: false}});
  const pc = new RTCPeerConnection({iceServers: []});
  window.pc = pc;
  window.chunks = [];
  window.recording = false;
  const transceiver = pc.addTransceiver(mic.getAudioTracks()[0], {direction: 'sendrecv', streams: [mic]});
  if (codecs.length) transceiver.setCodecPreferences(RTCRtpReceiver.getCapabilities('audio').codecs
    .filter((c) => codecs.includes(c.mimeType.toLowerCase())));
  pc.ontrack = (e) => {
    const stream = e.streams[0] || new MediaStream([e.track]);
    window.player = new Audio();
    window.player.srcObject = stream;
    window.player.play();
    const ctx = new AudioContext({sampleRate: rate});
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

# What Chromium's NetEq did with the received audio (inbound-rtp, W3C webrtc-stats): the samples it
# concealed, those it inserted or removed to stretch time, its mean buffer delay (ms)
NETEQ = """async () => {
  const out = {};
  (await pc.getStats()).forEach((s) => {
    if (s.type !== 'inbound-rtp' || s.kind !== 'audio') return;
    out.received = s.totalSamplesReceived; out.concealed = s.concealedSamples;
    out.silent = s.silentConcealedSamples; out.events = s.concealmentEvents;
    out.inserted = s.insertedSamplesForDeceleration; out.removed = s.removedSamplesForAcceleration;
    out.delay_ms = s.jitterBufferEmittedCount ? Math.round(1000 * s.jitterBufferDelay / s.jitterBufferEmittedCount) : null;
    out.packets_lost = s.packetsLost; out.discarded = s.packetsDiscarded; out.codec = s.codecId;
  });
  return out;
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


def capture_file(reference: np.ndarray[Any, Any], rate: int, workdir: Path) -> Path:
    """The fake microphone's WAV: ``LEAD`` s of silence, then ``reference`` (``rate`` Hz), at 48 kHz."""
    import numpy as np

    raw, out = workdir / "capture-8k.raw", workdir / "capture-48k.wav"
    lead = np.zeros(int(LEAD * rate), dtype=np.int16)
    raw.write_bytes(np.concatenate([lead, reference.astype(np.int16)]).tobytes())
    subprocess.run(
        ["sox", "-t", "raw", "-r", str(rate), "-c", "1", "-b", "16", "-e", "signed-integer", str(raw),
         "-r", "48000", "-b", "16", str(out)],
        check=True,
    )  # fmt: skip
    return out


@contextlib.asynccontextmanager
async def chromium(capture: Path | None = None) -> AsyncIterator[Any]:
    """A persistent Chromium context (a fresh profile) whose pages are the peers; its fake microphone
    plays ``capture`` once (``capture_file``), else Chromium's beeps."""
    from playwright.async_api import async_playwright

    flags = [*FLAGS, f"--use-file-for-fake-audio-capture={capture}%noloop"] if capture else FLAGS
    profile = tempfile.mkdtemp(prefix="quality-chromium-")
    try:
        async with async_playwright() as playwright:
            context = await playwright.chromium.launch_persistent_context(
                profile, executable_path="/usr/bin/chromium", args=flags, headless=True
            )
            try:
                yield context
            finally:
                await context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


class ChromiumPeer:
    """One call's page: ``offer()`` (the fake microphone starts), ``accept(answer)``, ``record()``,
    ``stop() -> int16 at rate`` (what it played); ``codecs``: the mime types it offers (``OPUS``, ``G711``)."""

    def __init__(self, context: Any, rate: int = 8000, codecs: tuple[str, ...] = OPUS) -> None:
        self.context = context
        self.rate = rate
        self.codecs = codecs
        self.page: Any = None
        self.stats: dict[str, Any] = {}  # NETEQ's, read at stop()

    async def offer(self) -> str:
        self.page = await self.context.new_page()
        # a secure context (http://localhost) for getUserMedia, served by Playwright: no server of ours
        await self.page.route(
            PAGE, lambda route: route.fulfill(body="<html></html>", content_type="text/html")
        )
        await self.page.goto(PAGE)
        return str(await self.page.evaluate(OFFER, [self.rate, list(self.codecs)]))

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
        import numpy as np

        self.stats = await self.page.evaluate(NETEQ)
        data = base64.b64decode(await self.page.evaluate(STOP))
        return np.frombuffer(data, dtype=np.int16).copy()

    async def close(self) -> None:
        if self.page is not None:
            await self.page.close()
