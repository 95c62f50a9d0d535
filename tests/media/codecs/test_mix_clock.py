"""The mixer as a three-way call uses it (gateway/runtime/merge/), and its clock (mix_clock.py), without a
network: three participants with no group (the web user, phone A, phone B), each sending its own tone,
each hearing the other two and not itself; and `MixClock` ticking a mixer every 20 ms on the event loop
until it is stopped or the mixer is closed."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gateway.media.codecs.mix_clock import MixClock
from gateway.media.codecs.mixer import Mixer
from peers.audio import sine, tone_ratio, ulaw_encode
from tests.media.codecs.test_mixer import FRAMES, Sink, _pcmu_pcm

TONES = {"web": 1000, "a": 440, "b": 660}


def test_each_of_three_hears_the_other_two() -> None:
    mixer = Mixer(8000, 3)
    sinks = {name: Sink() for name in TONES}
    for name, sink in sinks.items():
        mixer.add(name, "pcmu", sink)
    tones = {name: sine(freq, 8000, FRAMES * 0.02, amplitude=6000) for name, freq in TONES.items()}
    for index in range(FRAMES):
        for name, pcm in tones.items():
            mixer.push(name, ulaw_encode(pcm[index * 160 : (index + 1) * 160]))
        mixer.tick()
    for name, sink in sinks.items():
        heard = _pcmu_pcm(sink)
        others = [freq for other, freq in TONES.items() if other != name]
        assert all(tone_ratio(heard, 8000, freq) > 0.3 for freq in others), (name, others)
        assert tone_ratio(heard, 8000, TONES[name]) < 0.02, f"{name} hears itself"
    mixer.close()


async def test_the_clock_ticks_every_20_ms_until_stopped() -> None:
    mixer = Mixer(8000, 2)
    sink = Sink()
    mixer.add("a", "pcmu", sink)
    clock = MixClock(mixer, "test")
    clock.start()
    clock.start()  # no second schedule
    await asyncio.sleep(0.5)
    ticks = mixer.ticks
    assert 15 <= ticks <= 30, ticks  # 25 expected; a busy machine may lose a few
    assert len(sink.payloads) == ticks  # silence every tick, in its codec
    clock.stop()
    clock.stop()
    await asyncio.sleep(0.1)
    assert mixer.ticks == ticks and not clock.running
    mixer.close()


async def test_a_closed_mixer_stops_the_clock(caplog: pytest.LogCaptureFixture) -> None:
    mixer = Mixer(8000, 2)
    clock = MixClock(mixer, "test")
    clock.start()
    await asyncio.sleep(0.05)
    mixer.close()
    await asyncio.sleep(0.1)
    assert not clock.running

    def broken(payload: bytes, stamp: int) -> None:
        raise OSError("a participant's failure: logged, not fatal")

    failing = Mixer(8000, 2)
    failing.add("a", "pcmu", broken)
    clock = MixClock(failing, "failing")
    with caplog.at_level(logging.ERROR, logger="gateway.media.codecs.mix_clock"):
        clock.start()
        await asyncio.sleep(0.1)
    assert clock.running and failing.ticks >= 3
    assert "failing: the mixer's tick failed" in caplog.text
    clock.stop()
    failing.close()
