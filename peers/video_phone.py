"""The media of a SIP video phone for tests: VP8, H.264 or VP9 over plain RTP/AVP, RTCP on its own port.

The codecs are aiortc's (libvpx and libx264 through PyAV; VP9, which aiortc lacks, is ``peers.vp9``'s),
so what goes out is real encoded video and what comes in is really decoded:

* ``send_video(seconds)`` sends a moving test pattern (a white bar sliding over blue) at ``fps``, each
  frame packetized by aiortc's encoder (``skip_first``: the first frames are not sent, so the far
  decoder starts without a keyframe and has to ask for one; ``drop`` loses packets on purpose);
* what arrives is reassembled by aiortc's ``JitterBuffer`` and decoded: ``decoded`` holds (width,
  height, mean Y, mean U, mean V) per picture; ``keyframes_received`` counts keyframes;
* RTCP from the far end is parsed: ``plis`` counts its PLI and FIR for our stream, and each one makes
  the next frame a keyframe (as a phone with ``a=rtcp-fb:* nack pli`` does); ``send_pli()`` asks the
  far end for a keyframe; ``info()`` takes the body of a SIP INFO picture_fast_update (RFC 5168).
* bandwidth hints (RFC 5104 §4.2): ``tmmbr`` keeps the bitrates the far end's TMMBRs asked of our stream,
  ``tmmbn`` those its TMMBNs acknowledged; ``send_tmmbr(bitrate)`` asks the far end to keep its stream
  under ``bitrate`` (answer with ``feedback`` including ``ccm tmmbr`` for that);
* SDES-SRTP (RFC 4568, RFC 3711) with ``srtp=True``: ``offer()`` is RTP/SAVP with a key of ours,
  ``answer()`` takes the offer's first a=crypto and answers it with ours, ``answered()`` takes the far
  end's; RTP and RTCP are then protected and checked both ways (``srtp_failed`` counts what did not
  authenticate, ``srtp_replayed`` the copies of packets already taken, which libsrtp drops as a phone
  does: a retransmission the browser sent for a NACK under load; nothing unauthenticated is decoded).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import random
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any

import av
from aiortc.codecs import depayload, get_decoder, get_encoder
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket as AiortcRtpPacket

import sdp
from gateway.media.rtp.rtcp import RtcpReceiverReport, parse_rtcp, serialize_rtcp
from gateway.media.rtp.srtp import SdesSrtp
from gateway.media.video.bandwidth import Tmmbn, Tmmbr, TmmbrEntry, bandwidth_hints
from gateway.media.video.forward import is_keyframe
from gateway.media.video.keyframe import PictureLoss, is_picture_fast_update, keyframe_requests
from peers import vp9
from sdp import video

__all__ = ["PlainVideoPeer"]

_HEADER = struct.Struct("!BBHII")


class _Socket(asyncio.DatagramProtocol):
    def __init__(self, handler: Callable[[bytes], None]) -> None:
        self._handler = handler

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self._handler(data)


class PlainVideoPeer:
    def __init__(
        self,
        codec: str = "VP8",
        payload_type: int = 96,
        *,
        width: int = 320,
        height: int = 240,
        fps: int = 15,
        srtp: bool = False,
    ) -> None:
        fmtps: dict[str, dict[str, int | str | None]] = {
            "H264": {"packetization-mode": "1", "profile-level-id": "42e01f"},
            "VP9": {"profile-id": "0"},
        }
        fmtp = dict(fmtps.get(codec.upper(), {}))
        self.codec = RTCRtpCodecParameters(
            mimeType=f"video/{codec}", clockRate=90000, payloadType=payload_type, parameters=fmtp
        )
        self.name = codec
        self.width, self.height, self.fps = width, height, fps
        rng = random.Random()
        self.ssrc, self.sequence, self.timestamp = (
            rng.getrandbits(32),
            rng.getrandbits(16),
            rng.getrandbits(32),
        )
        self.remote: tuple[str, int] | None = None
        self.remote_rtcp: tuple[str, int] | None = None
        self.decoded: list[tuple[int, int, float, float, float]] = []
        self.received = self.keyframes_received = self.plis = self.sent_frames = 0
        self.sources: set[int] = set()
        self.malformed = 0
        self.infos = 0  # picture_fast_update INFOs received (``info``)
        self._encoder: Any = (
            get_encoder(self.codec) if codec.upper() != "VP9" else vp9.Vp9Encoder(width, height, fps)
        )
        self._decoder: Any = get_decoder(self.codec) if codec.upper() != "VP9" else vp9.Vp9Decoder()
        self._jitter = JitterBuffer(capacity=128, is_video=True)
        self._force_keyframe = False
        self._rtp: asyncio.DatagramTransport | None = None
        self._rtcp: asyncio.DatagramTransport | None = None
        self.use_srtp = srtp
        self.crypto: sdp.Crypto | None = None  # our key in the SDP (with ``srtp``)
        self.srtp: SdesSrtp | None = None  # once both keys are known
        self.srtp_failed = 0
        self.srtp_replayed = 0
        self.tmmbr: list[int] = []  # bitrates the far end's TMMBRs asked of our stream
        self.tmmbn: list[int] = []  # bitrates its TMMBNs acknowledged of our requests

    async def start(self, host: str = "127.0.0.1") -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self._rtp, _ = await loop.create_datagram_endpoint(
            lambda: _Socket(self._on_rtp), local_addr=(host, 0)
        )
        self._rtcp, _ = await loop.create_datagram_endpoint(
            lambda: _Socket(self._on_rtcp), local_addr=(host, 0)
        )
        return self.address

    @property
    def address(self) -> tuple[str, int]:
        assert self._rtp is not None
        host, port = self._rtp.get_extra_info("sockname")[:2]
        return str(host), int(port)

    @property
    def rtcp_port(self) -> int:
        assert self._rtcp is not None
        return int(self._rtcp.get_extra_info("sockname")[1])

    def answer(
        self, offer: sdp.MediaDescription, address: str, feedback: tuple[str, ...] = ("nack pli",)
    ) -> sdp.MediaDescription:
        """Answer a video m-line from ``address``: this phone's codec at the offer's payload type with
        ``feedback`` (none: a phone that asks for keyframes by SIP INFO), our RTCP port in a=rtcp; media
        then goes to the offer's port (RTCP at a=rtcp or port + 1). ``ValueError`` when the offer lacks
        the codec."""
        fmtp = ";".join(f"{k}={v}" for k, v in self.codec.parameters.items()) or None
        ours = sdp.Codec(self.codec.payloadType or 96, self.name, 90000, fmtp=fmtp, rtcp_fb=feedback)
        host, port = self.address
        section = video.answer_section(
            offer, [ours], port=port, address=host, direction=sdp.Direction.SENDRECV, own_feedback=()
        )
        if section.rejected:
            raise ValueError(f"no {self.name} in the offer: {offer.m_line}")
        rtcp = offer.rtcp
        self.remote = (address, offer.port)
        self.remote_rtcp = (
            (rtcp.address or address, rtcp.port) if rtcp is not None else (address, offer.port + 1)
        )
        self.codec = RTCRtpCodecParameters(
            mimeType=self.codec.mimeType, clockRate=90000, payloadType=section.codecs[0].payload_type,
            parameters=self.codec.parameters,
        )  # fmt: skip
        mine = [sdp.Attribute("rtcp", sdp.Rtcp(self.rtcp_port, host).to_sdp())]
        theirs = next(iter(offer.cryptos), None)
        if self.use_srtp and theirs is not None:  # RFC 4568 §7.1.2: the offered tag and suite, our key
            self.crypto = sdp.Crypto.new(theirs.tag, theirs.suite)
            self.srtp = SdesSrtp(self.crypto, theirs)
            mine.append(sdp.Attribute("crypto", self.crypto.to_sdp()))
        return section.with_attributes([*mine, *(a for a in section.attributes if a.name != "rtcp")])

    def offer(self) -> sdp.MediaDescription:
        """This phone's video m-line for an offer: its codec with ``nack pli``, RTCP on our own port."""
        host, port = self.address
        pt = self.codec.payloadType or 96
        fmtp = ";".join(f"{k}={v}" for k, v in self.codec.parameters.items())
        lines = [
            sdp.Attribute("rtcp", sdp.Rtcp(self.rtcp_port, host).to_sdp()),
            sdp.Attribute("sendrecv"),
            sdp.Attribute("rtpmap", f"{pt} {self.name}/90000"),
            *([sdp.Attribute("fmtp", f"{pt} {fmtp}")] if fmtp else []),
            sdp.Attribute("rtcp-fb", f"{pt} nack pli"),
        ]
        if self.use_srtp:
            self.crypto = self.crypto or sdp.Crypto.new()
            lines.insert(1, sdp.Attribute("crypto", self.crypto.to_sdp()))
        proto = "RTP/SAVP" if self.use_srtp else "RTP/AVP"
        return sdp.MediaDescription("video", port, proto, (str(pt),), attributes=tuple(lines))

    def answered(self, answer: sdp.MediaDescription, address: str) -> None:
        """The far end's answer to ``offer()``: media to its port, RTCP to a=rtcp or port + 1."""
        rtcp = answer.rtcp
        self.remote = (address, answer.port)
        self.remote_rtcp = (
            (rtcp.address or address, rtcp.port) if rtcp is not None else (address, answer.port + 1)
        )
        theirs = next(iter(answer.cryptos), None)
        if self.crypto is not None and theirs is not None:
            self.srtp = SdesSrtp(self.crypto, theirs)

    # ------------------------------------------------------------------------------------ sending

    def _picture(self, number: int) -> av.VideoFrame:
        """A blue picture with a white vertical bar that moves one step per frame."""
        frame = av.VideoFrame(width=self.width, height=self.height, format="yuv420p")
        y, u, v = frame.planes
        bar = (number * 8) % self.width
        row = bytes(41 if not bar <= x < bar + 16 else 235 for x in range(y.line_size))
        y.update(row * self.height)
        u.update(bytes([240]) * u.buffer_size)
        v.update(bytes([110]) * v.buffer_size)
        frame.pts, frame.time_base = number * 90000 // self.fps, fractions.Fraction(1, 90000)
        return frame

    async def send_video(
        self, seconds: float, *, skip_first: int = 0, drop: frozenset[int] = frozenset()
    ) -> None:
        """Send ``seconds`` of the pattern, paced; frames below ``skip_first`` and packets numbered in
        ``drop`` (counted from this call's first) are encoded but not sent."""
        count = round(seconds * self.fps)
        sent = 0
        first = self.sent_frames  # counted per frame: a send cancelled mid-way (sending()) goes on from there
        for number in range(count):
            force, self._force_keyframe = self._force_keyframe, False
            payloads, _ = self._encoder.encode(self._picture(first + number), force_keyframe=force)
            timestamp = (self.timestamp + (first + number) * 90000 // self.fps) & 0xFFFFFFFF
            for i, payload in enumerate(payloads):
                if number >= skip_first and sent not in drop:
                    self._send_rtp(payload, timestamp, i == len(payloads) - 1)
                self.sequence = (self.sequence + 1) & 0xFFFF
                sent += 1
            self.sent_frames = first + number + 1
            await asyncio.sleep(1 / self.fps)

    @contextlib.asynccontextmanager
    async def sending(self) -> AsyncIterator[None]:
        """Send the pattern as a phone does, on and on (a second at a time), while the block runs."""

        async def on_and_on() -> None:
            while True:
                await self.send_video(1.0)

        task = asyncio.ensure_future(on_and_on())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _send_rtp(self, payload: bytes, timestamp: int, marker: bool) -> None:
        if self._rtp is None or self.remote is None:
            return
        second = (0x80 if marker else 0) | (self.codec.payloadType or 0)
        data = _HEADER.pack(0x80, second, self.sequence, timestamp, self.ssrc) + payload
        self._rtp.sendto(data if self.srtp is None else self.srtp.protect(data), self.remote)

    def send_rtcp(self, packets: list[Any]) -> None:
        """A compound RTCP packet to the far end (protected with SRTP)."""
        if self._rtcp is None or self.remote_rtcp is None:
            return
        data = serialize_rtcp(packets)
        self._rtcp.sendto(data if self.srtp is None else self.srtp.protect_rtcp(data), self.remote_rtcp)

    def send_pli(self) -> None:
        """Ask the far end for a keyframe of its stream (RFC 4585 §6.3.1), after a receiver report."""
        if self._rtcp is None or self.remote_rtcp is None or not self.sources:
            return
        media = next(iter(self.sources))
        self.send_rtcp([RtcpReceiverReport(self.ssrc), PictureLoss(self.ssrc, media).to_rtcp()])

    def send_tmmbr(self, bitrate: int) -> bool:
        """Ask the far end to keep its stream to us under ``bitrate`` bit/s (RFC 5104 §4.2.1)."""
        if not self.sources:
            return False
        media = next(iter(self.sources))
        self.send_rtcp(
            [RtcpReceiverReport(self.ssrc), Tmmbr(self.ssrc, (TmmbrEntry(media, bitrate),)).to_rtcp()]
        )
        return True

    # ---------------------------------------------------------------------------------- receiving

    def _unprotect(self, data: bytes, rtcp: bool) -> bytes | None:
        if self.srtp is None:
            return data
        try:
            return self.srtp.unprotect_rtcp(data) if rtcp else self.srtp.unprotect(data)
        except Exception as exc:  # not authentic, or a copy (pylibsrtp.Error)
            if "replay" in str(exc):
                self.srtp_replayed += 1
            else:
                self.srtp_failed += 1
            return None

    def _on_rtp(self, data: bytes) -> None:
        clear = self._unprotect(data, rtcp=False)
        if clear is None:
            return
        data = clear
        try:
            packet = AiortcRtpPacket.parse(data)
        except ValueError:
            return
        if packet.payload_type != self.codec.payloadType:
            return
        self.received += 1
        self.sources.add(packet.ssrc)
        if is_keyframe(self.name, packet.payload):
            self.keyframes_received += 1
        try:
            data = (
                vp9.depayload(packet.payload)
                if self.name.upper() == "VP9"
                else depayload(self.codec, packet.payload)
            )
            packet._data = data  # type: ignore[attr-defined]
        except ValueError:
            self.malformed += 1
            return
        _, frame = self._jitter.add(packet)
        if frame is None:
            return
        for picture in self._decoder.decode(frame):
            assert isinstance(picture, av.VideoFrame)
            planes = [bytes(p) for p in picture.planes]
            means = [sum(p[:: max(1, len(p) // 4096)]) / len(p[:: max(1, len(p) // 4096)]) for p in planes]
            self.decoded.append((picture.width, picture.height, means[0], means[1], means[2]))

    def _on_rtcp(self, data: bytes) -> None:
        clear = self._unprotect(data, rtcp=True)
        if clear is None:
            return
        self.rtcp_received(clear)

    def rtcp_received(self, data: bytes) -> None:
        """A clear compound RTCP packet from the far end."""
        try:
            packets = parse_rtcp(data)
            wanted = keyframe_requests(packets)
            hints = bandwidth_hints(packets)
        except Exception:  # a test peer ignores what it cannot read
            return
        for hint in hints:  # TMMBR: entries for us, the media sender; TMMBN: tuples we own (RFC 5104 §4.2)
            mine = [e.bitrate for e in getattr(hint, "entries", ()) if e.ssrc == self.ssrc]
            if isinstance(hint, Tmmbn):
                self.tmmbn += mine
            elif isinstance(hint, Tmmbr):
                self.tmmbr += mine
        mine = [w for w in wanted if w.media == self.ssrc]
        if mine:
            self.plis += len(mine)
            self._force_keyframe = True

    def info(self, content_type: str, body: str) -> bool:
        """A SIP INFO to this phone: a picture_fast_update (RFC 5168) makes the next frame a keyframe."""
        if not is_picture_fast_update(content_type, body):
            return False
        self.infos += 1
        self._force_keyframe = True
        return True

    def close(self) -> None:
        for transport in (self._rtp, self._rtcp):
            if transport is not None:
                transport.close()
