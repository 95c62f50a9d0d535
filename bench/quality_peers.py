"""The peers of bench/quality_bench.py: speech, the browser (aiortc, Opus), the phone (plain PCMU), a SIP
UAS for the gateway's PBX leg, and PESQ.

* ``speech(workdir, rate)``: 23 s of speech made at run time by espeak-ng (ten Harvard sentences, IEEE
  1969; espeak-ng speaks at 22.05 kHz), resampled by sox to 8 kHz (or 16 kHz: the wideband reference) mono
  16-bit: the reference PESQ compares with.
* ``Browser``: an aiortc peer offering Opus only, sending the speech (``SpeechTrack``, 20 ms frames on
  the loop clock) and recording what it receives as a browser plays it (``Playout``: each packet decoded
  at its RTP timestamp, a lost one concealed from the next packet's in-band FEC or by libopus's PLC, as
  libwebrtc's NetEq does; not aiortc's own receiver, module note below). aiortc's own Opus encoder (96 kb/s,
  never in-band FEC) by default; with ``fec_loss`` (a percentage) it encodes as Chrome's WebRTC does
  once the answer asks for in-band FEC (``useinbandfec=1``) and its RTCP reports that loss: 32 kb/s,
  FEC on, libopus told the expected loss (``OPUS_SET_PACKET_LOSS_PERC``), which sizes the redundant
  low-bit-rate copy of each frame carried in the next packet (RFC 6716 §2.1.7). An answer without
  ``useinbandfec=1`` gets aiortc's encoder whatever ``fec_loss`` says.
* ``Phone``: the "ideal receiver" and the phone's sender on one UDP socket (symmetric RTP): it places
  every packet of its codec it receives by RTP timestamp into a buffer (silence where missing; an Opus
  phone plays as ``Playout``, concealing with FEC and PLC as libopus phones do), and sends
  the speech in it, paced every 20 ms, consecutive sequence numbers and timestamps. Its codec (``PHONE``):
  PCMU (8 kHz), G.722 (16 kHz, FFmpeg's; its ADPCM decoder takes the packets in arrival order, nothing
  concealed) or Opus (16 kHz in and out, libopus with in-band FEC, RTP clock 48 kHz).
* ``SipUas``: a tiny SIP UAS over UDP (RFC 3261 §8.2.6, §13.3): 200 to INVITE with an answer of the
  phone's codec to the address it is told, 200 to BYE and OPTIONS; it keeps the offer (where the box's
  SIP leg listens).
* ``Playout``: why not what aiortc's track decodes (the bench's recording until issue 66): aiortc's
  audio jitter buffer (``JitterBuffer(capacity=16, prefetch=4)``) stops at a missing sequence number and,
  once 16 numbers are past it, evicts the packets before the gap undecoded, so each lost packet cost
  five frames (100 ms of silence), and nothing was concealed. A box that forwards the phone's Opus with
  its gaps (ours, as a browser needs them) scored PESQ WB 1.13 at 5 % loss for it, against 2.51 for the
  same packets with the lost frames cut out of the timeline (rtpengine's re-encoded output) and 3.41 when
  the losses are concealed from FEC as a browser does. No browser plays like aiortc; ``Playout`` does
  what NetEq does for Opus (an unbounded jitter buffer: every packet that came is played).
* ``score(reference, degraded, rate)``: PESQ MOS-LQO (PyPI ``pesq``) after aligning the degraded signal
  by cross-correlation (TESTING.md): P.862 narrowband (P.862.1's mapping) at 8 kHz, P.862.2 wideband at
  16 kHz.
"""

from __future__ import annotations

import array
import asyncio
import dataclasses
import fractions
import re
import struct
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.codecs.opus import OpusEncoder
from aiortc.mediastreams import MediaStreamTrack
from av import AudioFrame, AudioResampler

from gateway.media.webrtc import aiortc_hooks
from peers.audio import G722, Opus, ulaw_decode, ulaw_encode

RATE = 8000
FRAME = 160  # 20 ms at 8 kHz
SECONDS = 23.0
Address = tuple[str, int]
TEXT = (
    "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. "
    "It is easy to tell the depth of a well. These days a chicken leg is a rare dish. "
    "Rice is often served in round bowls. The juice of lemons makes fine punch. "
    "The box was thrown beside the parked truck. The hogs were fed chopped corn and garbage. "
    "Four hours of steady work faced us. A large size in stockings is hard to sell."
)


@dataclasses.dataclass(frozen=True, slots=True)
class PhoneCodec:
    """The phone's codec: RTP payload type and clock, the rate of its PCM, its SDP lines."""

    name: str
    payload_type: int
    clock: int
    rate: int
    rtpmap: str
    fmtp: str = ""

    @property
    def frame(self) -> int:
        """Samples of PCM in 20 ms."""
        return self.rate // 50


PHONE = {
    "pcmu": PhoneCodec("PCMU", 0, 8000, 8000, "PCMU/8000"),
    "g722": PhoneCodec("G722", 9, 8000, 16000, "G722/8000"),  # RFC 3551 §4.5.2: 16 kHz, clock 8000
    "opus": PhoneCodec("opus", 111, 48000, 16000, "opus/48000/2", "useinbandfec=1"),
}


def speech(workdir: Path, seconds: float = SECONDS, rate: int = RATE) -> np.ndarray[Any, np.dtype[np.int16]]:
    """``seconds`` of espeak-ng speech at ``rate`` (8 or 16 kHz), int16, peaks at -3 dBFS (sox ``gain -n
    -3``); espeak-ng's own output (22.05 kHz) is made once per ``workdir``."""
    raw, out = workdir / "speech-raw.wav", workdir / f"speech-{rate // 1000}k.raw"
    if not raw.exists():
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), TEXT], check=True)
    subprocess.run(
        ["sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", "-e", "signed-integer", "-t", "raw",
         str(out), "gain", "-n", "-3", "trim", "0", str(seconds)],
        check=True,
    )  # fmt: skip
    return np.frombuffer(out.read_bytes(), dtype=np.int16).copy()


def g711_round_trip(samples: np.ndarray[Any, np.dtype[np.int16]]) -> np.ndarray[Any, np.dtype[np.int16]]:
    """The reference through PCMU and back: the ceiling of anything that ends in G.711."""
    decoded = ulaw_decode(ulaw_encode(array.array("h", samples.tobytes())))
    return np.frombuffer(decoded.tobytes(), dtype=np.int16).copy()


def round_trip(codec: PhoneCodec, samples: np.ndarray[Any, np.dtype[np.int16]]) -> np.ndarray[Any, Any]:
    """``samples`` (at ``codec.rate``) encoded and decoded by the phone's codec, 20 ms at a time: the
    ceiling of anything that ends in it."""
    encoder, decoder = _codec_pair(codec)
    out = [
        decoder(encoder(samples[i : i + codec.frame]))
        for i in range(0, len(samples) - codec.frame + 1, codec.frame)
    ]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int16)


def _codec_pair(
    codec: PhoneCodec,
) -> tuple[Any, Any]:
    """The phone's encoder (int16 samples -> payload) and decoder (payload -> int16 samples)."""
    if codec.name == "PCMU":
        return (
            lambda pcm: ulaw_encode(array.array("h", pcm.tobytes())),
            lambda data: np.frombuffer(ulaw_decode(data).tobytes(), dtype=np.int16).copy(),
        )
    tx, rx = (G722(), G722()) if codec.name == "G722" else (Opus(codec.rate), Opus(codec.rate))
    return (
        lambda pcm: tx.encode(array.array("h", pcm.tobytes())),
        lambda data: np.frombuffer(rx.decode(data).tobytes(), dtype=np.int16).copy(),
    )


def resample(samples: np.ndarray[Any, Any], rate: int, to: int) -> np.ndarray[Any, Any]:
    """``samples`` at ``rate`` resampled to ``to`` (FFmpeg's resampler, the whole buffer at once)."""
    if rate == to or not len(samples):
        return samples
    frame = AudioFrame.from_ndarray(samples.astype(np.int16).reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = rate
    resampler = AudioResampler(format="s16", layout="mono", rate=to)
    out = [f.to_ndarray().reshape(-1) for f in [*resampler.resample(frame), *resampler.resample(None)]]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int16)


def score(reference: np.ndarray[Any, Any], degraded: np.ndarray[Any, Any], rate: int = RATE) -> float:
    """PESQ MOS-LQO of ``degraded`` against ``reference``, aligned by cross-correlation: narrowband at
    8 kHz, wideband (P.862.2) at 16 kHz; NaN when nothing was heard or PESQ finds no speech."""
    from pesq import PesqError, pesq

    ref = reference.astype(np.float64)
    deg = degraded.astype(np.float64)
    if len(deg) < rate or not np.any(deg):
        return float("nan")
    size = 1 << int(np.ceil(np.log2(len(ref) + len(deg))))
    correlation = np.fft.irfft(np.fft.rfft(deg, size) * np.conj(np.fft.rfft(ref, size)), size)
    lag = int(np.argmax(correlation))
    if lag > size // 2:
        lag -= size  # the degraded signal starts before the reference (cannot happen; kept general)
    aligned = np.zeros_like(ref)
    start = max(lag, 0)
    piece = deg[start : start + len(ref)]
    offset = max(-lag, 0)
    aligned[offset : offset + len(piece)] = piece[: len(ref) - offset]
    try:
        return float(pesq(rate, ref, aligned, "nb" if rate == RATE else "wb"))
    except PesqError:
        return float("nan")


class Placed:
    """Samples placed by RTP timestamp (``clock`` Hz) into one buffer of ``rate`` Hz (the clock's by
    default); silence where nothing came."""

    def __init__(self, clock: int, rate: int | None = None) -> None:
        self.clock = clock
        self.rate = rate or clock
        self.chunks: list[tuple[int, np.ndarray[Any, Any]]] = []
        self._first: int | None = None
        self._last = 0

    def put(self, timestamp: int, samples: np.ndarray[Any, Any]) -> None:
        if self._first is None:
            self._first = self._last = timestamp
        # RFC 3550 §5.1: timestamps wrap; unwrap against the last one seen (a signed 32-bit step)
        step = (timestamp - self._last + 0x80000000) % 0x100000000 - 0x80000000
        self._last += step
        self.chunks.append(((self._last - self._first) * self.rate // self.clock, samples))

    def samples(self) -> np.ndarray[Any, Any]:
        if not self.chunks:
            return np.zeros(0, dtype=np.int16)
        low = min(at for at, _ in self.chunks)
        end = max(at + len(s) for at, s in self.chunks) - low
        out = np.zeros(end, dtype=np.int16)
        for at, chunk in self.chunks:
            out[at - low : at - low + len(chunk)] = chunk
        return out


class Playout:
    """What a browser plays of an Opus stream (48 kHz RTP clock), as libwebrtc's NetEq does: the packets
    in sequence order (duplicates once), each decoded by libopus at its RTP timestamp; a timestamp gap
    before one (its predecessors lost) concealed, the last lost frame from the in-band FEC the packet
    carries (RFC 6716 §2.1.7; libopus falls back to PLC when it has none), the ones before it by libopus's
    PLC, at most ``MAX_CONCEALED`` frames (libopus's PLC fades out by then), silence beyond. A stream
    whose timestamps close up over a loss (the lost frame's time cut out) is played as it says: nothing
    is concealed. Sans-I/O: ``put`` each packet, ``samples()`` at the end."""

    FRAME = 960  # 20 ms at 48 kHz
    MAX_CONCEALED = 10

    def __init__(self) -> None:
        self._packets: dict[int, tuple[int, bytes]] = {}  # extended sequence number -> (timestamp, payload)
        self._last: int | None = None

    def put(self, seq: int, timestamp: int, payload: bytes) -> None:
        if self._last is None:
            self._last = seq
        # RFC 3550 §A.1: extend against the last one seen (a signed 16-bit step)
        self._last += (seq - self._last + 0x8000) % 0x10000 - 0x8000
        self._packets.setdefault(self._last, (timestamp, payload))

    def samples(self) -> np.ndarray[Any, Any]:
        """The play-out at 48 kHz, placed by timestamp from the first packet's."""
        from gateway.media.codecs.opus_decoder import OpusDecodeError, OpusDecoder

        decoder = OpusDecoder(48000)
        placed = Placed(48000)
        expected: int | None = None
        for seq in sorted(self._packets):
            timestamp, payload = self._packets[seq]
            gap = 0 if expected is None else (timestamp - expected + 0x80000000) % 0x100000000 - 0x80000000
            frames = round(gap / self.FRAME)
            if 0 < frames <= self.MAX_CONCEALED and expected is not None:
                for index in range(frames):
                    fec = payload if index == frames - 1 else None
                    pcm = decoder.conceal(self.FRAME, fec)
                    placed.put((expected + index * self.FRAME) % 0x100000000, np.frombuffer(pcm, np.int16))
            try:
                pcm = decoder.decode(payload)
            except OpusDecodeError:
                continue  # (a browser drops what libopus refuses)
            placed.put(timestamp, np.frombuffer(pcm, np.int16))
            expected = (timestamp + len(pcm) // 2) % 0x100000000
        decoder.close()
        return placed.samples()


class SpeechTrack(MediaStreamTrack):
    """The speech in 20 ms frames (8 kHz mono s16, or ``rate``; aiortc resamples for Opus), then silence."""

    kind = "audio"

    def __init__(self, samples: np.ndarray[Any, np.dtype[np.int16]], rate: int = RATE) -> None:
        super().__init__()
        self.samples = samples
        self.rate = rate
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        rate, size = self.rate, self.rate // 50
        delay = self._start + self._pts / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        chunk = self.samples[self._pts : self._pts + size]
        frame = AudioFrame(format="s16", layout="mono", samples=size)
        frame.planes[0].update(chunk.tobytes() + bytes(2 * (size - len(chunk))))
        frame.sample_rate, frame.pts, frame.time_base = rate, self._pts, fractions.Fraction(1, rate)
        self._pts += size
        return frame


# The Opus encoder settings of the next Browser whose answer asks for FEC (None: aiortc's); the bench runs
# one call at a time, and aiortc makes its encoder when the first frame is sent, after the answer.
_chrome_fec_loss: int | None = None
_aiortc_opus_init = OpusEncoder.__init__


def _opus_init(self: OpusEncoder) -> None:
    _aiortc_opus_init(self)
    if _chrome_fec_loss is not None:
        self.codec.bit_rate = 32000  # Chrome's default for Opus voice
        self.codec.options = {"application": "voip", "fec": "1", "packet_loss": str(_chrome_fec_loss)}


OpusEncoder.__init__ = _opus_init  # type: ignore[method-assign]


class Browser:
    """An aiortc "browser" on 127.0.0.1 offering Opus only, sending ``samples``, recording as it plays;
    ``fec_loss``: encode as Chrome does with in-band FEC at that expected loss (module note)."""

    def __init__(
        self, samples: np.ndarray[Any, np.dtype[np.int16]], fec_loss: int | None = None, rate: int = RATE
    ) -> None:
        self.fec_loss = fec_loss
        self.fec_used = False
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.transceiver = self.pc.addTransceiver(SpeechTrack(samples, rate), direction="sendrecv")
        opus = [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.name.lower() == "opus"]
        self.transceiver.setCodecPreferences(opus)
        aiortc_hooks.restrict_host_addresses(self.pc, ["127.0.0.1"])
        self.heard = Playout()
        receiver = self.transceiver.receiver
        handle = receiver._handle_rtp_packet

        async def heard(packet: Any, arrival_time_ms: int) -> None:
            # every Opus packet as it came (the one payload type offered; RTCP and aiortc's own decoding
            # carry on: its receiver reports are what the box reads the leg's loss from)
            if packet.payload_type == self._opus_pt and packet.payload:
                self.heard.put(packet.sequence_number, packet.timestamp, packet.payload)
            await handle(packet, arrival_time_ms)

        receiver._handle_rtp_packet = heard  # type: ignore[method-assign]
        self._opus_pt = -1

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def accept(self, answer: str, timeout: float = 20) -> None:
        global _chrome_fec_loss
        opus = re.search(r"^a=rtpmap:(\d+) opus/48000", answer, re.M | re.I)
        self._opus_pt = int(opus.group(1)) if opus is not None else -1
        self.fec_used = self.fec_loss is not None and "useinbandfec=1" in answer.replace(" ", "")
        _chrome_fec_loss = self.fec_loss if self.fec_used else None
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.pc.connectionState != "connected":
            if loop.time() > deadline or self.pc.connectionState == "failed":
                raise TimeoutError(f"the browser did not connect ({self.pc.connectionState})")
            await asyncio.sleep(0.02)

    def recording(self, rate: int = RATE) -> np.ndarray[Any, Any]:
        """What it played (``Playout``), at ``rate`` (decoded at 48 kHz: one resampling of the whole
        buffer)."""
        return resample(self.heard.samples(), 48000, rate)

    async def close(self) -> None:
        await self.pc.close()


class _UdpPeer(asyncio.DatagramProtocol):
    """A peer on one UDP socket of 127.0.0.1."""

    transport: asyncio.DatagramTransport | None = None

    async def bind(self) -> None:
        await asyncio.get_running_loop().create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", 0))

    @property
    def address(self) -> Address:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)


class Phone(_UdpPeer):
    """The ideal receiver (its codec's packets placed by RTP timestamp) and a paced sender in that codec
    (PCMU by default), on one UDP socket."""

    def __init__(self, codec: PhoneCodec = PHONE["pcmu"]) -> None:
        self.codec = codec
        self.heard = Placed(codec.clock, codec.rate)
        # an Opus phone plays as a browser does (Asterisk's and FreeSWITCH's libopus conceal with FEC and
        # PLC too): a forwarded stream's losses are the phone's to conceal, not silence
        self.playout = Playout() if codec.name == "opus" else None
        self.transport: asyncio.DatagramTransport | None = None
        self.received = 0
        self._encode, self._decode = _codec_pair(codec)

    async def start(self) -> Phone:
        await self.bind()
        return self

    def datagram_received(self, data: bytes, addr: Address) -> None:
        if len(data) < 12 or data[0] >> 6 != 2 or data[1] & 0x7F != self.codec.payload_type:
            return  # not RTP, or not its codec (telephone-event, comfort noise, RTCP)
        skip = 12 + 4 * (data[0] & 0x0F)
        if data[0] & 0x10:  # RFC 3550 §5.3.1 header extension
            skip += 4 + 4 * struct.unpack_from("!H", data, skip + 2)[0]
        payload = data[skip : len(data) - (data[-1] if data[0] & 0x20 else 0)]
        self.received += 1
        seq, timestamp = struct.unpack_from("!HI", data, 2)
        if self.playout is not None:
            self.playout.put(seq, timestamp, payload)
        else:
            self.heard.put(timestamp, self._decode(payload))

    async def play(
        self, samples: np.ndarray[Any, np.dtype[np.int16]], to: Address, tail: float, lead: float = 0.0,
        speaking: Callable[[], object] | None = None,
    ) -> None:  # fmt: skip
        """The speech (at the codec's rate) to ``to``, a packet every 20 ms on the loop clock, after
        ``lead`` s of silence (``speaking()`` called as the speech's first packet goes), then ``tail`` s of
        silence."""
        assert self.transport is not None
        codec = self.codec
        before = np.zeros(int(lead * 50) * codec.frame, dtype=np.int16)  # whole frames
        padded = np.concatenate([before, samples, np.zeros(int(tail * codec.rate), dtype=np.int16)])
        loop = asyncio.get_running_loop()
        start, ssrc, ticks = loop.time(), 0x51A7E, codec.clock // 50
        for index in range(len(padded) // codec.frame):
            if speaking is not None and index == len(before) // codec.frame:
                speaking()
            payload = self._encode(padded[codec.frame * index : codec.frame * (index + 1)])
            marker = 0x80 if index == 0 else 0
            header = struct.pack("!BBHII", 0x80, marker | codec.payload_type, index, ticks * index, ssrc)
            self.transport.sendto(header + payload, to)
            delay = start + (index + 1) * 0.02 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)

    def recording(self, rate: int | None = None) -> np.ndarray[Any, Any]:
        """What it heard, at its codec's rate or ``rate``."""
        if self.playout is not None:
            return resample(self.playout.samples(), 48000, rate or self.codec.rate)
        return resample(self.heard.samples(), self.codec.rate, rate or self.codec.rate)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def sdp_audio_address(text: str) -> Address:
    """The c= address and the audio m= port of a plain SDP (RFC 4566 §5.7, §5.14)."""
    host = re.search(r"^c=IN IP[46] (\S+)", text, re.M)
    port = re.search(r"^m=audio (\d+)", text, re.M)
    if host is None or port is None:
        raise ValueError(f"no audio address in SDP: {text!r}")
    return host.group(1), int(port.group(1))


def pcmu_answer(media: Address, codec: PhoneCodec = PHONE["pcmu"]) -> str:
    """A plain answer of the phone's codec only (PCMU by default), to ``media`` (what the desk phone would
    say)."""
    host, port = media
    pt = codec.payload_type
    fmtp = f"a=fmtp:{pt} {codec.fmtp}\r\n" if codec.fmtp else ""
    return (
        f"v=0\r\no=uas 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP {pt}\r\na=rtpmap:{pt} {codec.rtpmap}\r\n{fmtp}a=ptime:20\r\na=sendrecv\r\n"
    )


class SipUas(_UdpPeer):
    """The PBX leg's far end: answers every INVITE with ``codec`` (PCMU by default) towards ``media`` (set
    per call)."""

    def __init__(self, codec: PhoneCodec = PHONE["pcmu"]) -> None:
        self.codec = codec
        self.transport: asyncio.DatagramTransport | None = None
        self.media: Address = ("127.0.0.1", 9)
        self.offers: asyncio.Queue[str] = asyncio.Queue()
        self._tags: dict[str, str] = {}

    async def start(self) -> SipUas:
        await self.bind()
        return self

    def datagram_received(self, data: bytes, addr: Address) -> None:
        head, _, body = data.decode(errors="replace").partition("\r\n\r\n")
        lines = head.split("\r\n")
        method = lines[0].split(" ", 1)[0]
        if lines[0].startswith("SIP/2.0") or method in ("ACK", ""):
            return  # responses (none expected) and ACKs need no answer
        names = {"v": "via", "f": "from", "t": "to", "i": "call-id"}
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((names.get(name.strip().lower(), name.strip().lower()), value.strip()))
        call_id = next((value for key, value in headers if key == "call-id"), "")
        kept = []
        for key, value in headers:
            if key not in ("via", "from", "to", "call-id", "cseq"):
                continue
            if key == "to" and ";tag=" not in value:
                value = f"{value};tag={self._tags.setdefault(call_id, uuid.uuid4().hex[:10])}"
            kept.append(f"{'CSeq' if key == 'cseq' else key.title()}: {value}")
        answer = ""
        if method == "INVITE":
            self.offers.put_nowait(body)
            answer = pcmu_answer(self.media, self.codec)
        host, port = self.address
        extra = [f"Contact: <sip:uas@{host}:{port}>", "Content-Type: application/sdp"] if answer else []
        response = "\r\n".join(
            ["SIP/2.0 200 OK", *kept, *extra, f"Content-Length: {len(answer)}", "", answer]
        )
        assert self.transport is not None
        self.transport.sendto(response.encode(), addr)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
