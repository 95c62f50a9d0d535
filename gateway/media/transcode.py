"""Decode, resample and re-encode audio payloads between two codecs with PyAV (FFmpeg).

Used only when the legs share no codec: Opus (48 kHz) <-> G.711 (8 kHz) or G.722 (16 kHz). Everything
runs in the event loop thread (one 20 ms frame costs tens of microseconds), unlike aiortc's encoder which
hops to a thread pool per frame. Output frames are always 20 ms. Mono throughout: RFC 7587 §7 lets an
``opus/48000/2`` stream carry mono, and G.711/G.722 are mono.
"""

from __future__ import annotations

import fractions
import logging
from dataclasses import dataclass
from typing import cast

import av
from av import AudioCodecContext, AudioFrame, AudioResampler, CodecContext

from gateway.media.errors import MediaError

logger = logging.getLogger(__name__)

FRAME_MS = 20


class TranscodeError(MediaError):
    """A codec the transcoder does not know, or FFmpeg refused a payload."""


@dataclass(frozen=True, slots=True)
class AudioCodec:
    """How to run one RTP audio codec in FFmpeg: sample rate vs RTP clock rate (RFC 3551 §4.5.2 for G.722)."""

    name: str
    ffmpeg: str
    sample_rate: int
    clock_rate: int

    @property
    def frame_samples(self) -> int:
        return self.sample_rate * FRAME_MS // 1000

    @property
    def frame_ticks(self) -> int:
        """RTP timestamp increment of one 20 ms frame."""
        return self.clock_rate * FRAME_MS // 1000


AUDIO_CODECS: dict[str, AudioCodec] = {
    "pcmu": AudioCodec("PCMU", "pcm_mulaw", 8000, 8000),
    "pcma": AudioCodec("PCMA", "pcm_alaw", 8000, 8000),
    "g722": AudioCodec("G722", "g722", 16000, 8000),
    "opus": AudioCodec("opus", "libopus", 48000, 48000),
}


def audio_codec(name: str) -> AudioCodec:
    codec = AUDIO_CODECS.get(name.lower())
    if codec is None:
        raise TranscodeError(f"no transcoder for codec {name!r}; known: {sorted(AUDIO_CODECS)}")
    return codec


def _context(codec: AudioCodec, mode: str) -> AudioCodecContext:
    context = cast(AudioCodecContext, CodecContext.create(codec.ffmpeg, mode))  # type: ignore[call-overload]
    context.format = "s16"
    context.layout = "mono"
    context.sample_rate = codec.sample_rate
    if mode == "w":
        context.time_base = fractions.Fraction(1, codec.sample_rate)
        if codec.ffmpeg == "libopus":
            context.bit_rate = 32000
            context.options = {"application": "voip", "frame_duration": str(FRAME_MS)}
    return context


class Transcoder:
    """One direction: payloads of ``source`` in, 20 ms payloads of ``target`` out."""

    def __init__(self, source: str, target: str) -> None:
        self.source = audio_codec(source)
        self.target = audio_codec(target)
        self._decoder = _context(self.source, "r")
        self._encoder = _context(self.target, "w")
        self._resampler = AudioResampler(
            format="s16", layout="mono", rate=self.target.sample_rate, frame_size=self.target.frame_samples
        )
        self._pts = 0
        self._time_base = fractions.Fraction(1, self.target.sample_rate)
        self.errors = 0

    def transcode(self, payload: bytes) -> list[bytes]:
        """Encoded output frames (zero, one or occasionally two) for one input payload."""
        try:
            frames = self._decoder.decode(av.Packet(payload))
            out: list[bytes] = []
            for frame in frames:
                frame.pts = None
                for resampled in self._resampler.resample(frame):
                    out += self._encode(resampled)
            return out
        except (av.FFmpegError, ValueError) as exc:
            self.errors += 1
            logger.debug("transcoding %s -> %s failed: %s", self.source.name, self.target.name, exc)
            return []

    def _encode(self, frame: AudioFrame) -> list[bytes]:
        frame.pts = self._pts
        frame.time_base = self._time_base
        self._pts += frame.samples
        return [bytes(packet) for packet in self._encoder.encode(frame)]
