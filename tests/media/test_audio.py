"""The tone toolkit itself: generation, Goertzel detection, G.711 round trips, the RTP peer."""

from __future__ import annotations

import asyncio

import pytest

from peers.audio import (
    G711,
    RATE,
    RtpTonePeer,
    alaw_decode,
    alaw_encode,
    detect_tone,
    silence,
    sine,
    tone_ratio,
    ulaw_decode,
    ulaw_encode,
)


def test_sine_length_and_amplitude() -> None:
    tone = sine(1000, RATE, 0.5, amplitude=8000)
    assert len(tone) == 4000
    assert max(tone) == 8000 and min(tone) == -8000


def test_1khz_detected() -> None:
    tone = sine(1000, RATE, 0.2)
    assert tone_ratio(tone, RATE, 1000) > 0.95
    assert detect_tone(tone, RATE, 1000)


@pytest.mark.parametrize("freq", [400, 440, 800, 1200, 2000])
def test_1khz_not_detected_in_other_tones(freq: int) -> None:
    tone = sine(freq, RATE, 0.2)
    assert tone_ratio(tone, RATE, 1000) < 0.05
    assert not detect_tone(tone, RATE, 1000)
    assert detect_tone(tone, RATE, freq)


def test_silence_and_empty_are_not_tones() -> None:
    assert not detect_tone(silence(RATE, 0.2), RATE, 1000)
    assert not detect_tone([], RATE, 1000)
    assert tone_ratio([], RATE, 1000) == 0.0


def test_quiet_tone_below_floor_is_not_detected() -> None:
    assert not detect_tone(sine(1000, RATE, 0.2, amplitude=50), RATE, 1000)


def test_mixture_detects_both() -> None:
    a, b = sine(1000, RATE, 0.2, 6000), sine(400, RATE, 0.2, 6000)
    mix = [x + y for x, y in zip(a, b, strict=True)]
    assert tone_ratio(mix, RATE, 1000) == pytest.approx(0.5, abs=0.05)
    assert detect_tone(mix, RATE, 1000, threshold=0.4)
    assert detect_tone(mix, RATE, 400, threshold=0.4)


@pytest.mark.parametrize(("encode", "decode"), [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)])
def test_tone_survives_g711(encode: object, decode: object) -> None:
    tone = sine(1000, RATE, 0.2)
    coded = encode(tone)  # type: ignore[operator]
    assert len(coded) == len(tone)
    back = decode(coded)  # type: ignore[operator]
    assert len(back) == len(tone)
    assert detect_tone(back, RATE, 1000)
    assert not detect_tone(back, RATE, 400)
    assert max(abs(x - y) for x, y in zip(tone, back, strict=True)) < 300  # G.711 step at 8000 is ~256


def test_ulaw_known_values() -> None:
    # ITU-T G.711: 0 -> 0xFF, positive full scale -> 0x80, negative full scale -> 0x00
    import array

    assert ulaw_encode(array.array("h", [0, 32767, -32768])) == bytes([0xFF, 0x80, 0x00])
    assert list(ulaw_decode(bytes([0xFF, 0x7F]))) == [0, 0]
    assert alaw_encode(array.array("h", [0])) == bytes([0xD5])


def test_g711_codec_object_keeps_frames() -> None:
    codec = G711()
    frames = [codec.encode(sine(1000, RATE, 0.02)) for _ in range(5)]
    assert [len(f) for f in frames] == [160] * 5
    assert codec.encode(silence(RATE, 0)) == b""
    assert len(codec.decode(b"".join(frames))) == 800


async def test_peers_exchange_a_tone_with_pacing() -> None:
    a, b = RtpTonePeer(), RtpTonePeer()
    await a.start()
    await b.start()
    a.remote = b.address
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        sent = await a.send_tone(1000, 0.4)
        elapsed = loop.time() - started
        await asyncio.sleep(0.05)
        assert sent == 20
        assert 0.38 <= elapsed < 0.6  # 20 ms pacing, no burst
        assert b.frames == 20
        assert b.heard(1000) and not b.heard(400)
        seqs = [p.sequence_number for p in b.packets]
        assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(20)]
        stamps = [p.timestamp for p in b.packets]
        assert stamps == [(stamps[0] + 160 * i) & 0xFFFFFFFF for i in range(20)]
        assert b.packets[0].marker and not any(p.marker for p in b.packets[1:])
        assert set(b.sources) == {a.address}
    finally:
        a.close()
        b.close()
