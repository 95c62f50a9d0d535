"""Decode, resample and re-encode audio payloads between two codecs with PyAV (FFmpeg).

Used only when the legs share no codec: Opus (48 kHz) <-> G.711 (8 kHz), G.722 (16 kHz) or G.729
(8 kHz, through libbcg729: ``g729``; FFmpeg has no G.729 encoder). Everything
runs in the event loop thread (one 20 ms frame costs tens of microseconds), unlike aiortc's encoder which
hops to a thread pool per frame. Output frames are always 20 ms. Mono throughout: RFC 7587 §7 lets an
``opus/48000/2`` stream carry mono, and G.711/G.722 are mono.

Kept cheap, as it runs for every frame of a transcoded call:

* The Opus encoder takes the source's own rate (libopus accepts 8/12/16/24/48 kHz input), so G.711 and
  G.722 go to Opus without a resampler; the packets are ordinary Opus whose RTP clock stays 48 kHz
  (RFC 7587 §4.1). Opus is decoded by libopus itself at the target's rate (``opus_decoder``): FFmpeg's
  decoders only output 48 kHz, and its resampler's filter graph started a thread per CPU for every
  call and its decoder lost the first packet. Only a host without a loadable libopus resamples.
* G.711 is table-driven in pure Python (``bytes.translate`` to decode, ``operator.itemgetter`` to
  encode), with the tables taken from FFmpeg's own ``pcm_mulaw``/``pcm_alaw`` so the results are the same.
* Frames go straight to ``avcodec_send_frame``: PyAV's ``encode()`` pushes every frame through an
  internal filter graph to re-chunk it to the encoder's frame size, which ours already have.
"""

from __future__ import annotations

import array
import fractions
import functools
import logging
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import av
from av import AudioCodecContext, AudioFrame, AudioResampler, CodecContext

from gateway.media.codecs import opus_settings
from gateway.media.codecs.g711_plc import G711Concealer
from gateway.media.codecs.g729 import G729Decoder, G729Encoder, G729Error
from gateway.media.codecs.opus_decoder import OPUS_DECODER_RATES, OpusDecodeError, OpusDecoder, opus_available
from gateway.media.errors import MediaError
from gateway.media.native_hooks import FrameEncoder, frame_encoder

logger = logging.getLogger(__name__)

FRAME_MS = 20
OPUS_BITRATE = 32000
OPUS_INPUT_RATES = frozenset({8000, 12000, 16000, 24000, 48000})  # what libopus encodes natively
G711 = frozenset({"pcm_mulaw", "pcm_alaw"})


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
    "g729": AudioCodec("G729", "g729", 8000, 8000),  # libbcg729, not FFmpeg (gateway/media/codecs/g729.py)
    "opus": AudioCodec("opus", "libopus", 48000, 48000),
}


def audio_codec(name: str) -> AudioCodec:
    codec = AUDIO_CODECS.get(name.lower())
    if codec is None:
        raise TranscodeError(f"no transcoder for codec {name!r}; known: {sorted(AUDIO_CODECS)}")
    return codec


def _context(ffmpeg: str, mode: str, sample_rate: int) -> AudioCodecContext:
    context = cast(AudioCodecContext, CodecContext.create(ffmpeg, mode))  # type: ignore[call-overload]
    context.format = "s16"
    context.layout = "mono"
    context.sample_rate = sample_rate
    if mode == "w":
        context.time_base = fractions.Fraction(1, sample_rate)
        if ffmpeg == "libopus":
            context.bit_rate = OPUS_BITRATE
            options = {"application": "voip", "frame_duration": str(FRAME_MS)}
            # a G.711 source: the fast lane's settings (gateway/media/codecs/opus_settings.py)
            if sample_rate == 8000:
                options |= opus_settings.current().ffmpeg_options()
            context.options = options
    context.open()
    return context


def _frame(pcm: bytes, rate: int) -> AudioFrame:
    frame = AudioFrame(format="s16", layout="mono", samples=len(pcm) // 2)
    frame.planes[0].update(pcm)
    frame.sample_rate = rate
    return frame


def _pcm(frame: AudioFrame) -> bytes:
    return bytes(frame.planes[0])[: 2 * frame.samples]


@dataclass(frozen=True, slots=True)
class _G711Tables:
    """G.711 as lookups: code -> each byte of the native-endian int16 sample; uint16 sample -> code."""

    first: bytes
    second: bytes
    encode: bytes

    @property
    def decode_pcm(self) -> bytes:
        """The 256 decoded samples as native-endian int16 (for the fast lane's engine)."""
        pcm = bytearray(512)
        pcm[0::2], pcm[1::2] = self.first, self.second
        return bytes(pcm)


@functools.cache
def g711_tables(ffmpeg: str) -> _G711Tables:
    """Built once per law by running every code and every 16-bit sample through FFmpeg's codec."""
    decoder = _context(ffmpeg, "r", 8000)
    decoded = b"".join(_pcm(frame) for frame in decoder.decode(av.Packet(bytes(range(256)))))
    encoder = _context(ffmpeg, "w", 8000)
    frame = _frame(array.array("H", range(65536)).tobytes(), 8000)
    frame.pts = 0
    encoded = b"".join(bytes(packet) for packet in encoder.encode(frame))
    if len(decoded) != 512 or len(encoded) != 65536:
        raise TranscodeError(f"unexpected {ffmpeg} table sizes {len(decoded)}, {len(encoded)}")
    return _G711Tables(decoded[0::2], decoded[1::2], encoded)


class Transcoder:
    """One direction: payloads of ``source`` in, 20 ms payloads of ``target`` out."""

    def __init__(self, source: str, target: str) -> None:
        self.source = audio_codec(source)
        self.target = audio_codec(target)
        self.errors = 0
        # Decoding: G.711 by table, Opus by libopus at the target's rate, G.729 by libbcg729, the others
        # by FFmpeg.
        self._decoder: AudioCodecContext | None = None
        self._decode_tables: _G711Tables | None = None
        self._opus: OpusDecoder | None = None
        self._g729: G729Decoder | None = None
        source_rate = self.source.sample_rate
        if self.source.ffmpeg in G711:
            self._decode_tables = g711_tables(self.source.ffmpeg)
        elif self.source.ffmpeg == "g729":
            self._g729 = G729Decoder()
        elif (
            self.source.ffmpeg == "libopus"
            and self.target.sample_rate in OPUS_DECODER_RATES
            and opus_available()
        ):
            self._opus = OpusDecoder(self.target.sample_rate)
            source_rate = self.target.sample_rate
        else:
            self._decoder = _context(self.source.ffmpeg, "r", self.source.sample_rate)
        # Encoding: G.711 by table, G.729 by libbcg729, the others by FFmpeg; Opus at the source's rate
        # when libopus can.
        rate = self.target.sample_rate
        if self.target.ffmpeg == "libopus" and source_rate in OPUS_INPUT_RATES:
            rate = source_rate
        self._rate = rate
        self._frame_bytes = 2 * rate * FRAME_MS // 1000
        self._encoder: AudioCodecContext | None = None
        self._send: FrameEncoder | None = None
        self._encode_bytes: Callable[[bytes], bytes] | None = None  # PCM -> payload, without FFmpeg
        if self.target.ffmpeg in G711:
            table = g711_tables(self.target.ffmpeg).encode
            self._encode_bytes = lambda pcm: bytes(
                cast(tuple[int, ...], operator.itemgetter(*memoryview(pcm).cast("H"))(table))
            )
        elif self.target.ffmpeg == "g729":
            self._encode_bytes = G729Encoder().encode
        else:
            self._encoder = _context(self.target.ffmpeg, "w", rate)
            self._send = frame_encoder(self._encoder)
        self._source_rate = source_rate
        self._resampler: AudioResampler | None = None
        if source_rate != rate:
            self._resampler = AudioResampler(
                format="s16", layout="mono", rate=rate, frame_size=rate * FRAME_MS // 1000
            )
        self._pending = bytearray()  # PCM at ``rate`` short of a whole 20 ms frame
        self._pts = 0
        # G.711 concealed by Appendix I at 8 kHz; G.722 the same way on its 16 kHz signal (g711_plc)
        self._plc: G711Concealer | None = None
        if self._decode_tables is not None:
            self._plc = G711Concealer()
        elif self.source.ffmpeg == "g722" and self._decoder is not None:
            self._plc = G711Concealer(self.source.sample_rate)
        self._ahead: tuple[bytes, bytes] | None = None  # a G.722 payload decoded to end a gap, and its PCM
        self.decode_rate = source_rate  # of the decoded PCM
        self.last_samples = 0  # decoded from the last payload (or concealed)

    def transcode(self, payload: bytes) -> list[bytes]:
        """Encoded output frames (zero, one or occasionally two) for one input payload."""
        if not payload:  # an empty packet would put FFmpeg's decoder into draining mode for good
            return []
        try:
            if self._decode_tables is not None:
                decoded = self._decode_g711(payload, self._decode_tables)
                pcm: bytes | list[AudioFrame] = decoded if self._plc is None else self._plc.good(decoded)
            elif self._opus is not None:
                pcm = self._opus.decode(payload)
            elif self._g729 is not None:
                pcm = self._g729.decode(payload)
            elif self._plc is not None:  # G.722: its PCM, remembered for the concealment
                pcm = self._plc.good(self._decode_ahead(payload))
            else:
                assert self._decoder is not None
                pcm = self._decoder.decode(av.Packet(payload))
            return self._encode_decoded(pcm)
        except (av.FFmpegError, ValueError, OpusDecodeError, G729Error) as exc:
            self.errors += 1
            logger.debug("transcoding %s -> %s failed: %s", self.source.name, self.target.name, exc)
            return []

    def _decode_ahead(self, payload: bytes) -> bytes:
        """A G.722 payload's PCM: the one ``conceal`` decoded already when it ended a gap (the decoder is
        ADPCM: decoding it twice would move its state on twice), else decoded now."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == payload:
            return ahead[1]
        assert self._decoder is not None
        return b"".join(_pcm(frame) for frame in self._decoder.decode(av.Packet(payload)))

    @property
    def conceals(self) -> bool:
        """Whether ``conceal`` can fill lost frames (Opus through libopus, G.711, G.722, G.729)."""
        return self._opus is not None or self._plc is not None or self._g729 is not None

    def conceal(
        self, frames: int, following: bytes | None = None, copies: Sequence[bytes | None] = ()
    ) -> list[bytes]:
        """Encoded output for ``frames`` lost 20 ms input frames, in order: Opus from a redundant copy of
        the frame (``copies[i]``, RFC 2198) when there is one, else from the in-band FEC of the next one's
        copy, or of ``following`` (the packet after them) for the last, libopus PLC when none carries FEC
        (or none is there); G.711 by ITU-T G.711
        Appendix I (``g711_plc``), G.722 the same way at 16 kHz, ``following`` decoded once (kept for the
        ``transcode`` of it that comes next); G.729 by its decoder's frame erasure (G.729 §4.4). Nothing
        when the source cannot be concealed."""
        if frames <= 0 or not self.conceals:
            return []
        samples = self._source_rate * FRAME_MS // 1000
        try:
            if self._opus is not None:
                opus = self._opus
                # a frame's FEC is in the packet after the gap for the last one, else in the next one's copy
                fec = [
                    *(copies[i + 1] if i + 1 < len(copies) else None for i in range(frames - 1)),
                    following,
                ]
                pcm = b"".join(
                    (self._copy(opus, copies[i]) if i < len(copies) else b"")
                    or self._fec(opus, samples, fec[i])
                    for i in range(frames)
                )
            elif self._g729 is not None:
                pcm = self._g729.conceal(samples * frames)
            else:
                assert self._plc is not None
                after = b""
                if following and self._decode_tables is not None:
                    after = self._decode_g711(following, self._decode_tables)
                elif following:
                    after = self._decode_ahead(following)
                    self._ahead = (following, after)
                pcm = self._plc.conceal(samples * frames, after)
            return self._encode_decoded(pcm)
        except (av.FFmpegError, ValueError, OpusDecodeError, G729Error) as exc:
            self.errors += 1
            logger.debug("concealing %s -> %s failed: %s", self.source.name, self.target.name, exc)
            return []

    def _fec(self, opus: OpusDecoder, samples: int, following: bytes | None) -> bytes:
        """A lost frame from ``following``'s in-band FEC; libopus's PLC when that packet does not decode (a
        malformed redundant copy), so that one bad copy does not cost the whole gap its concealment."""
        try:
            return opus.conceal(samples, following)
        except OpusDecodeError:
            if following is None:
                raise
            self.errors += 1
            return opus.conceal(samples, None)

    def _copy(self, opus: OpusDecoder, payload: bytes | None) -> bytes:
        """A lost frame decoded from its redundant copy; nothing (concealed then) when it is not Opus."""
        if not payload:
            return b""
        try:
            return opus.decode(payload)
        except OpusDecodeError:
            self.errors += 1
            return b""

    def _encode_decoded(self, pcm: bytes | list[AudioFrame]) -> list[bytes]:
        if isinstance(pcm, bytes):
            self.last_samples = len(pcm) // 2
        else:
            self.last_samples = sum(frame.samples for frame in pcm)
        if self._resampler is None:
            return self._encode_pcm(pcm if isinstance(pcm, bytes) else b"".join(map(_pcm, pcm)))
        if isinstance(pcm, bytes):
            pcm = [_frame(pcm, self._source_rate)] if pcm else []
        out: list[bytes] = []
        for frame in pcm:
            frame.pts = None
            for resampled in self._resampler.resample(frame):  # 20 ms frames (frame_size)
                out += self._encode_frame(resampled)
        return out

    @staticmethod
    def _decode_g711(payload: bytes, tables: _G711Tables) -> bytes:
        pcm = bytearray(2 * len(payload))
        pcm[0::2] = payload.translate(tables.first)
        pcm[1::2] = payload.translate(tables.second)
        return bytes(pcm)

    def _encode_pcm(self, pcm: bytes) -> list[bytes]:
        """Encode whole 20 ms frames of ``pcm`` (at the encoder's rate), keeping any remainder."""
        size = self._frame_bytes
        if self._pending or len(pcm) != size:
            self._pending += pcm
            chunks = [
                bytes(self._pending[i : i + size]) for i in range(0, len(self._pending) - size + 1, size)
            ]
            del self._pending[: size * len(chunks)]
        else:
            chunks = [pcm]
        out: list[bytes] = []
        for chunk in chunks:
            if self._encode_bytes is not None:
                out.append(self._encode_bytes(chunk))
            else:
                out += self._encode_frame(_frame(chunk, self._rate))
        return out

    def _encode_frame(self, frame: AudioFrame) -> list[bytes]:
        if self._encode_bytes is not None:
            return [self._encode_bytes(_pcm(frame))]
        assert self._send is not None
        frame.pts = self._pts
        self._pts += frame.samples
        return [bytes(packet) for packet in self._send(frame)]
