"""Two headless Chromium pages on the rooms demo (`GET /webrtc/client`) in one room: the gateway only
relays their signaling, and audio flows between the browsers peer to peer. Each page hears the other's
fake microphone (Chromium beeps at 400 Hz: tests/e2e/page_audio.py) on its remote <audio> element, and
a chat line typed in one arrives in the other over the data channel. Leaving is seen by the other page.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestServer

from tests.e2e.page_audio import FAKE_MIC_HZ
from tests.signaling.browser import Page, chromium_page, expect
from tests.signaling.harness import ALICE_SECRET, BOB_SECRET, demo_config, make_harness

# For `seconds`, every 40 ms: a block of the element's audio; over the loud blocks, the power at 200-2000 Hz
# in 100 Hz steps (Hann-windowed Goertzel) is summed: `best` is the strongest frequency, `ratio` its power
# over the runner-up's.
_BEEPS = """async ([id, seconds]) => {
  const element = document.getElementById(id);
  if (!element || !element.srcObject) return { loud: 0, matching: 0, blocks: 0 };
  const context = new AudioContext();
  await context.resume();
  const source = context.createMediaStreamSource(element.srcObject);
  const analyser = context.createAnalyser();
  analyser.fftSize = 2048;
  source.connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  const power = (f) => {
    const coeff = 2 * Math.cos((2 * Math.PI * f) / context.sampleRate);
    let s1 = 0, s2 = 0;
    for (let i = 0; i < samples.length; i++) {  // Hann-windowed: a beep's edges leak less
      const x = samples[i] * (0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (samples.length - 1)));
      const s0 = x + coeff * s1 - s2; s2 = s1; s1 = s0;
    }
    return s1 * s1 + s2 * s2 - coeff * s1 * s2;
  };
  let blocks = 0, loud = 0;
  const freqs = [];
  for (let f = 200; f <= 2000; f += 100) freqs.push(f);
  const totals = freqs.map(() => 0);
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    await new Promise((resolve) => setTimeout(resolve, 40));
    analyser.getFloatTimeDomainData(samples);
    blocks += 1;
    let energy = 0;
    for (const x of samples) energy += x * x;
    if (Math.sqrt(energy / samples.length) < 0.01) continue;
    loud += 1;
    freqs.forEach((f, i) => { totals[i] += power(f); });
  }
  const order = freqs.map((f, i) => [totals[i], f]).sort((a, b) => b[0] - a[0]);
  source.disconnect();
  await context.close();
  return { loud, blocks, best: order[0][1], ratio: order[0][0] / (order[1][0] || 1) };
}"""


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    # alice opens room1 (its owner); the rule lets bob join it (gateway.yaml rooms.rules)
    harness = make_harness(config=demo_config(GATEWAY_ROOMS__RULES="[{room: room1, join: [bob]}]"))
    server = TestServer(harness.app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("/webrtc/client"))
    await server.close()


async def join_room(page: Page, url: str, peer: str, user: str, secret: str, room: str = "room1") -> None:
    await page.goto(url)
    await page.get_by_label("Room ID").fill(room)
    await page.get_by_label("Peer ID").fill(peer)
    await page.get_by_label("User id").fill(user)
    await page.get_by_label("Secret").fill(secret)
    await page.get_by_role("button", name="Connect").click()
    await expect(page.locator("#status")).to_have_text("In the room")


async def peer_connected(page: Page, peer: str) -> None:
    await expect(page.locator(f'#peers [data-peer="{peer}"]')).to_contain_text("connected", timeout=15_000)


async def _hears_beeps(page: Page, element_id: str) -> None:
    freq = int(FAKE_MIC_HZ)
    result = await page.evaluate(_BEEPS, [element_id, 3.0])
    assert result["blocks"] > 20, result
    assert result["loud"] >= 5, f"{element_id}: no audio from the other browser: {result}"
    assert result["best"] == freq and result["ratio"] > 2, f"{element_id}: not the 400 Hz beep: {result}"


async def test_two_browsers_talk_peer_to_peer(base_url: str) -> None:
    async with chromium_page() as first:
        second = await first.context.new_page()
        await join_room(first, base_url, "peer1", "alice", ALICE_SECRET)
        await join_room(second, base_url, "peer2", "bob", BOB_SECRET)
        await peer_connected(first, "peer2")
        await peer_connected(second, "peer1")
        # The test's gateway has no media plane at all (an in-memory call service): what is heard went
        # from browser to browser.
        await _hears_beeps(first, "remote-peer2")
        await _hears_beeps(second, "remote-peer1")
        channel_open = "() => [...window.roomDemo.peers.values()].every((p) => p.channel && p.channel.readyState === 'open')"
        for page in (first, second):
            await wait_for_js(page, channel_open)
        await first.get_by_placeholder("Message…").fill("hello from peer1")
        await first.get_by_role("button", name="Send").click()
        await expect(second.locator('#chat-log li[data-from="peer1"]')).to_have_text(
            "peer1: hello from peer1"
        )
        await second.get_by_placeholder("Message…").fill("hi peer1")
        await second.get_by_role("button", name="Send").click()
        await expect(first.locator('#chat-log li[data-from="peer2"]')).to_have_text("peer2: hi peer1")
        await second.get_by_role("button", name="Leave").click()
        await expect(first.locator('#chat-log li[data-from="room"]').last).to_have_text("room: peer2 left")
        await expect(first.locator("#peers li")).to_have_count(0)
        await second.close()


async def wait_for_js(page: Page, expression: str, timeout: float = 10.0) -> None:
    """Poll `expression` in the page until it is true (the page's CSP forbids wait_for_function)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await page.evaluate(expression):
        if loop.time() > deadline:
            raise AssertionError(f"not true in time: {expression}")
        await asyncio.sleep(0.05)
