"""Bandwidth hints between the legs, sans-I/O: the browser's REMB and a SIP side's TMMBR/TMMBN.

A receiver tells the sender of a stream how many bits per second it may send:

* the browser (``a=rtcp-fb:* goog-remb``) with a Receiver Estimated Maximum Bitrate: RTCP payload-specific
  feedback (PSFB, 206) FMT 15, "application layer feedback", whose FCI is the string ``REMB``, the number
  of SSRCs, a 6-bit exponent and an 18-bit mantissa (bitrate = mantissa * 2^exp) and the SSRCs of the
  streams it applies to (draft-alvestrand-rmcat-remb-03 §2.2);
* a SIP phone that negotiated ``a=rtcp-fb:* ccm tmmbr`` (RFC 5104 §7.1) with a Temporary Maximum Media
  Stream Bit Rate Request: transport-layer feedback (RTPFB, 205) FMT 3, one FCI entry per media sender:
  its SSRC, a 6-bit exponent, a 17-bit mantissa and 9 bits of measured per-packet overhead (§4.2.1.1).
  The media sender answers with a TMMBN (FMT 4, the same entries: the bounding set it now obeys,
  §4.2.2): the gateway answers a phone's TMMBR so with the phone's own entry.

The gateway has no encoder: it maps one into the other (``VideoBridge``): the browser's REMB for the
phone's stream becomes a TMMBR toward the phone, a phone's TMMBR for our stream a REMB toward the
browser; toward a SIP side without ``ccm tmmbr`` nothing is sent. ``HintRelay`` keeps the repeats down
(RFC 5104 §4.2.1.2: a request is repeated only when it changes, or to refresh it).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Self

from gateway.media.errors import PacketError
from gateway.media.rtp.packet import check_range
from gateway.media.rtp.rtcp import RtcpPacket, RtcpUnknown

__all__ = [
    "MIN_USEFUL_BITRATE",
    "RTCP_RTPFB",
    "HintRelay",
    "Remb",
    "Tmmbn",
    "Tmmbr",
    "TmmbrEntry",
    "bandwidth_hints",
    "negotiated_tmmbr",
]

RTCP_RTPFB = 205  # RFC 4585 §6.1: transport-layer feedback
RTCP_PSFB = 206
FMT_TMMBR = 3  # RFC 5104 §4.2.1
FMT_TMMBN = 4  # RFC 5104 §4.2.2
FMT_AFB = 15  # RFC 4585 §6.4: application layer feedback (REMB)
REMB_ID = b"REMB"
# IPv4 (20) + UDP (8) + RTP (12): the per-packet overhead the gateway declares in a TMMBR (RFC 5104 §4.2.1.2)
DEFAULT_OVERHEAD = 40
MAX_BITRATE = (2**17 - 1) * 2**63  # what a TMMBR can say; REMB can say more, capped to this
# A REMB under this is no estimate: Chromium's receive-side estimator sits at its floor (5 kbit/s,
# AimdRateControl's minimum) every 200 ms when the stream has no abs-send-time extension (the gateway's
# video toward the browser has none); passed on as a TMMBR it would stop a phone's video.
MIN_USEFUL_BITRATE = 10_000


def _split(bitrate: int, mantissa_bits: int) -> tuple[int, int]:
    """(exponent, mantissa) with mantissa < 2^mantissa_bits and mantissa * 2^exponent <= bitrate, the
    largest such (rounded down: a limit must not be exceeded, RFC 5104 §4.2.1.1)."""
    exponent = 0
    while bitrate >> exponent >= 1 << mantissa_bits:
        exponent += 1
    return exponent, bitrate >> exponent


@dataclass(frozen=True, slots=True)
class Remb:
    """A REMB from ``sender``: at most ``bitrate`` bit/s for the streams ``ssrcs``."""

    sender: int
    bitrate: int
    ssrcs: tuple[int, ...]

    def __post_init__(self) -> None:
        check_range("REMB sender SSRC", self.sender, 0, 2**32 - 1)
        check_range("REMB bitrate", self.bitrate, 0, MAX_BITRATE)
        check_range("REMB SSRC count", len(self.ssrcs), 0, 255)
        for ssrc in self.ssrcs:
            check_range("REMB SSRC", ssrc, 0, 2**32 - 1)

    def to_rtcp(self) -> RtcpUnknown:
        exponent, mantissa = _split(self.bitrate, 18)
        body = struct.pack("!II4sBBH", self.sender, 0, REMB_ID, len(self.ssrcs), (exponent << 2) | mantissa >> 16,
                           mantissa & 0xFFFF)  # fmt: skip
        return RtcpUnknown(RTCP_PSFB, FMT_AFB, body + b"".join(struct.pack("!I", s) for s in self.ssrcs))

    @classmethod
    def parse(cls, body: bytes) -> Remb | None:
        """A PSFB FMT 15 body: the REMB, or None for another application's feedback."""
        if len(body) < 16 or body[8:12] != REMB_ID:
            return None
        sender = struct.unpack_from("!I", body)[0]
        count, exp_high, low = struct.unpack_from("!BBH", body, 12)
        if len(body) < 16 + 4 * count:
            raise PacketError(
                f"REMB of {len(body)} bytes for {count} SSRCs (draft-alvestrand-rmcat-remb §2.2)"
            )
        bitrate = ((exp_high & 0x03) << 16 | low) << (exp_high >> 2)
        ssrcs = struct.unpack_from(f"!{count}I", body, 16)
        return cls(sender, min(bitrate, MAX_BITRATE), ssrcs)


@dataclass(frozen=True, slots=True)
class TmmbrEntry:
    """One FCI entry of a TMMBR or TMMBN (RFC 5104 §4.2.1.1): the media sender ``ssrc``, the maximum
    total media bit rate and the measured overhead per packet (bytes)."""

    ssrc: int
    bitrate: int
    overhead: int = DEFAULT_OVERHEAD

    def __post_init__(self) -> None:
        check_range("TMMBR SSRC", self.ssrc, 0, 2**32 - 1)
        check_range("TMMBR bitrate", self.bitrate, 0, MAX_BITRATE)
        check_range("TMMBR overhead", self.overhead, 0, 511)

    def pack(self) -> bytes:
        exponent, mantissa = _split(self.bitrate, 17)
        return struct.pack("!II", self.ssrc, exponent << 26 | mantissa << 9 | self.overhead)

    @classmethod
    def unpack(cls, data: bytes, pos: int) -> TmmbrEntry:
        ssrc, word = struct.unpack_from("!II", data, pos)
        return cls(ssrc, ((word >> 9) & 0x1FFFF) << (word >> 26), word & 0x1FF)


@dataclass(frozen=True, slots=True)
class Tmmbr:
    """A TMMBR from ``sender`` (RFC 5104 §4.2.1): each entry asks its media sender for that limit."""

    FMT = FMT_TMMBR
    sender: int
    entries: tuple[TmmbrEntry, ...]

    def __post_init__(self) -> None:
        check_range(f"{type(self).__name__} sender SSRC", self.sender, 0, 2**32 - 1)

    def to_rtcp(self) -> RtcpUnknown:
        # §4.2.1.1: the common header's "SSRC of media source" is unused and set to 0
        body = struct.pack("!II", self.sender, 0) + b"".join(e.pack() for e in self.entries)
        return RtcpUnknown(RTCP_RTPFB, self.FMT, body)

    @classmethod
    def parse(cls, body: bytes) -> Self:
        if len(body) < 8 or (len(body) - 8) % 8:
            raise PacketError(
                f"RTCP {cls.__name__} of {len(body)} bytes: 8 and 8 per FCI entry (RFC 5104 §4.2)"
            )
        entries = tuple(TmmbrEntry.unpack(body, pos) for pos in range(8, len(body), 8))
        return cls(struct.unpack_from("!I", body)[0], entries)


@dataclass(frozen=True, slots=True)
class Tmmbn(Tmmbr):
    """A TMMBN (RFC 5104 §4.2.2): the bounding set the media sender ``sender`` obeys now."""

    FMT = FMT_TMMBN


def bandwidth_hints(packets: Iterable[RtcpPacket]) -> list[Remb | Tmmbr | Tmmbn]:
    """The REMBs, TMMBRs and TMMBNs of a compound RTCP packet; ``PacketError`` for a malformed one."""
    found: list[Remb | Tmmbr | Tmmbn] = []
    for packet in packets:
        if not isinstance(packet, RtcpUnknown):
            continue
        if packet.packet_type == RTCP_PSFB and packet.count == FMT_AFB:
            remb = Remb.parse(packet.body)
            if remb is not None:
                found.append(remb)
        elif packet.packet_type == RTCP_RTPFB and packet.count == FMT_TMMBR:
            found.append(Tmmbr.parse(packet.body))
        elif packet.packet_type == RTCP_RTPFB and packet.count == FMT_TMMBN:
            found.append(Tmmbn.parse(packet.body))
    return found


def negotiated_tmmbr(feedback: Iterable[str]) -> bool:
    """Whether a codec's ``a=rtcp-fb`` values include ``ccm tmmbr`` (RFC 5104 §7.1)."""
    return any(" ".join(fb.split()).lower() == "ccm tmmbr" for fb in feedback)


class HintRelay:
    """The limits passed on toward one side: a new one goes when it differs by more than ``change``
    (a fraction) from the last sent, or ``refresh`` seconds after it (RFC 5104 §4.2.1.2); ``sent``
    counts them, ``last`` is the last sent."""

    __slots__ = ("_at", "change", "last", "refresh", "sent")

    def __init__(self, change: float = 0.05, refresh: float = 5.0) -> None:
        if not 0 <= change < 1 or refresh <= 0:
            raise ValueError(f"change must be in [0, 1) and refresh positive: {change!r}, {refresh!r}")
        self.change, self.refresh = change, refresh
        self.last: int | None = None
        self._at = 0.0
        self.sent = 0

    def want(self, bitrate: int, now: float) -> bool:
        last = self.last
        if last is not None and abs(bitrate - last) <= self.change * last and now - self._at < self.refresh:
            return False
        self.last, self._at = bitrate, now
        self.sent += 1
        return True
