"""One stream's frames, sans-I/O: each leg's PCM queued as it comes, taken 20 ms at a time by the
stream's clock and sent as one binary frame, and the app's audio waiting to be mixed in.

``StreamFrames.push(leg, pcm)`` queues a leg's PCM (at most ``MAX_QUEUED_MS``: a leg that runs ahead of
the clock loses its oldest audio, so the delay stays bounded); ``frames()`` is one tick's binary frames:
with ``pcm16`` one frame of interleaved 16-bit little-endian stereo (left: the web user, right: the SIP
party), a missing leg's part silent; with ``opus`` one frame per leg that has audio, a byte naming the
channel (0 web, 1 SIP) then one Opus packet of that leg's 20 ms (mono, at the stream's rate). The app's
binary frames (16-bit little-endian mono PCM at the stream's rate) wait in ``inject``'s queue, one per
side the app's audio goes to (``Inject``), at most ``MAX_INJECT_S`` seconds (beyond, the oldest is
dropped and counted); ``injected(side, samples)`` takes what one forwarded packet carries.
"""

from __future__ import annotations

import enum
import sys
from typing import Final

from gateway.media.codecs.pcm_codec import PcmCodec, PcmFormat
from gateway.media.events import Leg
from gateway.media.streaming import pcm

MAX_QUEUED_MS: Final = 120  # per leg, before the oldest is dropped
MAX_INJECT_S: Final = 30  # of the app's audio waiting, per side
CHANNEL_BYTE: Final = {Leg.WEB: b"\x00", Leg.SIP: b"\x01"}


class Encoding(enum.StrEnum):
    PCM16 = "pcm16"
    OPUS = "opus"


class Inject(enum.StrEnum):
    """Where the app's audio is mixed in: what the SIP party hears, the web user, both, or nowhere."""

    NONE = "none"
    SIP = "sip"
    WEB = "web"
    BOTH = "both"

    def sides(self) -> tuple[Leg, ...]:
        """The legs whose far end hears the app (SIP: mixed into the web user's audio, and so on)."""
        return {Inject.NONE: (), Inject.SIP: (Leg.SIP,), Inject.WEB: (Leg.WEB,)}.get(self, (Leg.SIP, Leg.WEB))


def _wire(data: bytes) -> bytes:
    """Native-endian 16-bit samples as little-endian (and back: the same swap)."""
    if sys.byteorder == "little":
        return data
    samples = pcm.samples(data)
    samples.byteswap()
    return samples.tobytes()


class StreamFrames:
    def __init__(self, rate: int, encoding: Encoding = Encoding.PCM16, inject: Inject = Inject.NONE) -> None:
        if rate not in pcm.RATES:
            raise ValueError(f"sample_rate must be one of {list(pcm.RATES)}, got {rate!r}")
        self.rate = rate
        self.encoding = encoding
        self.inject_to = inject
        self.frame = pcm.frame_bytes(rate)
        self._queued = {Leg.WEB: bytearray(), Leg.SIP: bytearray()}
        self._max = self.frame * MAX_QUEUED_MS // pcm.FRAME_MS
        self._inject = {leg: bytearray() for leg in inject.sides()}
        self._max_inject = 2 * rate * MAX_INJECT_S
        self._encoders: dict[Leg, PcmCodec] = {}
        self.sent = 0  # ticks
        self.dropped = 0  # bytes of a leg's audio dropped (it ran ahead)
        self.inject_dropped = 0  # bytes of the app's audio dropped (it sent too much at once)
        self.injected_bytes = 0  # bytes of the app's audio received

    def push(self, leg: Leg, data: bytes) -> None:
        queue = self._queued[leg]
        queue += data
        if len(queue) > self._max:
            over = len(queue) - self._max + self.frame  # back to one frame under the bound
            del queue[: over & ~1]
            self.dropped += over & ~1

    def frames(self) -> list[bytes]:
        """One tick's binary frames (see the module note)."""
        self.sent += 1
        parts = {leg: self._take(leg) for leg in (Leg.WEB, Leg.SIP)}
        if self.encoding is Encoding.PCM16:
            silence = bytes(self.frame)
            return [_wire(pcm.interleave(parts[Leg.WEB] or silence, parts[Leg.SIP] or silence))]
        out = []
        for leg, data in parts.items():
            if data:
                encoder = self._encoders.get(leg)
                if encoder is None:
                    encoder = self._encoders[leg] = PcmCodec("opus", PcmFormat(self.rate))
                out += [CHANNEL_BYTE[leg] + packet for packet in encoder.encode(data)]
        return out

    def _take(self, leg: Leg) -> bytes:
        queue = self._queued[leg]
        if not queue:
            return b""
        data = bytes(queue[: self.frame])
        del queue[: self.frame]
        return data + bytes(self.frame - len(data))

    def inject(self, data: bytes) -> None:
        """A binary frame from the app: its PCM queued for each side it goes to. ValueError: an odd
        number of bytes (not 16-bit samples)."""
        if len(data) % 2:
            raise ValueError(f"a binary frame from the app must hold 16-bit samples, got {len(data)} bytes")
        self.injected_bytes += len(data)
        native = _wire(data)
        for queue in self._inject.values():
            queue += native
            if len(queue) > self._max_inject:
                over = len(queue) - self._max_inject
                del queue[:over]
                self.inject_dropped += over

    def injected(self, side: Leg, samples: int) -> bytes:
        """Up to ``samples`` of the app's PCM for a packet towards ``side`` (b"": none waiting)."""
        queue = self._inject.get(side)
        if not queue:
            return b""
        data = bytes(queue[: 2 * samples])
        del queue[: 2 * samples]
        return data

    def close(self) -> None:
        for encoder in self._encoders.values():
            encoder.close()
        self._encoders.clear()
