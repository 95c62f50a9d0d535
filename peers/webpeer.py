"""A stand-in for a browser tab: an aiortc peer on 127.0.0.1 that plays a tone and records what it hears.

* ``ToneTrack``: 20 ms frames of a sine (8 kHz mono s16, or ``rate``), paced on the loop clock; aiortc
  encodes them.
* ``WebPeer``: one audio transceiver; what it hears is decoded by aiortc, resampled to 8 kHz mono (or
  ``rate``: 16000 for a wideband call) and kept in ``pcm``; raw payloads and telephone-events are tapped (``payloads``, ``events``) before decoding.
  With ``raw=True`` (benchmarks) it sends pre-encoded payloads (``play_raw``) and only counts what
  arrives, so that it costs as little CPU as possible.
  With ``chat=True`` it opens a data channel ``chat`` before its offer, as a page would: ``say`` writes
  text on it, ``texts`` keeps what arrives (``wait_text``). A channel an offer it answers opens (the
  gateway's, on calls to a web user) becomes its ``channel`` the same way.
* ``send_web_dtmf``: RFC 4733 events from the "browser" (aiortc cannot send DTMF).
* With ``camera=True`` the peer has a camera (``PatternTrack``: green, a bar moving): a gateway offer
  with video mid-call (escalation) is answered sending it, ``add_video()`` adds it to the call for a new
  offer of its own, and each video it receives is decoded by aiortc into ``pictures`` (width, height,
  mean Y, U, V).
"""

from __future__ import annotations

import array
import asyncio
import fractions
import math
import time

from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack, VideoStreamTrack
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from aiortc.rtp import RtpPacket as AiortcRtpPacket
from av import AudioFrame, AudioResampler, VideoFrame

import sdp
from gateway.media.codecs.dtmf import DtmfDigit, DtmfReceiver, DtmfSender, TelephoneEvent
from gateway.media.rtp.packet import RtpPacket
from gateway.media.rtp.red import RedBlock, pack
from gateway.media.webrtc import aiortc_hooks, ice_completion, web_sdp
from peers.audio import RATE, detect_tone, encode_tone


class ToneTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self, freq: float, amplitude: int = 8000, rate: int = RATE) -> None:
        super().__init__()
        self.freq = freq
        self.rate = rate
        self.amplitude = amplitude
        self.muted = False
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        rate, size = self.rate, self.rate // 50  # 20 ms
        due = self._start + self._pts / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        step = 2 * math.pi * self.freq / rate
        amplitude = 0 if self.muted else self.amplitude
        samples = array.array("h", (round(amplitude * math.sin(step * (self._pts + i))) for i in range(size)))
        frame = AudioFrame(format="s16", layout="mono", samples=size)
        frame.planes[0].update(samples.tobytes())
        frame.sample_rate = rate
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, rate)
        self._pts += size
        return frame


class PatternTrack(VideoStreamTrack):
    """A camera for tests: a green picture with a lighter bar that moves one step per frame (30 fps)."""

    def __init__(self, width: int = 320, height: int = 240) -> None:
        super().__init__()
        self.width, self.height, self.frames = width, height, 0

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(width=self.width, height=self.height, format="yuv420p")
        y, u, v = frame.planes
        bar = (self.frames * 8) % self.width
        y.update(bytes(145 if not bar <= x < bar + 16 else 200 for x in range(y.line_size)) * self.height)
        u.update(bytes([54]) * u.buffer_size)
        v.update(bytes([34]) * v.buffer_size)
        frame.pts, frame.time_base = pts, time_base
        self.frames += 1
        return frame


class WebPeer:
    def __init__(
        self,
        freq: float = 1000.0,
        codecs: tuple[str, ...] | None = None,
        *,
        raw: bool = False,
        chat: bool = False,
        direction: str = "sendrecv",
        camera: bool = False,
        configuration: RTCConfiguration | None = None,
        addresses: tuple[str, ...] | None = ("127.0.0.1",),
        rate: int = RATE,
    ) -> None:
        """``direction``: "recvonly" for a player (a WHEP client) that sends nothing; ``configuration``:
        the page's RTCConfiguration (ICE servers, ``iceTransportPolicy`` "relay"), none by default;
        ``addresses``: the host addresses it gathers on (a network namespace's own, in a benchmark; None:
        the machine's own and 127.0.0.1: where a browser on this machine can reach it); ``rate``: of the
        tone it sends and of ``pcm`` (16000 hears and sends above 4 kHz: a wideband call)."""
        aiortc_hooks.register_telephone_event()
        self.pc = RTCPeerConnection(configuration or RTCConfiguration(iceServers=[]))
        self.freq = freq
        self.codecs = codecs or ()
        self.raw = raw
        self.sent = self.received = 0
        self.rate = rate
        self.tone = ToneTrack(freq, rate=rate)
        self._packets = aiortc_hooks.PacketTrack(48000 if "opus" in self.codecs else RATE)
        self._tasks: list[asyncio.Task[None]] = []
        track: MediaStreamTrack = self._packets if raw else self.tone
        self.transceiver = self.pc.addTransceiver(track, direction=direction)
        if raw:
            aiortc_hooks.attach_packet_track(self.transceiver.sender, self._packets)
        if codecs is not None:
            caps = RTCRtpSender.getCapabilities("audio").codecs
            wanted = [c for name in codecs for c in caps if c.name.lower() == name.lower()]
            self.transceiver.setCodecPreferences(wanted)
        if configuration is None or configuration.iceTransportPolicy is not RTCIceTransportPolicy.RELAY:
            chosen = None if addresses is None else list(addresses)
            aiortc_hooks.restrict_host_addresses(self.pc, chosen, include_loopback=addresses is None)
        # connected when its checks are, as a browser, not up to 20 ms later (aioice's pacing loop)
        ice_completion.prompt_ice_completion(self.pc)
        aiortc_hooks.tap_receiver(self.transceiver.receiver, self._tap)
        self.pcm = array.array("h")
        self.heard_at = 0.0  # time.monotonic() of the last audio frame recorded (0: none yet)
        self.payloads: list[tuple[int, bytes]] = []
        self.ssrcs: set[int] = set()
        self.seqs: list[int] = []
        self.events: list[DtmfDigit] = []
        self.event_packets: list[AiortcRtpPacket] = []
        self._dtmf = DtmfReceiver(8000)
        self._reader: asyncio.Task[None] | None = None
        self._resampler = AudioResampler(format="s16", layout="mono", rate=rate)
        self._shape: tuple[int, str, str] | None = None  # (rate, layout, format) the resampler was set up for
        self.recording = True
        self.texts: list[str] = []
        self.camera = PatternTrack() if camera else None
        self.pictures: list[tuple[int, int, float, float, float]] = []
        self._watched: set[int] = set()
        self.channel = self.pc.createDataChannel("chat") if chat else None
        if self.channel is not None:
            self._listen(self.channel)
        self.pc.on("datachannel", self._offered_channel)

    def _listen(self, channel: RTCDataChannel) -> None:
        channel.on("message", lambda data: self.texts.append(data) if isinstance(data, str) else None)

    def _offered_channel(self, channel: RTCDataChannel) -> None:
        """A channel the other side's offer opened (the gateway's ``chat`` on a call to a web user)."""
        if self.channel is None:
            self.channel = channel
        self._listen(channel)

    def vanish(self) -> None:
        """Play a browser whose network went away: from now on its sockets neither send nor receive
        (no RTP, no RTCP, no DTLS alert, no answer to ICE consent checks), without closing anything."""
        connection = aiortc_hooks.ice_connection(self.pc)
        for protocol in list(getattr(connection, "_protocols", [])):  # aioice's sockets (a test peer only)
            protocol.datagram_received = lambda data, addr: None
            transport = getattr(protocol, "transport", None)
            if transport is not None:
                transport.sendto = lambda data, addr=None: None

    async def say(self, text: str, timeout: float = 10.0) -> None:
        """Write ``text`` on the chat channel once it is open."""
        for _ in range(int(timeout / 0.02)):
            if self.channel is not None and self.channel.readyState == "open":
                self.channel.send(text)
                return
            await asyncio.sleep(0.02)
        state = "absent" if self.channel is None else self.channel.readyState
        raise TimeoutError(f"the chat channel is {state}, not open")

    async def wait_text(self, text: str, timeout: float = 10.0) -> None:
        for _ in range(int(timeout / 0.02)):
            if text in self.texts:
                return
            await asyncio.sleep(0.02)
        raise TimeoutError(f"no {text!r} on the chat channel; got {self.texts!r}")

    def _tap(self, packet: AiortcRtpPacket) -> bool:
        self.received += 1
        if self.raw:
            return True  # counted; nothing kept, nothing decoded
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
        for transceiver in self.pc.getTransceivers():  # a video offered: the camera goes with the answer
            if transceiver.kind == "video" and self.camera is not None and transceiver.sender.track is None:
                transceiver.direction = "sendrecv"
                transceiver.sender.replaceTrack(self.camera)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self._start_reader()
        return self.pc.localDescription.sdp

    async def accept(self, answer: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        self._start_reader()

    def add_video(self) -> None:
        """Add the camera to the call (the next ``offer()`` carries it), as a page turning video on."""
        assert self.camera is not None, "WebPeer(camera=True) has a camera"
        self.pc.addTransceiver(self.camera, direction="sendrecv")

    async def drop_video(self) -> str:
        """Stop the camera as a page does (``transceiver.stop()``): the new offer has the video m-line at
        port 0, out of the BUNDLE group (aiortc has no such stop: its offer is edited so)."""
        mids = []
        for transceiver in self.pc.getTransceivers():
            if transceiver.kind == "video":
                transceiver.direction = "inactive"
                mids.append(transceiver.mid)
        offer = sdp.parse((await self.pc.createOffer()).sdp)
        for mid in mids:
            offer = web_sdp.reject_mid(offer, mid)
        text = sdp.write(offer)
        await self.pc.setLocalDescription(RTCSessionDescription(text, "offer"))
        return text

    def _watch_video(self) -> None:
        for transceiver in self.pc.getTransceivers():
            track = transceiver.receiver.track
            if transceiver.kind == "video" and id(track) not in self._watched:
                self._watched.add(id(track))
                self._tasks.append(asyncio.ensure_future(self._read_video(track)))

    async def _read_video(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                picture = await track.recv()
                assert isinstance(picture, VideoFrame)
                planes = [bytes(p) for p in picture.planes]
                means = [
                    sum(p[:: max(1, len(p) // 4096)]) / len(p[:: max(1, len(p) // 4096)]) for p in planes
                ]
                self.pictures.append((picture.width, picture.height, means[0], means[1], means[2]))
        except (MediaStreamError, asyncio.CancelledError):
            pass

    def _start_reader(self) -> None:
        if self.camera is not None:
            self._watch_video()
        if self._reader is None and not self.raw:
            self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        track = self.transceiver.receiver.track
        try:
            while True:
                frame = await track.recv()
                if not self.recording or not isinstance(frame, AudioFrame):
                    continue
                self.heard_at = time.monotonic()
                shape = (frame.sample_rate, frame.layout.name, frame.format.name)
                # the sender changed codecs (PCMU to Opus, say): followed, as a browser does
                if shape != self._shape:
                    if self._shape is not None:
                        self._resampler = AudioResampler(format="s16", layout="mono", rate=self.rate)
                    self._shape = shape
                for out in self._resampler.resample(frame):
                    self.pcm.frombytes(bytes(out.planes[0])[: 2 * out.samples])
        except (MediaStreamError, asyncio.CancelledError):
            pass

    async def connected(self, timeout: float = 10.0) -> None:
        """Wait for ICE and DTLS (and, in raw mode, for the sender to take packets)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.pc.connectionState != "connected" or (self.raw and not self._packets.started):
            if loop.time() > deadline:
                remote = [
                    f"{c.ip}:{c.port}"
                    for t in self.pc.getTransceivers()
                    for c in t.receiver.transport.transport.getRemoteCandidates()
                ]
                raise TimeoutError(
                    f"the web peer did not connect: connection {self.pc.connectionState}, ICE "
                    f"{self.pc.iceConnectionState}, remote candidates {remote}"
                )
            await asyncio.sleep(0.01)

    def play_raw(self, seconds: float, *, red_payload_type: int | None = None) -> asyncio.Task[None]:
        """Send pre-encoded tone frames for ``seconds`` (raw mode), paced every 20 ms; with
        ``red_payload_type`` (RFC 2198 negotiated over Opus) each in RED with the previous frame as its
        redundant block, as Chrome sends it."""
        codec = "opus" if "opus" in self.codecs else "pcmu"
        frames = encode_tone(self.freq, codec)
        ticks = 960 if codec == "opus" else 160

        async def run() -> None:
            loop = asyncio.get_running_loop()
            start = loop.time()
            previous: list[RedBlock] = []
            for index in range(round(seconds * 50)):
                frame, timestamp = frames[index % len(frames)], index * ticks
                audio_pt = self._packets.payload_type
                if red_payload_type is None or audio_pt is None:
                    self._packets.push(frame, timestamp)
                else:
                    primary = RedBlock(audio_pt, timestamp, frame)
                    self._packets.push(pack(primary, previous), timestamp, red_payload_type)
                    previous = [primary]
                self.sent += 1
                delay = start + (index + 1) * 0.02 - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)

        task = asyncio.ensure_future(run())
        self._tasks.append(task)
        return task

    @property
    def queue_drops(self) -> int:
        """Raw frames the sender's queue dropped (the peer could not keep up)."""
        return self._packets.dropped

    def heard(self, freq: float, *, last: float | None = None, threshold: float = 0.5) -> bool:
        data = self.pcm if last is None else self.pcm[-round(last * self.rate) :]
        return detect_tone(data, self.rate, freq, threshold=threshold)

    def clear(self) -> None:
        self.pcm = array.array("h")

    async def close(self) -> None:
        tasks = [*self._tasks, *([self._reader] if self._reader is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
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
