"""G.729 (ITU-T G.729, RFC 3551 §4.5.6) through Belledonne's libbcg729, loaded with ctypes at run time.

The library is Debian's ``libbcg729-0`` (a maintained, Annex A-compatible G.729 with Annex B decoding);
there is no binding on PyPI worth depending on, and its API is five functions. When the shared library
does not load, ``available()`` is False and the gateway does not offer G.729 (``usable_sip_codecs``).

A G.729 RTP payload is zero or more 10-byte frames of 10 ms (80 samples at 8 kHz), usually two per 20 ms
packet, optionally followed by one 2-byte Annex B SID frame (RFC 3551 §4.5.6). We answer and offer
``annexb=no`` (RFC 4856 §2.1.9) and our encoder never sends SID, but a peer's SID frame is still decoded
(comfort noise) rather than dropped. A lost frame is concealed by the decoder itself (``frameErasure``,
G.729 §4.4). Each call has its own encoder and decoder (their state is the speech history). Samples
are native-endian signed 16-bit mono at 8 kHz. Runs on the event loop thread: a 10 ms frame costs a
few microseconds to decode and about 20 to encode.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
from collections.abc import Sequence
from typing import Final

from gateway.media.errors import MediaError

__all__ = [
    "FRAME_BYTES",
    "FRAME_SAMPLES",
    "G729Decoder",
    "G729Encoder",
    "G729Error",
    "available",
    "library_path",
    "usable_sip_codecs",
]

logger = logging.getLogger(__name__)

FRAME_SAMPLES: Final = 80  # 10 ms at 8 kHz
FRAME_BYTES: Final = 10  # one coded 10 ms frame (80 bits)
SID_BYTES: Final = 2  # an Annex B silence insertion descriptor (15 bits, padded)
LIBRARY_NAMES: Final = ("libbcg729.so.0", "libbcg729.so")
_PCM_BYTES = 2 * FRAME_SAMPLES
_ERASED = bytes(FRAME_BYTES)


class G729Error(MediaError):
    """libbcg729 is not there, or a payload is not whole G.729 frames."""


@functools.cache
def _library() -> tuple[ctypes.CDLL, str] | None:
    found = ctypes.util.find_library("bcg729")
    for name in (*LIBRARY_NAMES, *((found,) if found else ())):
        try:
            library = ctypes.CDLL(name)
            functions = (
                library.initBcg729EncoderChannel,
                library.bcg729Encoder,
                library.closeBcg729EncoderChannel,
                library.initBcg729DecoderChannel,
                library.bcg729Decoder,
                library.closeBcg729DecoderChannel,
            )
        except (OSError, AttributeError) as exc:
            logger.debug("libbcg729 as %s not usable: %s", name, exc)
            continue
        init_encoder, encode, close_encoder, init_decoder, decode, close_decoder = functions
        init_encoder.restype, init_encoder.argtypes = ctypes.c_void_p, [ctypes.c_uint8]
        # bcg729Encoder(ctx, const int16_t in[80], uint8_t out[10], uint8_t *len)
        encode.restype = None
        encode.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p]
        # bcg729Decoder(ctx, const uint8_t *bits, uint8_t len, uint8_t erasure, uint8_t sid,
        #               uint8_t rfc3389, int16_t out[80])
        decode.restype = None
        decode.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_uint8,
            ctypes.c_uint8,
            ctypes.c_uint8,
            ctypes.c_uint8,
            ctypes.c_void_p,
        ]
        init_decoder.restype, init_decoder.argtypes = ctypes.c_void_p, []
        for close in (close_encoder, close_decoder):
            close.restype, close.argtypes = None, [ctypes.c_void_p]
        return library, name
    return None


def available() -> bool:
    """Whether libbcg729 loads (Debian ``libbcg729-0``)."""
    return _library() is not None


def library_path() -> str | None:
    """The name the library was loaded by, for ``check`` and the logs; None when it is not there."""
    loaded = _library()
    return loaded[1] if loaded is not None else None


def _loaded() -> ctypes.CDLL:
    loaded = _library()
    if loaded is None:
        raise G729Error("G.729 needs libbcg729 (Debian package libbcg729-0), which does not load")
    return loaded[0]


def usable_sip_codecs(codecs: Sequence[str]) -> tuple[str, ...]:
    """``codecs`` (``codecs.sip``) without G.729 when libbcg729 does not load: it is then neither offered
    nor accepted (a warning, logged once). Nothing left: ``G729Error`` naming ``codecs.sip``."""
    if available() or not any(c.upper() == "G729" for c in codecs):
        return tuple(codecs)
    usable = tuple(c for c in codecs if c.upper() != "G729")
    if not usable:
        raise G729Error("codecs.sip: only G729 is listed, and libbcg729 (Debian libbcg729-0) does not load")
    _warn_missing()
    return usable


@functools.cache
def _warn_missing() -> None:
    logger.warning("codecs.sip lists G729 but libbcg729 (Debian libbcg729-0) does not load: not offered")


class _Channel:
    """One libbcg729 channel (an encoder's or a decoder's state); ``close()`` is idempotent."""

    def __init__(self, kind: str, *arguments: int) -> None:
        self._context: int | None = None  # closed, until the library gives one
        self._library = library = _loaded()
        self._close = getattr(library, f"closeBcg729{kind}Channel")
        self._context = getattr(library, f"initBcg729{kind}Channel")(*arguments)
        if not self._context:
            raise G729Error(f"initBcg729{kind}Channel failed")

    def close(self) -> None:
        if self._context is not None:
            self._close(self._context)
            self._context = None

    def __del__(self) -> None:
        self.close()


class G729Encoder(_Channel):
    """PCM (whole 10 ms frames) -> G.729 frames, without VAD (so never a SID frame: annexb=no)."""

    def __init__(self) -> None:
        super().__init__("Encoder", 0)
        self._encode = self._library.bcg729Encoder
        self._bits = ctypes.create_string_buffer(FRAME_BYTES)
        self._length = ctypes.c_uint8(0)

    def encode(self, pcm: bytes) -> bytes:
        """The payload of ``pcm`` (a multiple of 80 samples): 10 bytes per 10 ms."""
        if len(pcm) % _PCM_BYTES or self._context is None:
            raise G729Error(f"G.729 encodes whole 10 ms frames of 160 bytes, got {len(pcm)} bytes")
        out = bytearray()
        bits, length = self._bits, ctypes.byref(self._length)
        for start in range(0, len(pcm), _PCM_BYTES):
            self._encode(self._context, pcm[start : start + _PCM_BYTES], bits, length)
            out += bits.raw[: self._length.value]
        return bytes(out)


class G729Decoder(_Channel):
    """G.729 payloads -> PCM; lost frames concealed by the decoder (frame erasure)."""

    def __init__(self) -> None:
        super().__init__("Decoder")
        self._decode = self._library.bcg729Decoder
        self._pcm = ctypes.create_string_buffer(_PCM_BYTES)
        self.sid_frames = 0  # Annex B SID frames received (decoded to comfort noise)

    def decode(self, payload: bytes) -> bytes:
        """The PCM of one payload: N 10-byte frames, maybe a 2-byte SID frame last (RFC 3551 §4.5.6)."""
        frames, rest = divmod(len(payload), FRAME_BYTES)
        if rest not in (0, SID_BYTES) or self._context is None:
            raise G729Error(f"a G.729 payload is 10-byte frames and maybe a 2-byte SID, got {len(payload)}")
        out = bytearray()
        for start in range(0, frames * FRAME_BYTES, FRAME_BYTES):
            out += self._frame(payload[start : start + FRAME_BYTES], FRAME_BYTES, 0, 0)
        if rest:
            self.sid_frames += 1
            out += self._frame(payload[-SID_BYTES:], SID_BYTES, 0, 1)
        return bytes(out)

    def conceal(self, samples: int) -> bytes:
        """``samples`` (rounded up to 10 ms frames) of concealment, as for lost frames (G.729 §4.4)."""
        if self._context is None:
            raise G729Error("the G.729 decoder is closed")
        frames = -(-samples // FRAME_SAMPLES)
        return b"".join(self._frame(_ERASED, FRAME_BYTES, 1, 0) for _ in range(frames))

    def _frame(self, bits: bytes, length: int, erasure: int, sid: int) -> bytes:
        self._decode(self._context, bits, length, erasure, sid, 0, self._pcm)
        return self._pcm.raw
