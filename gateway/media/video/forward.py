"""One direction of video between the legs, sans-I/O: RTP in, RTP out, never decoded.

Video is passed through: both legs negotiated one encoding with compatible parameters (``sdp.video``),
so a packet only gets new numbers:

* **payload type**: the input leg's number of a codec -> the output leg's (``configure``); repair
  formats (rtx, red, ulpfec, flexfec) and anything else not negotiated on both legs are dropped,
  so a plain SIP side that did not negotiate them never sees them (RFC 4588 §4: RTX has its own SSRC
  and payload type; forwarded as media it would be garbage);
* **sequence number**: continuous across source changes, with the input's gaps kept (the receiver
  needs them to see loss and ask for a keyframe); padding-only packets (bandwidth probes, RFC 3550
  §5.1) are not forwarded and leave no gap;
* **timestamp**: on the output leg's timeline (``retime.TimestampMapper``, 90 kHz both sides), so a
  new source (re-INVITE, early media then answer) continues it;
* the output leg's sender writes its own SSRC.

A new input source, a (re)configured path and ``restart()`` set ``keyframe_wanted``: the bridge then
asks the input side for a keyframe (RTCP PLI/FIR or SIP INFO, ``keyframe``), since the far receiver
cannot decode from the middle of a group of pictures. ``is_keyframe`` recognises the start of a
VP8, VP9 or H.264 keyframe from the payload headers only (for statistics and tests).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.media.rtp.retime import TimestampMapper

if TYPE_CHECKING:
    from gateway.media.fastlane.native import VideoSnapshot

__all__ = ["VideoLaneState", "VideoOut", "VideoPath", "VideoStats", "is_keyframe"]

logger = logging.getLogger(__name__)

VIDEO_RATE = 90000  # RFC 6184 §8.2.1, RFC 7741 §6.1, RFC 9628 §6: 90 kHz for every video codec here


@dataclass(frozen=True, slots=True)
class VideoOut:
    """A packet for the output leg (its sender adds its SSRC)."""

    payload_type: int
    sequence: int
    timestamp: int
    marker: bool
    payload: bytes


@dataclass(frozen=True, slots=True)
class VideoLaneState:
    """What the fast lane's engine needs to treat a direction's next packets as ``VideoPath.feed`` would
    (``VideoPath.lane``): the source, the payload type map (input -> output; repair and codec names by
    input payload type), the sequence number state and the timestamp mapper's anchors."""

    ssrc: int
    mapping: tuple[tuple[int, int], ...]
    repair: frozenset[int]
    codecs: tuple[tuple[int, str], ...]
    offset: int
    last_out: int
    highest: int  # -1: none yet
    anchor_in: int
    anchor_out: int
    last_in: int
    last_now: float


@dataclass(frozen=True, slots=True)
class VideoStats:
    received: int
    forwarded: int
    repair_dropped: int
    dropped: int
    lost: int
    keyframes: int


class VideoPath:
    """Forwarding state of one video direction; ``configure`` after each negotiation."""

    def __init__(self, name: str, *, call_id: str = "-", start_sequence: int = 0) -> None:
        self.name = name
        self._call = call_id
        self.enabled = True
        self._map: dict[int, int] = {}
        self._codecs: dict[int, str] = {}
        self._repair: frozenset[int] = frozenset()
        self._mapper = TimestampMapper(VIDEO_RATE, VIDEO_RATE, name=f"call={call_id} {name}")
        self._ssrc: int | None = None
        self._offset = 0
        self._last_out = (start_sequence - 1) & 0xFFFF
        self._highest: int | None = None
        # the first output number of the current offset (None: any): a late packet mapped below it would
        # take a number already sent (RFC 3711 §9.1: one SRTP index, two payloads)
        self._floor: int | None = None
        self.keyframe_wanted = False
        self.received = self.forwarded = self.repair_dropped = self.dropped = self.lost = self.keyframes = 0
        self.padding = 0

    def configure(
        self, mapping: Mapping[int, int], codecs: Mapping[int, str], repair: frozenset[int] = frozenset()
    ) -> None:
        """``mapping``: input payload type -> output payload type of each codec both legs negotiated;
        ``codecs``: input payload type -> encoding name; ``repair``: the input's repair payload types
        (counted apart when dropped). A changed mapping asks for a keyframe."""
        new = dict(mapping)
        if new != self._map:
            self.keyframe_wanted = bool(new)
        self._map, self._codecs, self._repair = new, dict(codecs), repair

    def restart(self) -> None:
        """The output leg (re)started (ICE/DTLS connected again, a new web leg): ask for a keyframe."""
        self.keyframe_wanted = True

    def take_keyframe_request(self) -> bool:
        """Whether the input side should be asked for a keyframe now (clears the wish)."""
        wanted, self.keyframe_wanted = self.keyframe_wanted, False
        return wanted

    def stats(self) -> VideoStats:
        return VideoStats(
            self.received, self.forwarded, self.repair_dropped, self.dropped, self.lost, self.keyframes
        )

    def lane(self) -> VideoLaneState | None:
        """The state the fast lane continues from, or None when the next packet must go this way (held,
        nothing negotiated, no packet of the source mapped yet)."""
        mapper, ssrc = self._mapper, self._ssrc
        state = mapper.anchor_state()
        if (
            not self.enabled
            or self.keyframe_wanted  # the next packet goes the Python way, which asks for the keyframe
            or not self._map
            or ssrc is None
            or state is None
            or mapper.ssrc != ssrc
        ):
            return None
        anchor_in, anchor_out, last_in, last_now = state
        return VideoLaneState(
            ssrc, tuple(self._map.items()), self._repair, tuple(self._codecs.items()), self._offset,
            self._last_out, -1 if self._highest is None else self._highest, anchor_in, anchor_out, last_in,
            last_now,
        )  # fmt: skip

    def fast_account(self, snap: VideoSnapshot) -> None:
        """Packets the fast lane's engine took as ``feed`` would (its counts since the last snapshot) and
        the numbers it left: sequence offset, last output, highest input, the mapper's last packet."""
        self.received += snap.received
        self.forwarded += snap.forwarded
        self.repair_dropped += snap.repair_dropped
        self.dropped += snap.dropped
        self.lost += snap.lost
        self.keyframes += snap.keyframes
        self.padding += snap.padding
        if snap.ssrc != self._ssrc:
            return  # a new source since the engine's packets: feed() handled it
        if snap.offset != self._offset:  # the engine closed up over padding: its floor, as it set it
            self._floor = (snap.last_out + 1) & 0xFFFF
        else:  # the floor trails the engine's numbers out as it trails ours (feed)
            self._floor = _trailing(self._floor, snap.last_out)
        self._offset, self._last_out = snap.offset, snap.last_out
        self._highest = None if snap.highest < 0 else snap.highest
        if snap.forwarded and not self._mapper.advance(snap.ssrc, snap.ts, snap.arrival, snap.mapped):
            self._mapper.map(snap.ssrc, snap.ts, snap.arrival)

    def feed(
        self, ssrc: int, seq: int, timestamp: int, payload_type: int, marker: bool, payload: bytes, now: float
    ) -> VideoOut | None:
        """The packet to send on the output leg, or None (held, repair, not negotiated)."""
        self.received += 1
        out_pt = self._map.get(payload_type)
        if not payload and out_pt is not None and self._ssrc == ssrc:
            # RFC 3550 §5.1: padding only (a browser probing bandwidth): not forwarded, and the numbers
            # after it close up so the receiver sees no loss (taken in order only)
            if self._highest is not None and seq == (self._highest + 1) & 0xFFFF:
                self._highest = seq
                self._offset = (self._offset - 1) & 0xFFFF
                self._floor = (self._last_out + 1) & 0xFFFF
            self.padding += 1
            return None
        if out_pt is None or not self.enabled:
            if payload_type in self._repair:
                self.repair_dropped += 1
            else:
                self.dropped += 1
            return None
        if ssrc != self._ssrc:
            if self._ssrc is not None:
                logger.info("call=%s %s new source SSRC %08x: keyframe asked", self._call, self.name, ssrc)
            self._ssrc = ssrc
            self._offset = (self._last_out + 1 - seq) & 0xFFFF
            self._floor = (self._last_out + 1) & 0xFFFF
            self._highest = None
            self.keyframe_wanted = True
        self._count_loss(seq)
        out_seq = (seq + self._offset) & 0xFFFF
        floor = self._floor
        if floor is not None and ((out_seq - floor) & 0xFFFF) >= 0x8000:
            self.dropped += 1  # late across a new offset: its number was another packet's
            return None
        if _newer(out_seq, self._last_out):
            self._last_out = out_seq
            self._floor = _trailing(floor, out_seq)
        if is_keyframe(self._codecs.get(payload_type, ""), payload):
            self.keyframes += 1
        self.forwarded += 1
        return VideoOut(out_pt, out_seq, self._mapper.map(ssrc, timestamp, now), marker, payload)

    def _count_loss(self, seq: int) -> None:
        highest = self._highest
        if highest is None or _newer(seq, highest):
            if highest is not None:
                gap = (seq - highest - 1) & 0xFFFF
                self.lost += gap if gap < 3000 else 0  # RFC 3550 A.1 MAX_DROPOUT: a restart, not loss
            self._highest = seq


# how far the floor may trail the last number out: a packet that late is long refused by SRTP's replay
# window (1 024), and the floor must stay within half the number space of the top to mean "before"
FLOOR_TRAIL = 0x4000


def _trailing(floor: int | None, top: int) -> int | None:
    """``floor`` moved up to FLOOR_TRAIL below ``top`` (the last number out) when it is further below:
    within half the number space of the top it still means "before"."""
    if floor is not None and FLOOR_TRAIL <= ((top - floor) & 0xFFFF) < 0x8000:
        return (top - FLOOR_TRAIL) & 0xFFFF
    return floor


def _newer(a: int, b: int) -> bool:
    """Whether sequence number ``a`` is after ``b`` (RFC 3550 §A.1, modulo 2^16)."""
    return a != b and ((a - b) & 0xFFFF) < 0x8000


def is_keyframe(codec: str, payload: bytes) -> bool:
    """Whether ``payload`` starts a keyframe of ``codec`` (VP8, VP9, H264; False for others)."""
    name = codec.lower()
    if name == "vp8":
        return _vp8_keyframe(payload)
    if name == "vp9":
        return _vp9_keyframe(payload)
    if name == "h264":
        return _h264_keyframe(payload)
    return False


def _vp8_keyframe(payload: bytes) -> bool:
    """RFC 7741 §4.2-4.3: the payload descriptor (X, I, L, T/K extensions), S=1 and PID=0 on the first
    partition, then the VP8 frame tag whose P bit (bit 0) is 0 for a key frame (RFC 6386 §9.1)."""
    if not payload:
        return False
    first = payload[0]
    start, pid = bool(first & 0x10), first & 0x07
    pos = 1
    if first & 0x80:  # X: an extension byte follows
        if len(payload) < 2:
            return False
        ext = payload[1]
        pos = 2
        if ext & 0x80:  # I: picture id, 7 or 15 bits
            if len(payload) <= pos:
                return False
            pos += 2 if payload[pos] & 0x80 else 1
        pos += 1 if ext & 0x40 else 0  # L: TL0PICIDX
        pos += 1 if ext & 0x30 else 0  # T or K: one byte
    return start and pid == 0 and len(payload) > pos and not payload[pos] & 0x01


def _vp9_keyframe(payload: bytes) -> bool:
    """RFC 9628 §4.2: P=0 (not inter-picture predicted) and B=1 (the start of a frame)."""
    return bool(payload) and not payload[0] & 0x40 and bool(payload[0] & 0x08)


def _h264_keyframe(payload: bytes) -> bool:
    """RFC 6184 §5.6-5.8: an IDR slice (NAL type 5) or a sequence parameter set (7), alone, in a
    STAP-A (24), or at the start of an FU-A (28, S bit)."""
    if not payload:
        return False
    kind = payload[0] & 0x1F
    if kind in (5, 7):
        return True
    if kind == 28:
        return len(payload) > 1 and bool(payload[1] & 0x80) and (payload[1] & 0x1F) in (5, 7)
    if kind == 24:
        pos = 1
        while pos + 2 < len(payload):
            size = int.from_bytes(payload[pos : pos + 2], "big")
            if size and (payload[pos + 2] & 0x1F) in (5, 7):
                return True
            pos += 2 + size
    return False
