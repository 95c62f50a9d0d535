"""The media bridge against a real browser: headless Chromium (Playwright) <-> bridge <-> plain RTP phone.

Chromium's own offer (trickled mDNS ``.local`` candidates, end-of-candidates, BUNDLE, Opus/red/CN...),
its ICE, DTLS and SRTP, and its audio: a 1000 Hz oscillator towards the phone, and the phone's 600 Hz
measured in the page with a WebAudio analyser. Skips without chromium or playwright (fails under CI=true).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import pytest

import sdp
from gateway.media.bridge import MediaBridge
from gateway.media.bridge_settings import BridgeSettings
from gateway.media.events import CodecChosen, MediaConnected, MediaEvent
from gateway.media.rtp import red
from peers.binaries import in_ci
from tests.media.bridge_harness import SIP_TONE, WEB_TONE, RecordingPeer, allocator
from tests.signaling.browser import chromium_binary

try:
    from playwright.async_api import Page, async_playwright
except ImportError:  # pragma: no cover - depends on the machine
    if in_ci():
        raise
    pytest.skip("playwright is not installed (pip install -e '.[test]')", allow_module_level=True)

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--autoplay-policy=no-user-gesture-required",
    "--allow-loopback-in-peer-connection",
]

# The page: an oscillator as the microphone; what arrives is played and analysed (Chromium only feeds
# a remote stream to WebAudio while a media element plays it).
START = """async (freq) => {
  const ctx = new AudioContext();
  const osc = ctx.createOscillator();
  osc.frequency.value = freq;
  const gain = ctx.createGain();
  gain.gain.value = 0.3;
  const dest = ctx.createMediaStreamDestination();
  osc.connect(gain).connect(dest);
  osc.start();
  const pc = new RTCPeerConnection({iceServers: []});
  window.pc = pc;
  window.candidates = [];
  pc.onicecandidate = (e) => window.candidates.push(e.candidate ? e.candidate.toJSON() : null);
  pc.addTrack(dest.stream.getAudioTracks()[0], dest.stream);
  pc.ontrack = (e) => {
    const stream = e.streams[0] || new MediaStream([e.track]);
    window.player = new Audio();
    window.player.srcObject = stream;
    window.player.play();
    window.analyser = ctx.createAnalyser();
    window.analyser.fftSize = 8192;
    ctx.createMediaStreamSource(stream).connect(window.analyser);
  };
  await pc.setLocalDescription(await pc.createOffer());
  return pc.localDescription.sdp;
}"""
PEAK = """() => {
  const bins = new Float32Array(window.analyser.frequencyBinCount);
  window.analyser.getFloatFrequencyData(bins);
  let best = 0;
  for (let i = 1; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
  return [best * window.analyser.context.sampleRate / window.analyser.fftSize, bins[best]];
}"""
STATS = """async () => {
  const out = {};
  (await pc.getStats()).forEach((s) => { if (s.type.endsWith('bound-rtp')) out[s.type] = s; });
  return JSON.stringify(out);
}"""


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    chromium = chromium_binary()
    profile = tempfile.mkdtemp(prefix="media-chromium-")
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            profile, executable_path=chromium, args=FLAGS, headless=True
        )
        try:
            yield context.pages[0] if context.pages else await context.new_page()
        finally:
            await context.close()
            shutil.rmtree(profile, ignore_errors=True)


async def call_chromium(page: Page, web_codecs: tuple[str, ...]) -> tuple[list[MediaEvent], dict[str, Any]]:
    events: list[MediaEvent] = []
    settings = BridgeSettings(
        allocator(), host_addresses=("127.0.0.1",), web_codecs=web_codecs, call_id="chromium"
    )
    bridge = MediaBridge(settings, events.append)
    tocs: list[int] = []  # the first byte of each Opus payload from Chromium (RFC 6716 §3.1: its band)
    reds: list[bool] = []  # whether each came in RED
    deliver = bridge._web._on_rtp

    def on_rtp(ssrc: int, sequence: int, timestamp: int, pt: int, marker: bool, payload: bytes) -> None:
        # RFC 2198: Chromium sends its Opus in RED once the answer lists red before Opus (sdp/opus.py)
        blocks = red.unpack(payload, timestamp) if pt == red_pt else None
        primary = blocks[-1].payload if blocks else payload if pt == opus_pt else b""
        if primary:
            tocs.append(primary[0])
            reds.append(pt == red_pt)
        deliver(ssrc, sequence, timestamp, pt, marker, payload)

    bridge._web._on_rtp = on_rtp
    phone = RecordingPeer()
    try:
        await phone.start()
        chromium_offer = await page.evaluate(START, WEB_TONE)
        offered = sdp.parse(chromium_offer).media[0]
        opus_pt = next(c.payload_type for c in offered.codecs if c.name == "opus")
        red_pt = sdp.red_for_opus(offered)
        offer = sdp.parse(await bridge.offer_to_sip(chromium_offer))
        assert offer.connection is not None
        phone.remote = (offer.connection.address, offer.media[0].port)
        transport = sdp.PlainTransport("127.0.0.1", phone.address[1])
        answer = sdp.answer(offer, codecs=["PCMU"], transport=transport)
        web_answer = await bridge.answer_from_sip(sdp.write(answer))
        await page.evaluate(
            "async (answer) => pc.setRemoteDescription({type: 'answer', sdp: answer})", web_answer
        )
        await asyncio.sleep(0.2)  # trickled candidates: Chromium's are mDNS names, then end-of-candidates
        candidates = json.loads(await page.evaluate("() => JSON.stringify(window.candidates)"))
        assert candidates and candidates[-1] is None
        for candidate in candidates:
            await bridge.add_web_candidate(
                candidate if candidate is not None else {"candidate": "", "sdpMid": "0"}
            )
        for _ in range(100):
            if await page.evaluate("() => pc.connectionState") == "connected":
                break
            await asyncio.sleep(0.05)
        await phone.send_tone(SIP_TONE, 2.0)
        peak, level = await page.evaluate(PEAK)
        stats = json.loads(await page.evaluate(STATS))
        result = {
            "peak": peak,
            "level": level,
            "browser": stats,
            "phone_heard": phone.heard(WEB_TONE),
            "bridge": bridge.stats(),
            "candidates": candidates,
            "web_answer": web_answer,
            "opus_bands": [toc >> 3 for toc in tocs],  # RFC 6716 §3.1 configurations
            "in_red": reds,
        }
        return events, result
    finally:
        await bridge.close()
        phone.close()


async def test_chromium_pcmu_pass_through(page: Page) -> None:
    events, result = await call_chromium(page, ("opus", "PCMU"))
    assert MediaConnected() in events
    assert [e for e in events if isinstance(e, CodecChosen)] == [CodecChosen("PCMU/8000", "PCMU/8000", False)]
    assert all(".local" in c["candidate"] for c in result["candidates"] if c)  # resolved in the background
    assert result["phone_heard"]
    assert abs(result["peak"] - SIP_TONE) < 15 and result["level"] > -60, result
    assert result["browser"]["inbound-rtp"]["packetsReceived"] >= 80
    assert result["browser"]["inbound-rtp"]["packetsLost"] == 0
    assert result["bridge"].web_to_sip.transcoded == 0


async def test_chromium_opus_transcoded_to_pcmu(page: Page) -> None:
    events, result = await call_chromium(page, ("opus",))
    assert [e for e in events if isinstance(e, CodecChosen)] == [CodecChosen("opus/48000", "PCMU/8000", True)]
    assert result["phone_heard"]
    assert abs(result["peak"] - SIP_TONE) < 15 and result["level"] > -60, result
    assert result["browser"]["inbound-rtp"]["packetsReceived"] >= 80
    assert result["bridge"].web_to_sip.transcoded >= 80
    # told maxplaybackrate=8000 (the phone's PCMU is all it becomes), Chromium encodes narrowband only:
    # configurations 0-3 (SILK NB) and 16-19 (CELT NB); its default is wideband and up
    assert "maxplaybackrate=8000" in result["web_answer"]
    bands = result["opus_bands"]
    assert len(bands) >= 80 and all(b in range(4) or b in range(16, 20) for b in bands), sorted(set(bands))
    # and at the 32 kbit/s asked (maxaveragebitrate), in RED: Chromium's red was kept, before Opus
    assert "maxaveragebitrate=32000" in result["web_answer"]
    in_red = result["in_red"]
    assert in_red.count(True) >= 0.9 * len(in_red), in_red.count(False)  # the first has nothing to repeat
