"""A small audio toolkit for tests, examples and benchmarks: tones, a Goertzel detector, G.711 via
PyAV, WAV reading, and a plain RTP peer.

* ``sine(freq, rate, seconds)``: a tone as int16 PCM (``array('h')``).
* ``tone_ratio(samples, rate, freq)``: the Goertzel power at ``freq`` relative to the block's total power
  (about 1.0 for a pure tone at that frequency, about 0 for silence or another tone).
* ``detect_tone(samples, rate, freq)``: that ratio above a threshold, and not silence.
* ``ulaw_encode`` / ``ulaw_decode`` (and ``alaw_*``): G.711 through PyAV's pcm_mulaw / pcm_alaw codecs,
  the same ones aiortc's ``codecs/g711.py`` uses.
* ``encode_tone(freq, codec)``: one second of a tone encoded once (PCMU or Opus), to loop over.
* ``read_wav(path)``, ``wait_for_tone(source, freq)``: a phone's recording; a tone in a peer's last second.
* ``G722``: G.722 through PyAV (FFmpeg's g722) at 16 kHz: wideband, under RTP's 8000 Hz clock.
* ``Opus``: Opus as a SIP phone sends it (libopus, VOIP, in-band FEC on), decoded by libopus at 48 kHz.
* ``RtpTonePeer``: a plain RTP (PCMU, PT 0) peer on 127.0.0.1 that sends a tone paced every 20 ms with
  consecutive sequence numbers and timestamps, and records what it receives, decoded to PCM (or, with
  ``record=False`` for benchmarks, only counts it).
"""

from __future__ import annotations

import array
import asyncio
import fractions
import functools
import math
import random
import wave
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, cast

from av import AudioCodecContext, AudioFrame, CodecContext, Packet

from gateway.media.errors import PacketError
from gateway.media.rtp.packet import RtpPacket

RATE = 8000
FRAME_SAMPLES = 160  # 20 ms at 8 kHz
FRAME_SECONDS = 0.020
PT_PCMU = 0
PT_PCMA = 8
PT_G722 = 9
PT_G729 = 18
PT_OPUS = 111  # the gateway's own dynamic payload type for opus/48000/2 (codec_choice.KNOWN)


def sine(
    freq: float, rate: int = RATE, seconds: float = 1.0, amplitude: int = 8000, phase: float = 0.0
) -> array.array[int]:
    count = round(rate * seconds)
    step = 2 * math.pi * freq / rate
    return array.array("h", (round(amplitude * math.sin(phase + step * i)) for i in range(count)))


def silence(rate: int = RATE, seconds: float = 1.0) -> array.array[int]:
    return array.array("h", bytes(2 * round(rate * seconds)))


def tone_ratio(samples: Iterable[int], rate: int, freq: float) -> float:
    """Goertzel power at ``freq`` over total power of the block (Parseval-normalized: 1.0 = pure tone)."""
    data = list(samples)
    n = len(data)
    energy = float(sum(x * x for x in data))
    if n == 0 or energy == 0.0:
        return 0.0
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s_prev = s_prev2 = 0.0
    for x in data:
        s_prev, s_prev2 = x + coeff * s_prev - s_prev2, s_prev
    power = s_prev * s_prev + s_prev2 * s_prev2 - coeff * s_prev * s_prev2  # |X(freq)|^2
    return 2 * power / (n * energy)


def rms(samples: Iterable[int]) -> float:
    data = list(samples)
    return math.sqrt(sum(x * x for x in data) / len(data)) if data else 0.0


def detect_tone(
    samples: Iterable[int], rate: int, freq: float, *, threshold: float = 0.5, min_rms: float = 100.0
) -> bool:
    data = list(samples)
    return rms(data) >= min_rms and tone_ratio(data, rate, freq) >= threshold


def has_tone(
    samples: Sequence[int],
    rate: int,
    freq: float,
    *,
    threshold: float = 0.5,
    min_rms: float = 100.0,
    block_s: float = 0.5,
) -> bool:
    """`freq` in at least half of the blocks of `block_s` that are not silent (and in one at least).

    One Goertzel over a whole recording needs the tone's phase to hold from end to end: a real stream's
    phase jumps (a jitter buffer's resync, a concealed packet, two phones' clocks) make the halves cancel,
    and a recording that holds the tone all along reads as 0.29. Blocks of half a second each hold one
    phase; silent blocks (hold, before the media starts) count neither way."""
    size = max(1, round(block_s * rate))
    blocks = [samples[start : start + size] for start in range(0, len(samples), size)]
    blocks = [block for block in blocks if len(block) >= size // 2 and rms(block) >= min_rms]
    found = sum(tone_ratio(block, rate, freq) >= threshold for block in blocks)
    return found > 0 and 2 * found >= len(blocks)


class G711:
    """G.711 through PyAV (``pcm_mulaw`` or ``pcm_alaw``): int16 PCM <-> one byte per sample."""

    def __init__(self, codec: str = "pcm_mulaw", rate: int = RATE) -> None:
        self.rate = rate
        self._encoder = cast(AudioCodecContext, CodecContext.create(codec, "w"))
        self._decoder = cast(AudioCodecContext, CodecContext.create(codec, "r"))
        for context in (self._encoder, self._decoder):
            context.format = "s16"
            context.layout = "mono"
            context.sample_rate = rate
        self._encoder.time_base = fractions.Fraction(1, rate)
        self._pts = 0

    def encode(self, samples: array.array[int]) -> bytes:
        if not samples:
            return b""
        frame = AudioFrame(format="s16", layout="mono", samples=len(samples))
        frame.planes[0].update(samples.tobytes())
        frame.sample_rate = self.rate
        frame.pts = self._pts
        self._pts += len(samples)
        return b"".join(bytes(packet) for packet in self._encoder.encode(frame))

    def decode(self, data: bytes) -> array.array[int]:
        out = array.array("h")
        if not data:
            return out
        for frame in self._decoder.decode(Packet(data)):
            out.frombytes(bytes(frame.planes[0])[: 2 * frame.samples])
        return out


class G722(G711):
    """G.722 through PyAV (FFmpeg's ``g722``): int16 PCM at 16 kHz <-> 64 kbit/s, 160 bytes per 20 ms under
    an RTP clock of 8000 Hz (RFC 3551 §4.5.2). One encoder and one decoder, as a phone has."""

    def __init__(self) -> None:
        super().__init__("g722", 16000)


class G729:
    """G.729 through libbcg729 (the gateway's ``gateway/media/codecs/g729.py``): int16 PCM at 8 kHz <->
    10 bytes per 10 ms. One encoder and one decoder, as a phone has."""

    rate = RATE

    def __init__(self) -> None:
        from gateway.media.codecs.g729 import G729Decoder, G729Encoder

        self._encoder, self._decoder = G729Encoder(), G729Decoder()

    def encode(self, samples: array.array[int]) -> bytes:
        return self._encoder.encode(samples.tobytes())

    def decode(self, data: bytes) -> array.array[int]:
        return array.array("h", self._decoder.decode(data))


class Opus:
    """Opus as a SIP phone (Asterisk, FreeSWITCH) sends it: libopus through PyAV, VOIP at 32 kbit/s, in-band
    FEC on and told to expect 10 % loss (so every packet carries the LBRR copy of the one before, RFC 6716
    §2.1.7); decoded by libopus at 48 kHz (``gateway.media.codecs.opus_decoder``). One of each, as a phone."""

    rate = 48000

    def __init__(self, rate: int = 48000) -> None:
        """``rate``: of the PCM in and out (libopus takes 8-48 kHz; the RTP clock stays 48000)."""
        from gateway.media.codecs.opus_decoder import OpusDecoder

        self.rate = rate

        self._encoder = CodecContext.create("libopus", "w")
        self._encoder.format, self._encoder.layout, self._encoder.sample_rate = "s16", "mono", self.rate
        self._encoder.bit_rate = 32000
        self._encoder.options = {"application": "voip", "fec": "1", "packet_loss": "10"}
        self._encoder.time_base = fractions.Fraction(1, self.rate)
        self._decoder = OpusDecoder(self.rate)
        self._pts = 0

    def encode(self, samples: array.array[int]) -> bytes:
        frame = AudioFrame(format="s16", layout="mono", samples=len(samples))
        frame.planes[0].update(samples.tobytes())
        frame.sample_rate, frame.pts = self.rate, self._pts
        self._pts += len(samples)
        return b"".join(bytes(packet) for packet in self._encoder.encode(frame))

    def decode(self, data: bytes) -> array.array[int]:
        return array.array("h", self._decoder.decode(data))


# libopus's bands by their top (FFmpeg's libopus "cutoff" option), from the playback rate they serve
_OPUS_CUTOFFS = ((8000, 4000), (12000, 6000), (16000, 8000), (24000, 12000))


@functools.cache
def encode_tone(
    freq: float, codec: str, frames: int = 50, max_playback_rate: int | None = None, voip: bool = False
) -> list[bytes]:
    """``frames`` 20 ms frames of a tone, encoded once (``"pcmu"`` at 8 kHz or ``"opus"`` at 48 kHz).
    ``max_playback_rate``: the receiver's Opus ``maxplaybackrate`` (RFC 7587), which caps the band as a
    browser's encoder does (8000: narrowband); ``voip``: libopus's VOIP application at 32 kbit/s, as
    browsers encode speech (SILK or hybrid where FFmpeg's default, ~88 kbit/s, picks CELT for a tone).

    Fifty frames are one second: for a whole number of hertz, looping over them is seamless."""
    rate = 48000 if codec == "opus" else RATE
    encoder = CodecContext.create("libopus" if codec == "opus" else "pcm_mulaw", "w")
    encoder.format, encoder.layout, encoder.sample_rate = "s16", "mono", rate
    if codec == "opus":
        options = {"application": "voip"} if voip else {}
        cutoff = next((c for top, c in _OPUS_CUTOFFS if (max_playback_rate or 48000) <= top), None)
        if cutoff is not None:
            options["cutoff"] = str(cutoff)
        if options:
            encoder.options = options
        if voip:
            encoder.bit_rate = 32000  # libwebrtc's default for mono Opus
    encoder.time_base = fractions.Fraction(1, rate)
    size = rate // 50
    out: list[bytes] = []
    for index in range(frames + 3):  # an encoder may hold a few frames back
        frame = AudioFrame(format="s16", layout="mono", samples=size)
        frame.planes[0].update(
            sine(freq, rate, 0.020, phase=2 * math.pi * freq * index * size / rate).tobytes()
        )
        frame.sample_rate, frame.pts = rate, index * size
        out += [bytes(packet) for packet in encoder.encode(frame)]
    return out[:frames]


def read_wav(path: Path) -> tuple[int, array.array[int]]:
    """The sample rate and int16 samples of a mono 16-bit WAV file (a desk phone's recording)."""
    with wave.open(str(path), "rb") as wav:
        if (wav.getnchannels(), wav.getsampwidth()) != (1, 2):
            raise ValueError(f"{path}: expected mono 16-bit PCM")
        return wav.getframerate(), array.array("h", wav.readframes(wav.getnframes()))


class HasPcm(Protocol):
    @property
    def pcm(self) -> array.array[int]: ...


async def wait_for_tone(source: HasPcm, freq: float, timeout: float = 10.0) -> bool:
    """Wait until the last second of ``source.pcm`` (8 kHz) holds ``freq``; False after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if len(source.pcm) >= RATE and detect_tone(source.pcm[-RATE:], RATE, freq):
            return True
        await asyncio.sleep(0.1)
    return False


def ulaw_encode(samples: array.array[int]) -> bytes:
    return G711("pcm_mulaw").encode(samples)


def ulaw_decode(data: bytes) -> array.array[int]:
    return G711("pcm_mulaw").decode(data)


def alaw_encode(samples: array.array[int]) -> bytes:
    return G711("pcm_alaw").encode(samples)


def alaw_decode(data: bytes) -> array.array[int]:
    return G711("pcm_alaw").decode(data)


class _PeerProtocol(asyncio.DatagramProtocol):
    def __init__(self, peer: RtpTonePeer) -> None:
        self.peer = peer

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.peer._received(data, addr)


class RtpTonePeer:
    """A tiny plain-RTP PCMU peer on 127.0.0.1: sends paced tones, records and decodes what it receives.
    ``payload_type`` 8 makes it a PCMA peer, 18 a G.729 one (``G729``, libbcg729).

    ``payload_type`` 9 a G.722 one (``G722``: its tones and ``pcm`` are at 16 kHz, ``rate``), 111 an Opus
    one (``Opus``: 48 kHz, RTP clock 48000).

    ``frames`` counts received PCMU packets; ``pcm`` holds them decoded in arrival order; ``packets``
    keeps every parsed RTP packet and ``sources`` the addresses they came from. ``srtp`` (e.g. a
    ``gateway.media.rtp.srtp.SdesSrtp`` with the peer's key as ``ours``) makes it an SRTP phone: RTP is
    protected on the way out and unprotected on the way in (what does not authenticate goes to
    ``other``); ``send_raw`` and RTCP are left as they are.
    """

    def __init__(self, payload_type: int = PT_PCMU, ssrc: int | None = None, *, record: bool = True) -> None:
        rng = random.Random()
        self.record = record
        self.received = 0
        self.payload_type = payload_type
        self.ssrc = rng.getrandbits(32) if ssrc is None else ssrc
        self.sequence = rng.getrandbits(16)
        self.timestamp = rng.getrandbits(32)
        self.remote: tuple[str, int] | None = None
        self.packets: list[RtpPacket] = []
        self.sources: list[tuple[str, int]] = []
        self.other: list[bytes] = []  # datagrams that were not RTP (e.g. RTCP with rtcp-mux)
        self.pcm = array.array("h")
        self.sent = 0
        self._codec: G711 | G729 | Opus = (
            G729()
            if payload_type == PT_G729
            else G722()
            if payload_type == PT_G722
            else Opus()
            if payload_type == PT_OPUS
            else G711("pcm_mulaw" if payload_type == PT_PCMU else "pcm_alaw")
        )
        self.rate = self._codec.rate  # of tones and ``pcm``
        self.clock = 48000 if payload_type == PT_OPUS else RATE  # RTP's (G.722's is 8000: RFC 3551 §4.5.2)
        self._transport: asyncio.DatagramTransport | None = None
        self._phase = 0.0
        self.srtp: Any = (
            None  # protect(bytes) -> bytes, unprotect(bytes) -> bytes (raises when not authentic)
        )

    async def start(self, port: int = 0) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _PeerProtocol(self), local_addr=("127.0.0.1", port)
        )
        self._transport = transport
        return self.address

    @property
    def address(self) -> tuple[str, int]:
        if self._transport is None:
            raise RuntimeError("peer not started")
        host, port = self._transport.get_extra_info("sockname")[:2]
        return (host, port)

    @property
    def frames(self) -> int:
        return sum(1 for p in self.packets if p.payload_type == self.payload_type)

    def heard(self, freq: float, *, threshold: float = 0.5) -> bool:
        return detect_tone(self.pcm, self.rate, freq, threshold=threshold)

    def send_frame(
        self, samples: array.array[int], *, marker: bool = False, remote: tuple[str, int] | None = None
    ) -> None:
        """Send one frame now with the next sequence number and timestamp (in the codec's RTP clock)."""
        ticks = len(samples) * self.clock // self.rate
        self.send_payload(self._codec.encode(samples), ticks, marker=marker, remote=remote)

    def send_payload(
        self, payload: bytes, samples: int, *, marker: bool = False, remote: tuple[str, int] | None = None
    ) -> None:
        """Send an encoded frame of ``samples`` samples now, as the next packet of the stream."""
        destination = remote or self.remote
        if self._transport is None or destination is None:
            raise RuntimeError("peer not started or no remote address")
        data = RtpPacket(
            self.payload_type, self.sequence, self.timestamp, self.ssrc, payload, marker
        ).serialize()
        self._transport.sendto(data if self.srtp is None else self.srtp.protect(data), destination)
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + samples) & 0xFFFF_FFFF
        self.sent += 1

    def send_raw(self, data: bytes, remote: tuple[str, int] | None = None) -> None:
        destination = remote or self.remote
        if self._transport is None or destination is None:
            raise RuntimeError("peer not started or no remote address")
        self._transport.sendto(data, destination)

    async def send_tone(
        self, freq: float, seconds: float, *, amplitude: int = 8000, remote: tuple[str, int] | None = None
    ) -> int:
        """Send a tone in 20 ms frames paced on the loop clock (no drift); returns the frames sent."""
        step = 2 * math.pi * freq / self.rate

        def next_frame(index: int) -> bytes:
            samples = sine(freq, self.rate, FRAME_SECONDS, amplitude, self._phase)
            self._phase = (self._phase + step * round(self.rate * FRAME_SECONDS)) % (2 * math.pi)
            return self._codec.encode(samples)

        return await self._send_paced(round(seconds / FRAME_SECONDS), next_frame, remote)

    async def send_encoded(
        self, payloads: list[bytes], seconds: float, *, remote: tuple[str, int] | None = None
    ) -> int:
        """Loop over pre-encoded 20 ms payloads (``encode_tone``) for ``seconds``: the cheapest sender."""
        return await self._send_paced(
            round(seconds / FRAME_SECONDS), lambda index: payloads[index % len(payloads)], remote
        )

    async def _send_paced(
        self, frames: int, payload_of: Callable[[int], bytes], remote: tuple[str, int] | None
    ) -> int:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for index in range(frames):
            ticks = round(self.clock * FRAME_SECONDS)
            self.send_payload(payload_of(index), ticks, marker=index == 0, remote=remote)
            delay = start + (index + 1) * FRAME_SECONDS - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        return frames

    def _received(self, data: bytes, addr: tuple[str, int]) -> None:
        rtcp = len(data) >= 2 and 192 <= data[1] <= 223  # RFC 5761 §4
        if self.srtp is not None and not rtcp:
            try:
                data = self.srtp.unprotect(data)
            except Exception:  # not authentic (pylibsrtp.Error): not heard
                self.other.append(data)
                return
        if not self.record:
            self.received += 1
            return
        if rtcp:
            self.other.append(data)
            return
        try:
            packet = RtpPacket.parse(data)
        except PacketError:
            self.other.append(data)
            return
        self.received += 1
        self.packets.append(packet)
        self.sources.append(addr)
        if packet.payload_type == self.payload_type:
            self.pcm.extend(self._codec.decode(packet.payload))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
