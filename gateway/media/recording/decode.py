"""One leg's RTP audio payloads to PCM at the recording's rate (native-endian signed 16-bit, mono).

G.711 by table (gateway/media/codecs/transcode.py), Opus by libopus at the recording's rate (no
resampler), G.722 by FFmpeg at 16 kHz; a source at another rate than the recording's goes through
PyAV's resampler. A payload that cannot be decoded gives no PCM (the place stays silent) and is counted.
"""

from __future__ import annotations

import logging
from typing import Final

import av
from av import AudioCodecContext, AudioResampler

from gateway.media.codecs.opus_decoder import OpusDecodeError, OpusDecoder, opus_available
from gateway.media.codecs.transcode import (
    G711,
    TranscodeError,
    _context,
    _frame,
    _pcm,
    audio_codec,
    g711_tables,
)

logger = logging.getLogger(__name__)

RATES: Final = (8000, 16000)


class LegDecoder:
    """Payloads of ``codec`` (``pcmu``, ``pcma``, ``g722``, ``opus``) -> PCM at ``rate`` Hz."""

    def __init__(self, codec: str, rate: int) -> None:
        source = audio_codec(codec)  # TranscodeError for a codec the gateway does not know
        self.codec = source.name
        self.rate = rate
        self.errors = 0
        self._tables = g711_tables(source.ffmpeg) if source.ffmpeg in G711 else None
        self._opus: OpusDecoder | None = None
        self._ffmpeg: AudioCodecContext | None = None
        decoded = source.sample_rate
        if source.ffmpeg == "libopus":
            if not opus_available():
                raise TranscodeError("no libopus to decode Opus for the recording")
            self._opus, decoded = OpusDecoder(rate), rate
        elif self._tables is None:
            self._ffmpeg = _context(source.ffmpeg, "r", source.sample_rate)
        self._decoded_rate = decoded
        self._resampler = AudioResampler(format="s16", layout="mono", rate=rate) if decoded != rate else None

    def decode(self, payload: bytes) -> bytes:
        if not payload:
            return b""
        try:
            pcm = self._decode(payload)
        except (OpusDecodeError, av.FFmpegError, ValueError) as exc:
            self.errors += 1
            logger.debug("recording: %s payload not decoded: %s", self.codec, exc)
            return b""
        if self._resampler is None or not pcm:
            return pcm
        frame = _frame(pcm, self._decoded_rate)
        return b"".join(_pcm(out) for out in self._resampler.resample(frame))

    def _decode(self, payload: bytes) -> bytes:
        if self._tables is not None:
            pcm = bytearray(2 * len(payload))
            pcm[0::2] = payload.translate(self._tables.first)
            pcm[1::2] = payload.translate(self._tables.second)
            return bytes(pcm)
        if self._opus is not None:
            return self._opus.decode(payload)
        assert self._ffmpeg is not None
        return b"".join(_pcm(frame) for frame in self._ffmpeg.decode(av.Packet(payload)))

    def close(self) -> None:
        if self._opus is not None:
            self._opus.close()
