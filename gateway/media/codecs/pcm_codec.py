"""Audio payloads to PCM and back at one sample rate, for the room mixer (gateway/media/codecs/mixer.py).

A ``PcmCodec`` decodes one participant's RTP payloads to native-endian signed 16-bit mono PCM at the
mixer's rate and encodes 20 ms of that PCM to one payload. It reuses the transcoder's pieces
(gateway/media/codecs/transcode.py): G.711 by table, Opus decoded by libopus at the mixer's rate and encoded by
FFmpeg's libopus from that rate (libopus takes 8/12/16/24/48 kHz input, so no resampler is needed: the
RTP clock of Opus stays 48 kHz, RFC 7587 §4.1). Everything runs on the event loop thread.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, cast

import av

from gateway.media.codecs.g729 import G729Decoder, G729Encoder, G729Error
from gateway.media.codecs.opus_decoder import OPUS_DECODER_RATES, OpusDecodeError, OpusDecoder
from gateway.media.codecs.transcode import (
    FRAME_MS,
    G711,
    TranscodeError,
    _context,
    _frame,
    _G711Tables,
    audio_codec,
    g711_tables,
)
from gateway.media.native_hooks import frame_encoder

MIXER_RATES: Final = frozenset({8000, 16000, 48000})


@dataclass(frozen=True, slots=True)
class PcmFormat:
    """The mixer's PCM: ``rate`` Hz, mono, 20 ms frames."""

    rate: int = 8000

    def __post_init__(self) -> None:
        if self.rate not in MIXER_RATES:
            raise ValueError(f"mixer rate must be one of {sorted(MIXER_RATES)}, got {self.rate!r}")

    @property
    def frame_samples(self) -> int:
        return self.rate * FRAME_MS // 1000

    @property
    def frame_bytes(self) -> int:
        return 2 * self.frame_samples


class PcmCodec:
    """One participant's codec (``pcmu``, ``pcma``, ``g729`` or ``opus``) against the mixer's PCM format."""

    def __init__(self, name: str, pcm: PcmFormat) -> None:
        codec = audio_codec(name)
        self.name = codec.name
        self.pcm = pcm
        self.frame_ticks = codec.frame_ticks  # RTP timestamp step of one 20 ms payload
        self.errors = 0
        self._opus_decoder: OpusDecoder | None = None
        self._tables: _G711Tables | None = None
        self._encode_table: Callable[[memoryview], tuple[int, ...]] | None = None
        self._g729: tuple[G729Decoder, G729Encoder] | None = None
        if (codec.ffmpeg in G711 or codec.ffmpeg == "g729") and pcm.rate != 8000:
            raise TranscodeError(f"{codec.name} mixes at 8000 Hz only, not {pcm.rate}")
        if codec.ffmpeg == "g729":
            self._g729 = (G729Decoder(), G729Encoder())
        elif codec.ffmpeg in G711:
            self._tables = g711_tables(codec.ffmpeg)
            table = self._tables.encode
            self._encode_table = lambda samples: cast(tuple[int, ...], operator.itemgetter(*samples)(table))
        elif codec.ffmpeg == "libopus" and pcm.rate in OPUS_DECODER_RATES:
            self._opus_decoder = OpusDecoder(pcm.rate)
            self._encoder = _context("libopus", "w", pcm.rate)
            self._send = frame_encoder(self._encoder)
            self._pts = 0
        else:
            raise TranscodeError(f"the mixer cannot carry {codec.name}")

    def decode(self, payload: bytes) -> bytes:
        """The PCM of one payload (b"" when it cannot be decoded: counted in ``errors``)."""
        if not payload:
            return b""
        if self._tables is not None:
            pcm = bytearray(2 * len(payload))
            pcm[0::2] = payload.translate(self._tables.first)
            pcm[1::2] = payload.translate(self._tables.second)
            return bytes(pcm)
        if self._g729 is not None:
            try:
                return self._g729[0].decode(payload)
            except G729Error:
                self.errors += 1
                return b""
        assert self._opus_decoder is not None
        try:
            return self._opus_decoder.decode(payload)
        except OpusDecodeError:
            self.errors += 1
            return b""

    def encode(self, pcm: bytes) -> list[bytes]:
        """One 20 ms frame of PCM (``pcm.frame_bytes``) -> its payloads (one, or none while the Opus
        encoder fills its look-ahead)."""
        if self._encode_table is not None:
            return [bytes(self._encode_table(memoryview(pcm).cast("H")))]
        if self._g729 is not None:
            return [self._g729[1].encode(pcm)]
        frame = _frame(pcm, self.pcm.rate)
        frame.pts = self._pts
        self._pts += frame.samples
        try:
            return [bytes(packet) for packet in self._send(frame)]
        except (av.FFmpegError, ValueError):
            self.errors += 1
            return []

    def close(self) -> None:
        if self._opus_decoder is not None:
            self._opus_decoder.close()
        if self._g729 is not None:
            for part in self._g729:
                part.close()
