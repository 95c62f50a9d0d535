"""What the Opus encoder's complexity costs and gives for a G.711 source (issue 14 goal 2; media.opus_complexity).

The fast lane encodes 8 kHz PCM decoded from PCMU into Opus with libopus (PyAV's copy, as the gateway
loads it: gateway/media/native_hooks.py), 20 ms frames at 32 kbit/s, narrowband voice
(gateway/media/codecs/opus_settings.py). This measures, per complexity, libopus's CPU per 20 ms frame on one
thread (process time, rounds interleaved across complexities, medians) and a quality proxy: the SNR of
the decoded signal against the G.711 source, per 20 ms segment (median), on a voiced sound (a gliding
120-220 Hz fundamental and its harmonics up to 3.4 kHz, syllable-like amplitude). That proxy is not a
listening test and hardly moves (SILK shapes its noise perceptually rather than minimising the waveform
error: ~5.4 dB at every complexity here): it only shows that no setting breaks the signal. Decoding a browser's 20 ms (48 kHz CELT, from
peers.audio) at 8 kHz is printed beside it: the other half of a transcoded call's codec work.

Run: python bench/opus_complexity.py [10,8,5,3,1,0] [--rounds 5] [--seconds 4]
"""

from __future__ import annotations

import argparse
import array
import ctypes
import math
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.media.native_hooks import opus_library_candidates  # noqa: E402
from peers.audio import G711, encode_tone  # noqa: E402

RATE, FRAME = 8000, 160
OPUS_APPLICATION_VOIP = 2048
SET_BITRATE, SET_MAX_BANDWIDTH, SET_COMPLEXITY, SET_SIGNAL = 4002, 4004, 4010, 4024
NARROWBAND, VOICE = 1101, 3001


def voiced(seconds: float) -> array.array[int]:
    """A voice-like 8 kHz signal through G.711 (what a phone sends): harmonics of a gliding pitch."""
    out = array.array("h")
    phase = 0.0
    for n in range(round(seconds * RATE)):
        t = n / RATE
        pitch = 170 + 50 * math.sin(2 * math.pi * 0.7 * t)
        phase += 2 * math.pi * pitch / RATE
        envelope = 0.25 + 0.75 * abs(math.sin(2 * math.pi * 2.5 * t))  # ~5 syllables a second
        value = sum(
            math.sin(k * phase) / k ** 0.8 for k in range(1, int(3400 / pitch) + 1)
        )  # fmt: skip
        out.append(max(-32768, min(32767, round(5000 * envelope * value))))
    g711 = G711("pcm_mulaw")
    return g711.decode(g711.encode(out))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("levels", nargs="?", default="10,8,5,3,1,0")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0, help="audio encoded per complexity and round")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    lib = ctypes.CDLL(opus_library_candidates()[0])
    lib.opus_get_version_string.restype = ctypes.c_char_p
    lib.opus_encoder_create.restype = ctypes.c_void_p
    lib.opus_decoder_create.restype = ctypes.c_void_p
    source = voiced(args.seconds)
    frames = [
        (ctypes.c_int16 * FRAME).from_buffer_copy(source[i : i + FRAME].tobytes())
        for i in range(0, len(source) - FRAME + 1, FRAME)
    ]
    out = (ctypes.c_ubyte * 1500)()
    pcm = (ctypes.c_int16 * 960)()
    error = ctypes.c_int()

    def encoder(complexity: int) -> ctypes.c_void_p:
        state = ctypes.c_void_p(lib.opus_encoder_create(RATE, 1, OPUS_APPLICATION_VOIP, ctypes.byref(error)))
        for request, value in (
            (SET_BITRATE, 32000), (SET_COMPLEXITY, complexity), (SET_MAX_BANDWIDTH, NARROWBAND), (SET_SIGNAL, VOICE)
        ):  # fmt: skip
            lib.opus_encoder_ctl(state, request, ctypes.c_int32(value))
        return state

    costs: dict[int, list[float]] = {c: [] for c in levels}
    quality: dict[int, tuple[float, float]] = {}
    for round_index in range(args.rounds):
        for complexity in levels if round_index % 2 == 0 else levels[::-1]:
            state = encoder(complexity)
            started = time.process_time()
            sizes = [lib.opus_encode(state, frame, FRAME, out, 1500) for frame in frames]
            costs[complexity].append((time.process_time() - started) / len(frames) * 1e6)
            lib.opus_encoder_destroy(state)
            if complexity not in quality:  # the SNR per 20 ms segment, after a decoder (deterministic)
                state, decoder = (
                    encoder(complexity),
                    ctypes.c_void_p(lib.opus_decoder_create(RATE, 1, ctypes.byref(error))),
                )
                decoded = array.array("h")
                for frame in frames:
                    size = lib.opus_encode(state, frame, FRAME, out, 1500)
                    got = lib.opus_decode(decoder, out, size, pcm, 960, 0)
                    decoded.extend(pcm[:got])
                lib.opus_encoder_destroy(state)
                lib.opus_decoder_destroy(decoder)
                delay = best_delay(source, decoded)
                quality[complexity] = (
                    segmental_snr(source, decoded, delay),
                    8 * statistics.mean(sizes) / 0.02,
                )
    browser = encode_tone(1000, "opus")
    decoder = ctypes.c_void_p(lib.opus_decoder_create(RATE, 1, ctypes.byref(error)))
    packets = [(ctypes.c_ubyte * len(p)).from_buffer_copy(p) for p in browser]
    started = time.process_time()
    for _ in range(20):
        for packet, raw in zip(packets, browser, strict=True):
            lib.opus_decode(decoder, packet, len(raw), pcm, 960, 0)
    decode_us = (time.process_time() - started) / (20 * len(browser)) * 1e6
    lib.opus_decoder_destroy(decoder)
    print(
        f"{lib.opus_get_version_string().decode()}, 8 kHz narrowband voice at 32 kbit/s, 20 ms frames; "
        f"{args.rounds} interleaved rounds of {args.seconds:g} s; load average {loadavg()}"
    )
    print(f"{'complexity':>10}{'us/frame':>10}{'vs 10':>8}{'SNR dB':>8}{'kbit/s':>8}")
    top = statistics.median(costs[max(levels)])
    for complexity in levels:
        cost = statistics.median(costs[complexity])
        snr, bitrate = quality[complexity]
        print(f"{complexity:>10}{cost:>10.1f}{cost / top:>8.2f}{snr:>8.2f}{bitrate / 1000:>8.1f}")
    print(f"decoding a browser's 20 ms (48 kHz CELT) at 8 kHz: {decode_us:.1f} us; load average {loadavg()}")
    return 0


def best_delay(source: array.array[int], decoded: array.array[int]) -> int:
    """The codec's delay in samples (the lag of the largest correlation, up to 20 ms)."""
    span = range(len(decoded) // 8, len(decoded) // 2)
    return max(range(FRAME), key=lambda d: sum(source[n] * decoded[n + d] for n in span[::4]))


def segmental_snr(source: array.array[int], decoded: array.array[int], delay: int) -> float:
    values = []
    for start in range(FRAME * 5, len(decoded) - delay - FRAME, FRAME):  # past the start-up
        signal = sum(source[n] ** 2 for n in range(start, start + FRAME))
        noise = sum((source[n] - decoded[n + delay]) ** 2 for n in range(start, start + FRAME))
        if signal > 0:
            values.append(10 * math.log10(signal / max(noise, 1)))
    return statistics.median(values)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


if __name__ == "__main__":
    sys.exit(main())
