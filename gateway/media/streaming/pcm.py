"""16-bit PCM helpers of an audio stream (native-endian signed samples, mono): 8 <-> 16 kHz by linear
interpolation and pair averaging (speech for apps, not hi-fi), saturating mixing, stereo interleaving."""

from __future__ import annotations

from array import array
from typing import Final

RATES: Final = (8000, 16000)
FRAME_MS: Final = 20


def samples(pcm: bytes) -> array[int]:
    data = array("h")
    data.frombytes(pcm[: len(pcm) & ~1])
    return data


def convert(pcm: bytes, source: int, target: int) -> bytes:
    """``pcm`` at ``source`` Hz as ``target`` Hz (each one of ``RATES``)."""
    if source == target or not pcm:
        return pcm
    data = samples(pcm)
    if source * 2 == target:  # every sample, then the midpoint to the next one
        out = array("h", bytes(4 * len(data)))
        out[0::2] = data
        out[1::2] = array("h", ((a + b) >> 1 for a, b in zip(data, [*data[1:], data[-1]], strict=True)))
        return out.tobytes()
    if source == target * 2:
        return array("h", ((data[i] + data[i + 1]) >> 1 for i in range(0, len(data) - 1, 2))).tobytes()
    raise ValueError(f"cannot convert {source} Hz to {target} Hz")


def mix(pcm: bytes, other: bytes) -> bytes:
    """``pcm`` with ``other`` added, saturated to 16 bits; as long as ``pcm`` (``other`` cut or padded)."""
    a, b = samples(pcm), samples(other)
    if len(b) < len(a):
        b.extend([0] * (len(a) - len(b)))
    return array("h", (max(-32768, min(32767, x + y)) for x, y in zip(a, b, strict=False))).tobytes()


def interleave(left: bytes, right: bytes) -> bytes:
    """Two mono channels of one length as stereo (left, right, left, right...)."""
    a, b = samples(left), samples(right)
    out = array("h", bytes(2 * (len(a) + len(b))))
    out[0::2] = a
    out[1::2] = b
    return out.tobytes()


def frame_bytes(rate: int) -> int:
    """The bytes of 20 ms of mono PCM at ``rate``."""
    return 2 * rate * FRAME_MS // 1000
