"""RTP packets (RFC 3550 §5), sans-I/O, and the constants and helpers RTCP and statistics share.

``RtpPacket``: the fixed header of RFC 3550 §5.1 with CSRCs, the header extension of §5.3.1 (kept
opaque) and padding. ``RtpPacket.parse(serialize(p)) == p`` for every valid packet. Everything malformed
raises ``PacketError`` and nothing else. RTCP lives in ``rtcp.py``, receive statistics in ``rtp_stats.py``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from gateway.media.errors import PacketError

RTP_VERSION = 2
RTP_HEADER_SIZE = 12
RTCP_HEADER_SIZE = 4
PT_COMFORT_NOISE = 13  # RFC 3389, static payload type of RFC 3551 §6

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203

SDES_CNAME = 1  # RFC 3550 §6.5.1
NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01

U16_MAX = 0xFFFF
U32_MAX = 0xFFFF_FFFF


def check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise PacketError(f"{name} must be in [{low}, {high}], got {value!r}")


def is_rtcp(data: bytes) -> bool:
    """Tell RTCP from RTP on a shared (rtcp-mux) port: RFC 5761 §4, packet types 192-223."""
    return len(data) >= 2 and 192 <= data[1] <= 223


def ntp_from_unix(seconds: float) -> int:
    """The 64-bit NTP timestamp (RFC 3550 §4) of a Unix time."""
    ntp = seconds + NTP_EPOCH_OFFSET
    whole = int(ntp)
    return ((whole & U32_MAX) << 32) | int((ntp - whole) * (1 << 32)) & U32_MAX


def ntp_middle32(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp, as used in LSR (RFC 3550 §6.4.1)."""
    return (ntp >> 16) & U32_MAX


# ---------------------------------------------------------------------------------------------- RTP


@dataclass(frozen=True, slots=True)
class RtpHeaderExtension:
    """RFC 3550 §5.3.1: a 16-bit profile-defined value and data in 32-bit words (kept opaque)."""

    profile: int
    data: bytes = b""

    def __post_init__(self) -> None:
        check_range("extension profile", self.profile, 0, U16_MAX)
        if len(self.data) % 4 or len(self.data) > 4 * U16_MAX:
            raise PacketError(f"extension data must be whole 32-bit words, got {len(self.data)} bytes")


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """An RTP data packet (RFC 3550 §5.1). ``padding`` is the padding length in octets (0: none)."""

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension: RtpHeaderExtension | None = None
    padding: int = 0

    def __post_init__(self) -> None:
        check_range("payload type", self.payload_type, 0, 127)
        check_range("sequence number", self.sequence_number, 0, U16_MAX)
        check_range("timestamp", self.timestamp, 0, U32_MAX)
        check_range("ssrc", self.ssrc, 0, U32_MAX)
        check_range("padding", self.padding, 0, 255)
        if len(self.csrc) > 15:
            raise PacketError(f"at most 15 CSRCs fit in the CC field, got {len(self.csrc)}")
        for csrc in self.csrc:
            check_range("csrc", csrc, 0, U32_MAX)

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        if len(data) < RTP_HEADER_SIZE:
            raise PacketError(f"RTP packet too short: {len(data)} bytes")
        first, second, seq, timestamp, ssrc = _HEADER.unpack_from(data)
        if first >> 6 != RTP_VERSION:
            raise PacketError(f"RTP version must be 2, got {first >> 6}")
        pos = RTP_HEADER_SIZE + 4 * (first & 0x0F)
        if len(data) < pos:
            raise PacketError(f"RTP packet too short for {first & 0x0F} CSRCs: {len(data)} bytes")
        csrc = struct.unpack_from(f"!{first & 0x0F}I", data, RTP_HEADER_SIZE) if first & 0x0F else ()
        extension = None
        if first & 0x10:  # RFC 3550 §5.3.1
            if len(data) < pos + 4:
                raise PacketError("RTP header extension truncated")
            profile, words = struct.unpack_from("!HH", data, pos)
            end = pos + 4 + 4 * words
            if len(data) < end:
                raise PacketError(f"RTP header extension of {words} words truncated")
            extension = RtpHeaderExtension(profile, bytes(data[pos + 4 : end]))
            pos = end
        end = len(data)
        padding = 0
        if first & 0x20:  # RFC 3550 §5.1: the last octet counts the padding, itself included
            padding = data[-1]
            if padding == 0 or padding > end - pos:
                raise PacketError(f"invalid RTP padding length {padding}")
            end -= padding
        # every field is in range by construction: skip __post_init__'s checks (this runs per packet)
        packet = object.__new__(cls)
        _set(packet, "payload_type", second & 0x7F)
        _set(packet, "sequence_number", seq)
        _set(packet, "timestamp", timestamp)
        _set(packet, "ssrc", ssrc)
        _set(packet, "payload", bytes(data[pos:end]))
        _set(packet, "marker", second > 127)
        _set(packet, "csrc", csrc)
        _set(packet, "extension", extension)
        _set(packet, "padding", padding)
        return packet

    def serialize(self) -> bytes:
        first = (RTP_VERSION << 6) | len(self.csrc)
        if self.padding:
            first |= 0x20
        if self.extension is not None:
            first |= 0x10
        second = self.payload_type | (0x80 if self.marker else 0)
        parts = [
            _HEADER.pack(first, second, self.sequence_number, self.timestamp, self.ssrc),
            struct.pack(f"!{len(self.csrc)}I", *self.csrc),
        ]
        if self.extension is not None:
            ext = self.extension
            parts.append(struct.pack("!HH", ext.profile, len(ext.data) // 4) + ext.data)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes([self.padding]))
        return b"".join(parts)


_HEADER = struct.Struct("!BBHII")
_set = object.__setattr__  # how a frozen dataclass's own __init__ sets its fields (parse sets all)
