"""VP9 for the test video phone (``peers.video_phone``): aiortc has no VP9, so libvpx-vp9 and FFmpeg's
vp9 decoder through PyAV, with the RTP payload format of RFC 9628.

* ``Vp9Encoder.encode(frame, force_keyframe)`` -> (payloads, timestamp), as aiortc's encoders: each
  frame in packets of at most ``MTU`` bytes, each with a non-flexible payload descriptor (§4.2: I=1 and
  a 15-bit picture ID, P=1 unless a keyframe, B on the first, E on the last; no layers, as a phone that
  sends one spatial and temporal layer writes it);
* ``depayload(payload)``: the VP9 data of a packet, its descriptor skipped, in either mode (Chromium
  writes the flexible one: F=1, with P_DIFF bytes; layer indices, TL0PICIDX, scalability structure);
* ``Vp9Decoder.decode(frame)``: the pictures of a frame reassembled by aiortc's ``JitterBuffer``.
"""

from __future__ import annotations

import fractions

import av
from aiortc.jitterbuffer import JitterFrame

__all__ = ["Vp9Decoder", "Vp9Encoder", "depayload"]

MTU = 1100


class Vp9Encoder:
    def __init__(self, width: int, height: int, fps: int, bitrate: int = 500_000) -> None:
        self._codec = av.CodecContext.create("libvpx-vp9", "w")
        self._codec.width, self._codec.height = width, height
        self._codec.pix_fmt = "yuv420p"
        self._codec.time_base = fractions.Fraction(1, 90000)
        self._codec.framerate = fractions.Fraction(fps, 1)
        self._codec.bit_rate = bitrate
        self._codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
        self._picture_id = 0

    def encode(self, frame: av.VideoFrame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        if force_keyframe:
            frame.pict_type = av.video.frame.PictureType.I
        payloads: list[bytes] = []
        for packet in self._codec.encode(frame):
            data = bytes(packet)
            chunks = [data[i : i + MTU] for i in range(0, len(data), MTU)] or [b""]
            pid = self._picture_id
            self._picture_id = (pid + 1) & 0x7FFF
            for n, chunk in enumerate(chunks):
                first = 0x80 | (0 if packet.is_keyframe else 0x40)  # I, P
                first |= (0x08 if n == 0 else 0) | (0x04 if n == len(chunks) - 1 else 0)  # B, E
                payloads.append(bytes([first, 0x80 | pid >> 8, pid & 0xFF]) + chunk)
        return payloads, frame.pts or 0


def depayload(payload: bytes) -> bytes:
    """The VP9 data after the payload descriptor (RFC 9628 §4.2); ValueError when it is cut short."""
    if not payload:
        raise ValueError("empty VP9 payload")
    first = payload[0]
    picture_id, predicted, layers, flexible = first & 0x80, first & 0x40, first & 0x20, first & 0x10
    pos = 1
    if picture_id:
        pos += 2 if len(payload) > pos and payload[pos] & 0x80 else 1
    if layers:
        pos += 1 if flexible else 2  # TID/U/SID/D, and TL0PICIDX in non-flexible mode
    if flexible and predicted:  # up to 3 P_DIFF bytes, N set on all but the last
        while len(payload) > pos and payload[pos] & 0x01:
            pos += 1
        pos += 1
    if first & 0x02:  # V: the scalability structure (§4.2.1)
        if len(payload) <= pos:
            raise ValueError("VP9 descriptor cut short")
        ss = payload[pos]
        pos += 1
        if ss & 0x10:  # Y: a width and height per spatial layer
            pos += 4 * ((ss >> 5) + 1)
        if ss & 0x08:  # G: the picture group description
            groups = payload[pos]
            pos += 1
            for _ in range(groups):
                pos += 1 + ((payload[pos] >> 2) & 0x03)
    if pos > len(payload):
        raise ValueError("VP9 descriptor cut short")
    return payload[pos:]


class Vp9Decoder:
    def __init__(self) -> None:
        self._codec = av.CodecContext.create("vp9", "r")

    def decode(self, frame: JitterFrame) -> list[av.VideoFrame]:
        try:
            return [f for f in self._codec.decode(av.Packet(frame.data)) if isinstance(f, av.VideoFrame)]
        except av.FFmpegError:
            return []
