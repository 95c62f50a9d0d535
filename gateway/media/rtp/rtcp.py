"""RTCP packets (RFC 3550 §6.4), sans-I/O.

Sender and receiver reports, SDES, BYE; any other packet type (APP, feedback, XR) is kept as
``RtcpUnknown`` so compound packets from any peer parse. ``parse_rtcp`` splits a compound packet (§6.1),
``serialize_rtcp`` joins one. Everything malformed raises ``PacketError`` and nothing else.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, TypeAlias

from gateway.media.errors import PacketError
from gateway.media.rtp.packet import (
    RTCP_BYE,
    RTCP_HEADER_SIZE,
    RTCP_RR,
    RTCP_SDES,
    RTCP_SR,
    RTP_VERSION,
    SDES_CNAME,
    U32_MAX,
    check_range,
)

# --------------------------------------------------------------------------------------------- RTCP


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """RFC 3550 §6.4.1 reception report block; ``cumulative_lost`` is signed 24-bit."""

    ssrc: int
    fraction_lost: int = 0
    cumulative_lost: int = 0
    extended_highest_sequence: int = 0
    jitter: int = 0
    last_sr: int = 0
    delay_since_last_sr: int = 0

    SIZE: ClassVar[int] = 24

    def __post_init__(self) -> None:
        check_range("report ssrc", self.ssrc, 0, U32_MAX)
        check_range("fraction lost", self.fraction_lost, 0, 255)
        check_range("cumulative lost", self.cumulative_lost, -0x800000, 0x7FFFFF)
        for name in ("extended_highest_sequence", "jitter", "last_sr", "delay_since_last_sr"):
            check_range(name, getattr(self, name), 0, U32_MAX)

    @classmethod
    def parse(cls, data: bytes, pos: int) -> ReportBlock:
        ssrc, lost_word, highest, jitter, lsr, dlsr = struct.unpack_from("!IIIIII", data, pos)
        cumulative = lost_word & 0xFFFFFF
        if cumulative & 0x800000:
            cumulative -= 0x1000000
        return cls(ssrc, lost_word >> 24, cumulative, highest, jitter, lsr, dlsr)

    def serialize(self) -> bytes:
        lost_word = (self.fraction_lost << 24) | (self.cumulative_lost & 0xFFFFFF)
        return struct.pack(
            "!IIIIII",
            self.ssrc,
            lost_word,
            self.extended_highest_sequence,
            self.jitter,
            self.last_sr,
            self.delay_since_last_sr,
        )


def _check_reports(reports: tuple[ReportBlock, ...], extension: bytes) -> None:
    if len(reports) > 31:
        raise PacketError(f"at most 31 report blocks fit in the RC field, got {len(reports)}")
    if len(extension) % 4:
        raise PacketError(f"profile extension must be whole 32-bit words, got {len(extension)} bytes")


def _parse_reports(count: int, body: bytes, pos: int) -> tuple[tuple[ReportBlock, ...], bytes]:
    end = pos + count * ReportBlock.SIZE
    if len(body) < end:
        raise PacketError(f"RTCP report truncated: {count} blocks need {end} bytes, got {len(body)}")
    reports = tuple(ReportBlock.parse(body, pos + i * ReportBlock.SIZE) for i in range(count))
    return reports, bytes(body[end:])


@dataclass(frozen=True, slots=True)
class RtcpSenderReport:
    """SR, RFC 3550 §6.4.1."""

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""

    PACKET_TYPE: ClassVar[int] = RTCP_SR

    def __post_init__(self) -> None:
        check_range("ntp timestamp", self.ntp_timestamp, 0, (1 << 64) - 1)
        for name in ("ssrc", "rtp_timestamp", "packet_count", "octet_count"):
            check_range(name, getattr(self, name), 0, U32_MAX)
        _check_reports(self.reports, self.extension)

    @classmethod
    def parse_body(cls, count: int, body: bytes) -> RtcpSenderReport:
        if len(body) < 24:
            raise PacketError(f"RTCP SR too short: {len(body)} bytes")
        ssrc, ntp, rtp_ts, packets, octets = struct.unpack_from("!IQIII", body)
        reports, extension = _parse_reports(count, body, 24)
        return cls(ssrc, ntp, rtp_ts, packets, octets, reports, extension)

    def serialize_body(self) -> tuple[int, bytes]:
        head = struct.pack(
            "!IQIII",
            self.ssrc,
            self.ntp_timestamp,
            self.rtp_timestamp,
            self.packet_count,
            self.octet_count,
        )
        return len(self.reports), head + b"".join(r.serialize() for r in self.reports) + self.extension


@dataclass(frozen=True, slots=True)
class RtcpReceiverReport:
    """RR, RFC 3550 §6.4.2."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""

    PACKET_TYPE: ClassVar[int] = RTCP_RR

    def __post_init__(self) -> None:
        check_range("ssrc", self.ssrc, 0, U32_MAX)
        _check_reports(self.reports, self.extension)

    @classmethod
    def parse_body(cls, count: int, body: bytes) -> RtcpReceiverReport:
        if len(body) < 4:
            raise PacketError(f"RTCP RR too short: {len(body)} bytes")
        reports, extension = _parse_reports(count, body, 4)
        return cls(struct.unpack_from("!I", body)[0], reports, extension)

    def serialize_body(self) -> tuple[int, bytes]:
        blocks = b"".join(r.serialize() for r in self.reports)
        return len(self.reports), struct.pack("!I", self.ssrc) + blocks + self.extension


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """One SDES chunk (RFC 3550 §6.5): a source and its (item type, value) pairs, e.g. CNAME."""

    ssrc: int
    items: tuple[tuple[int, bytes], ...] = ()

    def __post_init__(self) -> None:
        check_range("ssrc", self.ssrc, 0, U32_MAX)
        for item_type, value in self.items:
            check_range("SDES item type", item_type, 1, 255)
            check_range("SDES item length", len(value), 0, 255)

    @property
    def cname(self) -> str | None:
        for item_type, value in self.items:
            if item_type == SDES_CNAME:
                return value.decode("utf-8", "replace")
        return None


@dataclass(frozen=True, slots=True)
class RtcpSourceDescription:
    """SDES, RFC 3550 §6.5."""

    chunks: tuple[SdesChunk, ...] = ()

    PACKET_TYPE: ClassVar[int] = RTCP_SDES

    def __post_init__(self) -> None:
        if len(self.chunks) > 31:
            raise PacketError(f"at most 31 SDES chunks fit in the SC field, got {len(self.chunks)}")

    @classmethod
    def parse_body(cls, count: int, body: bytes) -> RtcpSourceDescription:
        chunks, pos = [], 0
        for _ in range(count):
            if len(body) < pos + 4:
                raise PacketError("SDES chunk truncated")
            ssrc = struct.unpack_from("!I", body, pos)[0]
            pos += 4
            items = []
            while True:  # items end with a null octet, then padding to the next 32-bit boundary
                if pos >= len(body):
                    raise PacketError("SDES item list not terminated")
                item_type = body[pos]
                if item_type == 0:
                    pos = (pos + 4) & ~3
                    break
                if pos + 2 > len(body) or pos + 2 + body[pos + 1] > len(body):
                    raise PacketError("SDES item truncated")
                items.append((item_type, bytes(body[pos + 2 : pos + 2 + body[pos + 1]])))
                pos += 2 + body[pos + 1]
            chunks.append(SdesChunk(ssrc, tuple(items)))
        return cls(tuple(chunks))

    def serialize_body(self) -> tuple[int, bytes]:
        out = bytearray()
        for chunk in self.chunks:
            out += struct.pack("!I", chunk.ssrc)
            for item_type, value in chunk.items:
                out += bytes([item_type, len(value)]) + value
            out += bytes(4 - len(out) % 4)  # at least one null octet
        return len(self.chunks), bytes(out)


@dataclass(frozen=True, slots=True)
class RtcpBye:
    """BYE, RFC 3550 §6.6; ``reason`` is the optional UTF-8 text, kept as bytes."""

    sources: tuple[int, ...] = ()
    reason: bytes = b""

    PACKET_TYPE: ClassVar[int] = RTCP_BYE

    def __post_init__(self) -> None:
        if len(self.sources) > 31:
            raise PacketError(f"at most 31 sources fit in the SC field, got {len(self.sources)}")
        for ssrc in self.sources:
            check_range("ssrc", ssrc, 0, U32_MAX)
        check_range("BYE reason length", len(self.reason), 0, 255)

    @classmethod
    def parse_body(cls, count: int, body: bytes) -> RtcpBye:
        if len(body) < 4 * count:
            raise PacketError(f"RTCP BYE truncated: {count} sources, {len(body)} bytes")
        sources = struct.unpack_from(f"!{count}I", body)
        pos, reason = 4 * count, b""
        if pos < len(body):
            length = body[pos]
            if pos + 1 + length > len(body):
                raise PacketError("RTCP BYE reason truncated")
            reason = bytes(body[pos + 1 : pos + 1 + length])
        return cls(tuple(sources), reason)

    def serialize_body(self) -> tuple[int, bytes]:
        out = struct.pack(f"!{len(self.sources)}I", *self.sources)
        if self.reason:
            text = bytes([len(self.reason)]) + self.reason
            out += text + bytes(-len(text) % 4)
        return len(self.sources), out


@dataclass(frozen=True, slots=True)
class RtcpUnknown:
    """Any other RTCP packet (APP, RTPFB, PSFB, XR...): the 5-bit count field and the body, untouched."""

    packet_type: int
    count: int = 0
    body: bytes = b""

    def __post_init__(self) -> None:
        check_range("RTCP packet type", self.packet_type, 0, 255)
        if self.packet_type in _RTCP_TYPES:
            raise PacketError(f"packet type {self.packet_type} has its own class")
        check_range("RTCP count", self.count, 0, 31)
        if len(self.body) % 4:
            raise PacketError(f"RTCP body must be whole 32-bit words, got {len(self.body)} bytes")

    def serialize_body(self) -> tuple[int, bytes]:
        return self.count, self.body


RtcpPacket: TypeAlias = RtcpSenderReport | RtcpReceiverReport | RtcpSourceDescription | RtcpBye | RtcpUnknown

_RTCP_TYPES: dict[
    int,
    type[RtcpSenderReport | RtcpReceiverReport | RtcpSourceDescription | RtcpBye],
] = {cls.PACKET_TYPE: cls for cls in (RtcpSenderReport, RtcpReceiverReport, RtcpSourceDescription, RtcpBye)}


def parse_rtcp(data: bytes) -> tuple[RtcpPacket, ...]:
    """Split a compound RTCP packet (RFC 3550 §6.1) and parse each part."""
    packets: list[RtcpPacket] = []
    pos = 0
    if len(data) < RTCP_HEADER_SIZE:
        raise PacketError(f"RTCP packet too short: {len(data)} bytes")
    while pos < len(data):
        if len(data) - pos < RTCP_HEADER_SIZE:
            raise PacketError(f"{len(data) - pos} trailing bytes after RTCP packet")
        first, packet_type, words = struct.unpack_from("!BBH", data, pos)
        if first >> 6 != RTP_VERSION:
            raise PacketError(f"RTCP version must be 2, got {first >> 6}")
        end = pos + 4 + 4 * words
        if end > len(data):
            raise PacketError(f"RTCP packet of {4 + 4 * words} bytes truncated")
        body = data[pos + 4 : end]
        if first & 0x20:  # §6.4.1: padding, counted by the last octet
            if not body or body[-1] == 0 or body[-1] > len(body):
                raise PacketError("invalid RTCP padding")
            body = body[: -body[-1]]
        count = first & 0x1F
        parser = _RTCP_TYPES.get(packet_type)
        if parser is None:
            if len(body) % 4:
                raise PacketError("RTCP padding is not whole 32-bit words")
            packets.append(RtcpUnknown(packet_type, count, bytes(body)))
        else:
            packets.append(parser.parse_body(count, bytes(body)))
        pos = end
    return tuple(packets)


def serialize_rtcp(packets: tuple[RtcpPacket, ...] | list[RtcpPacket]) -> bytes:
    """Join RTCP packets into one compound packet (RFC 3550 §6.1)."""
    out = bytearray()
    for packet in packets:
        count, body = packet.serialize_body()
        packet_type = packet.packet_type if isinstance(packet, RtcpUnknown) else packet.PACKET_TYPE
        out += struct.pack("!BBH", (RTP_VERSION << 6) | count, packet_type, len(body) // 4) + body
    return bytes(out)
