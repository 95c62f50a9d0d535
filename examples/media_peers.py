"""Stand-ins for the two ends of a call, for the media examples and the media benchmark (no SIP).

* ``BrowserPeer``: an aiortc RTCPeerConnection on 127.0.0.1, like a browser tab. It plays a tone and
  decodes what it hears, or (``raw=True``, for the benchmark) sends pre-encoded payloads and only counts
  what arrives, so that it costs as little CPU as possible.
* ``PlainPhone``: a plain RTP/AVP PCMU "desk phone" on a UDP socket: sends a paced tone, keeps what it hears.
* ``heard(samples, freq)``: the Goertzel tone detector (the power at ``freq`` over the total power).
"""

from __future__ import annotations

import array
import asyncio
import fractions
import functools
import math
import random
import struct
from typing import Any, cast

from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioCodecContext, AudioFrame, AudioResampler, CodecContext, Packet

from gateway.media import aiortc_hooks

RATE = 8000


def sine(freq: float, count: int, start: int = 0, amplitude: int = 8000) -> array.array[int]:
    step = 2 * math.pi * freq / RATE
    return array.array("h", (round(amplitude * math.sin(step * (start + i))) for i in range(count)))


def heard(samples: array.array[int], freq: float) -> bool:
    """True when ``freq`` carries more than half of the block's power (and the block is not silence)."""
    data = samples.tolist()
    energy = float(sum(x * x for x in data))
    if len(data) < 800 or energy / len(data) < 100**2:
        return False
    coeff = 2 * math.cos(2 * math.pi * freq / RATE)
    s1 = s2 = 0.0
    for x in data:
        s1, s2 = x + coeff * s1 - s2, s1
    return 2 * (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (len(data) * energy) > 0.5


def _codec(name: str, mode: str, rate: int) -> AudioCodecContext:
    context = cast(AudioCodecContext, CodecContext.create(name, mode))  # type: ignore[call-overload]
    context.format, context.layout, context.sample_rate = "s16", "mono", rate
    if mode == "w":
        context.time_base = fractions.Fraction(1, rate)
    return context


@functools.cache
def encode_tone(freq: float, codec: str, frames: int = 50) -> list[bytes]:
    """``frames`` 20 ms frames of a tone, encoded once (PCMU at 8 kHz or Opus at 48 kHz), to loop over."""
    rate = 48000 if codec == "opus" else RATE
    encoder = _codec("libopus" if codec == "opus" else "pcm_mulaw", "w", rate)
    size = rate // 50
    out: list[bytes] = []
    for index in range(frames + 3):
        step = 2 * math.pi * freq / rate
        samples = array.array("h", (round(8000 * math.sin(step * (index * size + i))) for i in range(size)))
        frame = AudioFrame(format="s16", layout="mono", samples=size)
        frame.planes[0].update(samples.tobytes())
        frame.sample_rate, frame.pts = rate, index * size
        out += [bytes(p) for p in encoder.encode(frame)]
    return out[:frames]


class ToneTrack(MediaStreamTrack):
    """20 ms frames of a tone at 8 kHz, paced in real time; aiortc encodes them for the negotiated codec."""

    kind = "audio"

    def __init__(self, freq: float) -> None:
        super().__init__()
        self.freq, self._pts, self._start = freq, 0, 0.0

    async def recv(self) -> AudioFrame:
        loop = asyncio.get_running_loop()
        if self._pts == 0:
            self._start = loop.time()
        delay = self._start + self._pts / RATE - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        frame = AudioFrame(format="s16", layout="mono", samples=160)
        frame.planes[0].update(sine(self.freq, 160, self._pts).tobytes())
        frame.sample_rate, frame.pts, frame.time_base = RATE, self._pts, fractions.Fraction(1, RATE)
        self._pts += 160
        return frame


class BrowserPeer:
    def __init__(self, freq: float, *, codecs: tuple[str, ...] = (), raw: bool = False) -> None:
        aiortc_hooks.register_telephone_event()
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.raw = raw
        self.sent = self.received = 0
        self.pcm = array.array("h")
        self._tasks: list[asyncio.Task[None]] = []
        self._packets = aiortc_hooks.PacketTrack(48000 if "opus" in codecs else RATE)
        track: MediaStreamTrack = self._packets if raw else ToneTrack(freq)
        self.transceiver = self.pc.addTransceiver(track, direction="sendrecv")
        if raw:
            aiortc_hooks.attach_packet_track(self.transceiver.sender, self._packets)
        if codecs:
            caps = RTCRtpSender.getCapabilities("audio").codecs
            self.transceiver.setCodecPreferences(
                [c for n in codecs for c in caps if c.name.lower() == n.lower()]
            )
        aiortc_hooks.restrict_host_addresses(self.pc, ["127.0.0.1"])
        aiortc_hooks.tap_receiver(self.transceiver.receiver, self._tap)
        self._freq = freq
        self._codecs = codecs

    def _tap(self, packet: Any) -> bool:
        self.received += 1
        return self.raw  # raw: consumed here, nothing decoded

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def accept(self, answer: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        if not self.raw:
            self._tasks.append(asyncio.ensure_future(self._listen()))

    async def answer(self, offer: str) -> str:
        """Answer an offer (the gateway's, for a call from a phone); returns the answer SDP."""
        await self.pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        if not self.raw:
            self._tasks.append(asyncio.ensure_future(self._listen()))
        return str(self.pc.localDescription.sdp)

    async def connected(self, timeout: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.pc.connectionState != "connected" or (self.raw and not self._packets.started):
            if loop.time() > deadline:
                raise TimeoutError("the browser peer did not connect")
            await asyncio.sleep(0.01)

    def play_raw(self, seconds: float) -> asyncio.Task[None]:
        """Send pre-encoded tone frames for ``seconds`` (raw mode), paced every 20 ms."""
        codec = "opus" if "opus" in self._codecs else "pcmu"
        frames = encode_tone(self._freq, codec)
        ticks = 960 if codec == "opus" else 160

        async def run() -> None:
            loop = asyncio.get_running_loop()
            start = loop.time()
            for index in range(round(seconds * 50)):
                self._packets.push(frames[index % len(frames)], index * ticks)
                self.sent += 1
                delay = start + (index + 1) * 0.02 - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)

        task = asyncio.ensure_future(run())
        self._tasks.append(task)
        return task

    @property
    def queue_drops(self) -> int:
        return self._packets.dropped

    async def _listen(self) -> None:
        resampler = AudioResampler(format="s16", layout="mono", rate=RATE)
        track = self.transceiver.receiver.track
        try:
            while True:
                frame = await track.recv()
                for out in resampler.resample(frame):  # type: ignore[arg-type]
                    self.pcm.frombytes(bytes(out.planes[0])[: 2 * out.samples])
        except (MediaStreamError, asyncio.CancelledError):
            pass

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pc.close()


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, phone: PlainPhone) -> None:
        self.phone = phone

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.phone._received(data)


class PlainPhone:
    """A plain RTP/AVP PCMU phone (PT 0) on 127.0.0.1: paced tone out, decoded audio in."""

    def __init__(self) -> None:
        self.ssrc = random.getrandbits(32)
        self.remote: tuple[str, int] | None = None
        self.sent = self.received = 0
        self.pcm = array.array("h")
        self._transport: asyncio.DatagramTransport | None = None
        self._decoder = _codec("pcm_mulaw", "r", RATE)
        self.decode = True

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=("127.0.0.1", 0)
        )
        self._transport = transport
        return int(transport.get_extra_info("sockname")[1])

    async def play(self, freq: float, seconds: float) -> None:
        frames = encode_tone(freq, "pcmu")
        loop = asyncio.get_running_loop()
        start, seq, ts = loop.time(), random.getrandbits(15), random.getrandbits(31)
        for index in range(round(seconds * 50)):
            header = struct.pack("!BBHII", 0x80, 0, (seq + index) & 0xFFFF, ts + 160 * index, self.ssrc)
            if self._transport is not None and self.remote is not None:
                self._transport.sendto(header + frames[index % len(frames)], self.remote)
                self.sent += 1
            delay = start + (index + 1) * 0.02 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)

    def _received(self, data: bytes) -> None:
        if len(data) < 12 or data[1] & 0x7F != 0:
            return  # RTCP, telephone-event, ...
        self.received += 1
        if self.decode:
            for frame in self._decoder.decode(Packet(data[12 + 4 * (data[0] & 0x0F) :])):
                self.pcm.frombytes(bytes(frame.planes[0])[: 2 * frame.samples])

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
