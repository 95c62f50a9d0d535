"""A stand-in for the browser in media tests: an aiortc peer on 127.0.0.1 that plays a tone and records.

* ``ToneTrack``: 20 ms frames of a sine (8 kHz mono s16), paced on the loop clock; aiortc encodes them.
* ``WebPeer``: one audio transceiver; what it hears is decoded by aiortc, resampled to 8 kHz mono and kept
  in ``pcm``; raw payloads and telephone-events are tapped (``payloads``, ``events``) before decoding.
"""

from __future__ import annotations

import array
import asyncio
import fractions
import math

from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import RtpPacket as AiortcRtpPacket
from av import AudioFrame, AudioResampler

from gateway.media import aiortc_hooks
from gateway.media.dtmf import DtmfDigit, DtmfReceiver, DtmfSender, TelephoneEvent
from gateway.media.rtp import RtpPacket
from tests.media.audio import RATE, detect_tone


class ToneTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self, freq: float, amplitude: int = 8000) -> None:
        super().__init__()
        self.freq = freq
        self.amplitude = amplitude
        self.muted = False
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        due = self._start + self._pts / RATE
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        step = 2 * math.pi * self.freq / RATE
        amplitude = 0 if self.muted else self.amplitude
        samples = array.array("h", (round(amplitude * math.sin(step * (self._pts + i))) for i in range(160)))
        frame = AudioFrame(format="s16", layout="mono", samples=160)
        frame.planes[0].update(samples.tobytes())
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, RATE)
        self._pts += 160
        return frame


class WebPeer:
    def __init__(self, freq: float = 1000.0, codecs: tuple[str, ...] | None = None) -> None:
        aiortc_hooks.register_telephone_event()
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.tone = ToneTrack(freq)
        self.transceiver = self.pc.addTransceiver(self.tone, direction="sendrecv")
        if codecs is not None:
            caps = RTCRtpSender.getCapabilities("audio").codecs
            wanted = [c for name in codecs for c in caps if c.name.lower() == name.lower()]
            self.transceiver.setCodecPreferences(wanted)
        aiortc_hooks.restrict_host_addresses(self.pc, ["127.0.0.1"])
        aiortc_hooks.tap_receiver(self.transceiver.receiver, self._tap)
        self.pcm = array.array("h")
        self.payloads: list[tuple[int, bytes]] = []
        self.ssrcs: set[int] = set()
        self.seqs: list[int] = []
        self.events: list[DtmfDigit] = []
        self.event_packets: list[AiortcRtpPacket] = []
        self._dtmf = DtmfReceiver(8000)
        self._reader: asyncio.Task[None] | None = None
        self._resampler = AudioResampler(format="s16", layout="mono", rate=RATE)
        self.recording = True

    def _tap(self, packet: AiortcRtpPacket) -> bool:
        if packet.payload_type in (126, 110, 101):
            self.event_packets.append(packet)
            event = TelephoneEvent.parse(packet.payload)
            self.events += self._dtmf.feed(packet.timestamp, event)
            return True
        self.payloads.append((packet.payload_type, packet.payload))
        self.ssrcs.add(packet.ssrc)
        self.seqs.append(packet.sequence_number)
        return False

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def answer(self, offer: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self._start_reader()
        return self.pc.localDescription.sdp

    async def accept(self, answer: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        self._start_reader()

    def _start_reader(self) -> None:
        if self._reader is None:
            self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        track = self.transceiver.receiver.track
        try:
            while True:
                frame = await track.recv()
                if not self.recording:
                    continue
                for out in self._resampler.resample(frame):  # type: ignore[arg-type]
                    self.pcm.frombytes(bytes(out.planes[0])[: 2 * out.samples])
        except (MediaStreamError, asyncio.CancelledError):
            pass

    def heard(self, freq: float, *, last: float | None = None, threshold: float = 0.5) -> bool:
        data = self.pcm if last is None else self.pcm[-round(last * RATE) :]
        return detect_tone(data, RATE, freq, threshold=threshold)

    def clear(self) -> None:
        self.pcm = array.array("h")

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self.pc.close()


async def send_web_dtmf(
    peer: WebPeer, digit: str, payload_type: int, *, ssrc: int = 0x5EED, duration_ms: int = 100
) -> None:
    """RFC 4733 events from the "browser" (aiortc cannot send DTMF): raw SRTP on a separate SSRC."""
    transport = peer.transceiver.sender.transport
    loop = asyncio.get_running_loop()
    start = loop.time()
    for index, packet in enumerate(DtmfSender(8000).packets(digit, 1000, duration_ms)):
        delay = start + packet.offset - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        rtp = RtpPacket(
            payload_type,
            100 + index + 7 * ord(digit),
            packet.timestamp + 800 * ord(digit),
            ssrc,
            packet.payload,
            packet.marker,
        )
        await transport._send_rtp(rtp.serialize())
