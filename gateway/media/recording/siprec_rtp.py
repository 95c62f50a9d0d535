"""`SiprecStreams`: a recorded call's two legs as PCMU RTP to a SIPREC recording server (RFC 7866).

The recorder (``recorder``) hands each leg's decoded PCM (channel 0: the web user, 1: the SIP party, at
the recording's rate) to ``pcm``; each channel is cut into 20 ms frames, G.711 µ-law encoded with the
gateway's own table (gateway/media/codecs/transcode.py) and sent from its own UDP socket to the address
the SRS answered for its label. Frames go as the audio arrives (the legs are paced by their senders);
a pause sends nothing (the RTP timestamps then continue where they stopped, with the marker bit set).
16 kHz PCM is halved to 8 kHz by averaging pairs of samples.
"""

from __future__ import annotations

import array
import logging
import operator
import secrets
import socket
from typing import cast

from gateway.media.codecs.transcode import g711_tables
from gateway.media.rtp.packet import RtpPacket

logger = logging.getLogger(__name__)

FRAME = 160  # samples of 20 ms at 8 kHz
PCMU = 0


class _Stream:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.destination: tuple[str, int] | None = None
        self.pending = bytearray()  # 8 kHz PCM not yet sent
        self.ssrc = secrets.randbits(32)
        self.sequence = secrets.randbits(16)
        self.timestamp = secrets.randbits(32)
        self.marker = True
        self.sent = 0


class SiprecStreams:
    """Two UDP sockets bound on ``host`` (any free port each); ``ports`` for the SDP offer."""

    def __init__(self, host: str, rate: int) -> None:
        self.rate = rate
        self._table = g711_tables("pcm_mulaw").encode
        self._streams: list[_Stream] = []
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            for _ in range(2):
                sock = socket.socket(family, socket.SOCK_DGRAM)
                self._streams.append(_Stream(sock))
                sock.setblocking(False)
                sock.bind((host, 0))
        except OSError:
            self.close()
            raise
        self.closed = False

    @property
    def ports(self) -> tuple[int, int]:
        first, second = (int(s.sock.getsockname()[1]) for s in self._streams)
        return first, second

    @property
    def sent(self) -> tuple[int, ...]:
        """RTP packets sent per stream."""
        return tuple(s.sent for s in self._streams)

    def send_to(self, destinations: tuple[tuple[str, int] | None, ...]) -> None:
        """Where each stream goes (the SRS's answer); None: not sent."""
        for stream, destination in zip(self._streams, destinations, strict=False):
            stream.destination = destination

    def pause(self) -> None:
        """The next frame of each stream starts a talkspurt (marker bit); what was pending is dropped."""
        for stream in self._streams:
            stream.pending.clear()
            stream.marker = True

    def pcm(self, channel: int, pcm: bytes) -> None:
        """Native 16-bit mono PCM of ``channel`` at the recording's rate."""
        if self.closed or not 0 <= channel < len(self._streams):
            return
        stream = self._streams[channel]
        if stream.destination is None:
            return
        if self.rate != 8000:
            samples = array.array("h", pcm[: len(pcm) // 4 * 4])
            pcm = array.array(
                "h", ((a + b) >> 1 for a, b in zip(samples[0::2], samples[1::2], strict=True))
            ).tobytes()
        stream.pending += pcm
        while len(stream.pending) >= 2 * FRAME:
            frame = bytes(stream.pending[: 2 * FRAME])
            del stream.pending[: 2 * FRAME]
            self._send(stream, frame)

    def _send(self, stream: _Stream, frame: bytes) -> None:
        payload = bytes(cast(tuple[int, ...], operator.itemgetter(*memoryview(frame).cast("H"))(self._table)))
        packet = RtpPacket(
            payload_type=PCMU, sequence_number=stream.sequence, timestamp=stream.timestamp, ssrc=stream.ssrc,
            payload=payload, marker=stream.marker,
        )  # fmt: skip
        stream.sequence = (stream.sequence + 1) & 0xFFFF
        stream.timestamp = (stream.timestamp + FRAME) & 0xFFFFFFFF
        stream.marker = False
        assert stream.destination is not None
        try:
            stream.sock.sendto(packet.serialize(), stream.destination)
            stream.sent += 1
        except OSError as exc:  # (BlockingIOError: a full buffer drops the frame, as the network would)
            logger.debug("SIPREC RTP to %s not sent: %s", stream.destination, exc)

    def close(self) -> None:
        self.closed = True
        for stream in self._streams:
            stream.sock.close()
