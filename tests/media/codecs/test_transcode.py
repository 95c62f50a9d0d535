"""The transcoder: tones survive Opus round trips, 20 ms output frames, G.711 tables equal FFmpeg's codec."""

from __future__ import annotations

import array
import fractions
import os
import random
from typing import cast

import av
import pytest
from av import AudioCodecContext, AudioFrame, CodecContext

from gateway.media.codecs.transcode import Transcoder
from peers.audio import G711, detect_tone, sine


def _codec(name: str, mode: str, rate: int) -> AudioCodecContext:
    context = cast(AudioCodecContext, CodecContext.create(name, mode))  # type: ignore[call-overload]
    context.format = "s16"
    context.layout = "mono"
    context.sample_rate = rate
    if mode == "w":
        context.time_base = fractions.Fraction(1, rate)
    return context


def _g722_encode(samples: array.array[int]) -> list[bytes]:
    encoder = _codec("g722", "w", 16000)
    out = []
    for i in range(0, len(samples) - 319, 320):
        frame = AudioFrame(format="s16", layout="mono", samples=320)
        frame.planes[0].update(samples[i : i + 320].tobytes())
        frame.sample_rate = 16000
        frame.pts = i
        out += [bytes(packet) for packet in encoder.encode(frame)]
    return out


def _g722_decode(payloads: list[bytes]) -> array.array[int]:
    decoder = _codec("g722", "r", 16000)
    out = array.array("h")
    for payload in payloads:
        for frame in decoder.decode(av.Packet(payload)):
            out.frombytes(bytes(frame.planes[0])[: 2 * frame.samples])
    return out


def _round_trip(codec: str, payloads: list[bytes]) -> list[bytes]:
    there, back = Transcoder(codec, "opus"), Transcoder("opus", codec)
    opus = [p for payload in payloads for p in there.transcode(payload)]
    out = [p for payload in opus for p in back.transcode(payload)]
    assert there.errors == back.errors == 0
    assert len(opus) == len(payloads)  # 20 ms in, 20 ms out
    return out


@pytest.mark.parametrize("law", ["PCMU", "PCMA"])
def test_a_tone_survives_g711_to_opus_and_back(law: str) -> None:
    g711 = G711("pcm_mulaw" if law == "PCMU" else "pcm_alaw")
    tone = sine(1000, 8000, seconds=1.0)
    out = _round_trip(law, [g711.encode(tone[i : i + 160]) for i in range(0, 8000, 160)])
    assert all(len(p) == 160 for p in out) and len(out) >= 45
    pcm = g711.decode(b"".join(out))
    assert detect_tone(pcm[1600:], 8000, 1000, threshold=0.9)
    assert not detect_tone(pcm[1600:], 8000, 1500)


def test_a_tone_survives_g722_to_opus_and_back() -> None:
    out = _round_trip("G722", _g722_encode(sine(1000, 16000, seconds=1.0)))
    assert all(len(p) == 160 for p in out) and len(out) >= 45  # 20 ms of G.722: 160 bytes
    pcm = _g722_decode(out)
    assert detect_tone(pcm[3200:], 16000, 1000, threshold=0.9)


def test_opus_output_is_20_ms_at_the_48_khz_rtp_clock_whatever_the_input_ptime() -> None:
    transcoder = Transcoder("PCMU", "opus")
    assert transcoder.target.frame_ticks == 960  # RFC 7587 §4.1: the RTP clock of Opus is always 48 kHz
    tone = sine(1000, 8000, seconds=0.6)
    g711 = G711()
    out = [p for i in range(0, 4800, 240) for p in transcoder.transcode(g711.encode(tone[i : i + 240]))]
    assert len(out) == 30  # 20 payloads of 30 ms -> 30 frames of 20 ms
    decoder = _codec("libopus", "r", 48000)
    assert all(frame.samples == 960 for p in out for frame in decoder.decode(av.Packet(p)))


def test_g711_tables_match_ffmpeg() -> None:
    rng = random.Random(7)
    samples = array.array("h", [rng.randint(-32768, 32767) for _ in range(160)] + [-32768, -1, 0, 1, 32767])
    samples.extend([0] * (320 - len(samples)))  # two 20 ms frames
    for law, ffmpeg in (("PCMU", "pcm_mulaw"), ("PCMA", "pcm_alaw")):
        reference = G711(ffmpeg)
        to_g722, from_g722 = Transcoder(law, "G722"), Transcoder("G722", law)
        assert to_g722._decode_tables is not None and from_g722._encode_bytes is not None
        codes = bytes(range(256))
        assert Transcoder._decode_g711(codes, to_g722._decode_tables) == reference.decode(codes).tobytes()
        assert from_g722._encode_bytes(samples.tobytes()) == reference.encode(samples)


def test_pcmu_to_pcma_is_a_table_lookup_with_20_ms_frames() -> None:
    transcoder = Transcoder("PCMU", "PCMA")
    tone = sine(1000, 8000, seconds=0.2)
    out = transcoder.transcode(G711().encode(tone[:400]))  # 50 ms in: two frames, 10 ms kept
    assert [len(p) for p in out] == [160, 160]
    assert [len(p) for p in transcoder.transcode(G711().encode(tone[400:800]))] == [160, 160, 160]
    assert detect_tone(G711("pcm_alaw").decode(b"".join(out)), 8000, 1000, threshold=0.9)


def test_garbage_opus_is_counted_not_raised() -> None:
    transcoder = Transcoder("opus", "PCMU")
    assert transcoder.transcode(b"") == [] and transcoder.errors == 0  # not an end-of-stream flush either
    assert transcoder.transcode(b"\xff\xff\xff") == [] and transcoder.errors == 1  # code 3, bad frame count
    good = Transcoder("PCMU", "opus").transcode(G711().encode(sine(1000, 8000, seconds=0.02)))
    assert len(transcoder.transcode(good[0]) + transcoder.transcode(good[0])) >= 1


def _opus_tone(frames: int) -> list[bytes]:
    g711 = G711("pcm_mulaw")
    tone = sine(1000, 8000, seconds=frames / 50)
    there = Transcoder("PCMU", "opus")
    return [p for i in range(0, len(tone), 160) for p in there.transcode(g711.encode(tone[i : i + 160]))]


def test_opus_to_g711_loses_no_packet_not_even_the_first() -> None:
    # every Opus packet gives its 20 ms at once: the first one's audio reaches the SIP side too
    back = Transcoder("opus", "PCMU")
    out = [back.transcode(packet) for packet in _opus_tone(10)]
    assert [len(frames) for frames in out] == [1] * 10 and back.errors == 0
    first = G711("pcm_mulaw").decode(out[0][0])
    assert detect_tone(first[60:], 8000, 1000, threshold=0.8)  # past the encoder's look-ahead


def test_transcoding_calls_start_no_threads() -> None:
    # FFmpeg's resampler graph used to start one idle thread per CPU for every Opus -> G.711 call
    packets = _opus_tone(3)
    before = set(os.listdir("/proc/self/task"))
    transcoders = [Transcoder("opus", codec) for codec in ("PCMU", "PCMA", "G722", "PCMU") * 5]
    for transcoder in transcoders:
        assert [len(transcoder.transcode(packet)) for packet in packets] == [1, 1, 1]
    # no thread of the process is new (an earlier test's executor or engine thread may end meanwhile)
    assert set(os.listdir("/proc/self/task")) <= before
