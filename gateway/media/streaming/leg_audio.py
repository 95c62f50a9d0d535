"""One leg's audio for a stream: RTP payloads of the codec the leg negotiated decoded to PCM at the
stream's rate, and, where the app's audio goes to the other side, the payload re-encoded with that audio
mixed in (``LegAudio.hear``).

G.711 is decoded and encoded by table at 8 kHz (converted to and from a 16 kHz stream: ``pcm``), Opus by
libopus at the stream's rate and re-encoded from it (``PcmCodec``, the rooms' mixer's codec); RFC 2198
``red`` is unwrapped to its primary (the packet then goes on as plain Opus when it is mixed into);
telephone-events and codecs that cannot be decoded here (G.722, G.729) are passed on untouched and leave
the stream's channel silent (logged once). A payload that fails to decode counts in ``errors``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from gateway.media.codecs.codec_choice import LegCodecs
from gateway.media.codecs.pcm_codec import PcmCodec, PcmFormat
from gateway.media.codecs.transcode import TranscodeError
from gateway.media.rtp import red
from gateway.media.streaming import pcm

logger = logging.getLogger(__name__)

DECODED = ("pcmu", "pcma", "opus")


@dataclass(frozen=True, slots=True)
class Heard:
    """What ``hear`` made of one packet: the payload type and payload to forward, and its PCM at the
    stream's rate (b"": not audio this stream can decode)."""

    payload_type: int
    payload: bytes
    pcm: bytes = b""


class LegAudio:
    """One leg of one stream (see the module note); ``name``: "web" or "sip", for the logs."""

    def __init__(self, rate: int, *, name: str, call_id: str = "-") -> None:
        if rate not in pcm.RATES:
            raise ValueError(f"sample_rate must be one of {list(pcm.RATES)}, got {rate!r}")
        self.rate = rate
        self.name = name
        self._call = call_id
        self._codec: PcmCodec | None = None
        self._codec_name = ""
        self._refused: set[str] = set()
        self.errors = 0

    def hear(
        self, payload_type: int, payload: bytes, codecs: LegCodecs | None, injected: Callable[[int], bytes]
    ) -> Heard:
        """The packet's PCM, and what to forward: ``injected(samples)`` gives the app's PCM at the
        stream's rate to mix in (b"": none waiting, the packet is forwarded untouched)."""
        codec = codecs.incoming.get(payload_type) if codecs is not None else None
        if codec is None or codec.is_telephone_event:
            return Heard(payload_type, payload)
        if codec.name.lower() == red.RED_NAME:
            blocks = red.unpack(payload, 0)
            inner = codecs.incoming.get(blocks[-1].payload_type) if blocks and codecs else None
            if not blocks or inner is None:
                return Heard(payload_type, payload)
            unwrapped, codec = blocks[-1], inner
            return self._decoded(
                unwrapped.payload_type, unwrapped.payload, codec.name, injected, payload_type, payload
            )
        return self._decoded(payload_type, payload, codec.name, injected, payload_type, payload)

    def _decoded(
        self,
        payload_type: int,
        payload: bytes,
        name: str,
        injected: Callable[[int], bytes],
        original_type: int,
        original: bytes,
    ) -> Heard:
        codec = self._codec_for(name.lower())
        if codec is None:
            return Heard(original_type, original)
        native = codec.decode(payload)
        if not native:
            self.errors += 1
            return Heard(original_type, original)
        own = pcm.convert(native, codec.pcm.rate, self.rate)
        extra = injected(len(own) // 2)
        if not extra or (codec.name == "opus" and len(native) != codec.pcm.frame_bytes):
            return Heard(original_type, original, own)
        mixed = pcm.mix(native, pcm.convert(extra, self.rate, codec.pcm.rate))
        encoded = codec.encode(mixed)
        if not encoded:  # the Opus encoder fills its look-ahead first
            return Heard(original_type, original, own)
        return Heard(payload_type, encoded[0], own)

    def _codec_for(self, name: str) -> PcmCodec | None:
        if name == self._codec_name:
            return self._codec
        if self._codec is not None:
            self._codec.close()
        self._codec, self._codec_name = None, name
        if name in DECODED:
            try:
                self._codec = PcmCodec(name, PcmFormat(8000 if name != "opus" else self.rate))
            except TranscodeError as exc:
                logger.warning("call=%s audio stream: %s leg's %s: %s", self._call, self.name, name, exc)
        if self._codec is None and name not in self._refused:
            self._refused.add(name)
            logger.warning(
                "call=%s audio stream: the %s leg's codec %s is not streamed (silence)",
                self._call,
                self.name,
                name,
            )
        return self._codec

    def close(self) -> None:
        if self._codec is not None:
            self._codec.close()
            self._codec = None
