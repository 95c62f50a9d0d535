"""Opus decoding straight through libopus (ctypes), at the rate the other leg wants.

Why not FFmpeg's decoders through PyAV: they only output 48 kHz, so Opus -> G.711 needed an
``AudioResampler``, whose ffmpeg filter graph starts one idle thread per CPU for every transcoded call,
and FFmpeg drops the decoder's pre-skip (RFC 7845 §4.2, an Ogg notion) from the first packet, so the first
20 ms of a call never reached the SIP side. libopus decodes at 8, 12, 16, 24 or 48 kHz itself (RFC 6716
§4.3.9: the decoder may run at any of them) and returns every frame whole: no resampler, no thread, no
lost first packet. The library is the one the fast lane's engine uses (PyAV's bundled copy, else the
system's: ``native_hooks.opus_library_candidates``).
"""

from __future__ import annotations

import ctypes
import functools
import logging

from gateway.media.errors import MediaError
from gateway.media.native_hooks import opus_library_candidates

__all__ = ["OPUS_DECODER_RATES", "OpusDecodeError", "OpusDecoder", "opus_available"]

logger = logging.getLogger(__name__)

OPUS_DECODER_RATES = frozenset({8000, 12000, 16000, 24000, 48000})
MAX_FRAME_MS = 120  # RFC 6716 §3.2.5: the longest packet


class OpusDecodeError(MediaError):
    """libopus refused a packet, or is not there."""


@functools.cache
def _library() -> ctypes.CDLL | None:
    for path in opus_library_candidates():
        try:
            library = ctypes.CDLL(path)
            create, decode, destroy = (
                library.opus_decoder_create,
                library.opus_decode,
                library.opus_decoder_destroy,
            )
        except (OSError, AttributeError) as exc:
            logger.debug("libopus at %s not usable: %s", path, exc)
            continue
        create.restype, create.argtypes = (
            ctypes.c_void_p,
            [ctypes.c_int32, ctypes.c_int, ctypes.POINTER(ctypes.c_int)],
        )
        decode.restype = ctypes.c_int
        decode.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_int32,
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_int,
        ]
        destroy.restype, destroy.argtypes = None, [ctypes.c_void_p]
        return library
    return None


def opus_available() -> bool:
    """Whether a libopus could be loaded."""
    return _library() is not None


class OpusDecoder:
    """Mono Opus packets -> native-endian signed 16-bit PCM at ``rate``."""

    def __init__(self, rate: int) -> None:
        self._state: int | None = None
        if rate not in OPUS_DECODER_RATES:
            raise OpusDecodeError(f"libopus decodes at {sorted(OPUS_DECODER_RATES)} Hz, not {rate!r}")
        library = _library()
        if library is None:
            raise OpusDecodeError("no libopus found")
        self.rate = rate
        self._decode = library.opus_decode
        self._destroy = library.opus_decoder_destroy
        error = ctypes.c_int(0)
        self._state = library.opus_decoder_create(rate, 1, ctypes.byref(error))
        if not self._state or error.value != 0:
            self._state = None
            raise OpusDecodeError(f"opus_decoder_create({rate}) failed: {error.value}")
        self._capacity = rate * MAX_FRAME_MS // 1000
        self._pcm = ctypes.create_string_buffer(2 * self._capacity)

    def decode(self, payload: bytes) -> bytes:
        """The PCM of one packet (every frame whole, the first included)."""
        if self._state is None:
            raise OpusDecodeError("the decoder is closed")
        samples = self._decode(self._state, payload, len(payload), self._pcm, self._capacity, 0)
        if samples < 0:
            raise OpusDecodeError(f"opus_decode failed: {samples}")
        return self._pcm.raw[: 2 * samples]

    def conceal(self, samples: int, following: bytes | None = None) -> bytes:
        """``samples`` of PCM for a lost frame: from the in-band FEC (LBRR) of the packet that
        ``following`` is (RFC 6716 §2.1.7; libopus falls back to PLC when it carries none), else libopus's
        packet loss concealment (``opus_decode`` with no data)."""
        if self._state is None:
            raise OpusDecodeError("the decoder is closed")
        if not 0 < samples <= self._capacity or samples % (self.rate // 400):
            raise OpusDecodeError(f"cannot conceal {samples} samples (a multiple of 2.5 ms up to 120 ms)")
        fec = 1 if following else 0
        data, length = (following, len(following)) if following else (None, 0)
        got = self._decode(self._state, data, length, self._pcm, samples, fec)
        if got < 0:
            raise OpusDecodeError(f"opus_decode (concealment) failed: {got}")
        return self._pcm.raw[: 2 * got]

    def close(self) -> None:
        """Free the libopus state (idempotent)."""
        state, self._state = self._state, None
        if state:
            self._destroy(state)

    def __del__(self) -> None:
        self.close()
