"""The reconnecting fill (gateway/media/codecs/comfort_fill.py) and the watchdog's early quiet report."""

from __future__ import annotations

import array
import asyncio
import itertools
import time

import pytest

from gateway.media.codecs.comfort_fill import BEEP_HZ, CYCLE_FRAMES, ComfortFill, fill_pcm, g711_fill
from gateway.media.watchdog import Watchdog
from peers.audio import rms, tone_ratio, ulaw_decode

RATE = 8000


def test_the_cycle_is_noise_with_a_double_beep() -> None:
    frames = fill_pcm()
    assert len(frames) == CYCLE_FRAMES
    levels = [rms(array.array("h", frame)) for frame in frames]
    beeps = [index for index, level in enumerate(levels) if level > 1000]
    assert beeps == [*range(0, 8), *range(13, 21)]  # 160 ms, 100 ms gap, 160 ms; then noise
    quiet = [level for index, level in enumerate(levels) if index not in beeps]
    assert all(20 < level < 120 for level in quiet), quiet  # audible as a live line, not silence
    beep = array.array("h", b"".join(frames[0:8]))
    assert tone_ratio(beep, RATE, BEEP_HZ) > 0.9


def test_pcmu_payloads_decode_to_the_fill() -> None:
    payloads = g711_fill("pcm_mulaw")
    assert all(len(p) == 160 for p in payloads)
    decoded = ulaw_decode(b"".join(payloads[0:8]))
    assert tone_ratio(decoded, RATE, BEEP_HZ) > 0.9 and rms(decoded) > 1000
    assert rms(ulaw_decode(payloads[50])) > 20  # the noise survives G.711


@pytest.mark.parametrize(
    ("codec", "payload_type", "ticks"), [("PCMU", 0, 160), ("G722", 9, 160), ("opus", 111, 960)]
)
async def test_fill_paces_frames_with_continuous_timestamps(
    codec: str, payload_type: int, ticks: int
) -> None:
    sent: list[tuple[int, bytes, int, bool]] = []
    fill = ComfortFill(lambda *packet: sent.append(packet), lambda: 1000, lambda: (codec, payload_type))
    assert fill.start() and fill.active
    deadline = time.monotonic() + 10
    while len(sent) < 15 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await fill.stop()
    assert not fill.active
    count = len(sent)
    await asyncio.sleep(0.1)
    assert len(sent) == count >= 15  # nothing after stop
    assert {pt for pt, *_ in sent} == {payload_type}
    assert sent[0][3] and not any(marker for *_, marker in sent[1:])
    stamps = [ts for _, _, ts, _ in sent]
    assert stamps[0] >= 1000 and all(b - a == ticks for a, b in itertools.pairwise(stamps))
    assert all(payload for _, payload, _, _ in sent)


async def test_no_fill_without_a_codec() -> None:
    fill = ComfortFill(lambda *packet: None, lambda: 0, lambda: None)
    assert not fill.start() and not fill.active
    await fill.stop()  # idempotent


async def test_watchdog_reports_quiet_early_then_times_out_and_rearms() -> None:
    quiet: list[float] = []
    timeouts: list[float] = []
    back: list[bool] = []
    dog = Watchdog(
        1.0, timeouts.append, quiet_after=0.3, on_quiet=quiet.append, on_back=lambda: back.append(True)
    )
    dog.set_expected(True)
    start = time.monotonic()
    deadline = start + 10
    while not quiet and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert len(quiet) == 1 and quiet[0] >= 0.3 and not timeouts
    while not timeouts and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert timeouts == [1.0] and len(quiet) == 1  # quiet once per silence
    assert back == []
    dog.alive(time.monotonic())  # a packet: back, and both are armed again
    assert back == [True]
    while len(quiet) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert len(quiet) == 2
    dog.stop()


async def test_watchdog_keeps_the_latest_arrival_when_an_older_one_comes_after() -> None:
    """Packets the fast lane's engine queued for Python carry their arrival, which may be older than one
    the watchdog has seen already (a sync's): the watchdog keeps the latest, so it does not count the
    queue's wait as silence."""
    quiet: list[float] = []
    dog = Watchdog(None, lambda _: None, quiet_after=0.4, on_quiet=quiet.append)
    dog.set_expected(True)
    for _ in range(10):  # 0.5 s of packets, each followed by an older arrival (0.3 s before)
        await asyncio.sleep(0.05)
        now = time.monotonic()
        dog.alive(now)
        dog.alive(now - 0.3)
    await asyncio.sleep(0.2)  # 0.2 s after the latest arrival, 0.5 s after the older one
    assert quiet == [], "the watchdog went back to an older arrival"
    dog.stop()


async def test_watchdog_quiet_is_quiet_while_packets_flow() -> None:
    quiet: list[float] = []
    dog = Watchdog(None, lambda _: None, quiet_after=1.0, on_quiet=quiet.append)
    dog.set_expected(True)
    for _ in range(30):  # a packet every 50 ms for 1.5 s
        await asyncio.sleep(0.05)
        dog.alive(time.monotonic())
    assert quiet == []
    dog.set_expected(False)
    await asyncio.sleep(0.5)
    assert quiet == []  # not expected (hold): no report
    dog.stop()
