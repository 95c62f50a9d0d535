"""RTP and RTCP packets (RFC 3550 §5.1, §6.4): round trips, vectors, cross-checks with aiortc."""

from __future__ import annotations

import contextlib
import struct

import pytest
from aiortc import rtp as aiortc_rtp
from hypothesis import given
from hypothesis import strategies as st

from gateway.media.errors import MediaError, PacketError
from gateway.media.rtp.packet import (
    RtpHeaderExtension,
    RtpPacket,
    is_rtcp,
    ntp_from_unix,
    ntp_middle32,
)
from gateway.media.rtp.rtcp import (
    ReportBlock,
    RtcpBye,
    RtcpReceiverReport,
    RtcpSenderReport,
    RtcpSourceDescription,
    RtcpUnknown,
    SdesChunk,
    parse_rtcp,
    serialize_rtcp,
)

u32 = st.integers(0, 0xFFFFFFFF)

rtp_packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence_number=st.integers(0, 0xFFFF),
    timestamp=u32,
    ssrc=u32,
    payload=st.binary(max_size=64),
    marker=st.booleans(),
    csrc=st.lists(u32, max_size=15).map(tuple),
    extension=st.none()
    | st.builds(
        RtpHeaderExtension, st.integers(0, 0xFFFF), st.binary(max_size=12).map(lambda b: b[: len(b) // 4 * 4])
    ),
    padding=st.integers(0, 255),
)

report_blocks = st.builds(
    ReportBlock,
    ssrc=u32,
    fraction_lost=st.integers(0, 255),
    cumulative_lost=st.integers(-0x800000, 0x7FFFFF),
    extended_highest_sequence=u32,
    jitter=u32,
    last_sr=u32,
    delay_since_last_sr=u32,
)
words = st.binary(max_size=16).map(lambda b: b[: len(b) // 4 * 4])
rtcp_packets = st.one_of(
    st.builds(
        RtcpSenderReport,
        u32,
        st.integers(0, (1 << 64) - 1),
        u32,
        u32,
        u32,
        st.lists(report_blocks, max_size=3).map(tuple),
        words,
    ),
    st.builds(RtcpReceiverReport, u32, st.lists(report_blocks, max_size=3).map(tuple), words),
    st.builds(
        RtcpSourceDescription,
        st.lists(
            st.builds(
                SdesChunk,
                u32,
                st.lists(st.tuples(st.integers(1, 255), st.binary(max_size=20)), max_size=3).map(tuple),
            ),
            max_size=3,
        ).map(tuple),
    ),
    st.builds(RtcpBye, st.lists(u32, max_size=4).map(tuple), st.binary(max_size=40)),
    st.builds(RtcpUnknown, st.sampled_from([204, 205, 206, 207]), st.integers(0, 31), words),
)


# ------------------------------------------------------------------------------------------- RTP


@given(rtp_packets)
def test_rtp_round_trip(packet: RtpPacket) -> None:
    assert RtpPacket.parse(packet.serialize()) == packet


@given(st.binary(max_size=80))
def test_rtp_random_bytes_raise_only_packet_error(data: bytes) -> None:
    try:
        packet = RtpPacket.parse(data)
    except PacketError:
        return
    assert packet.serialize() == data or packet.padding  # padding octets other than the count are lost


@given(st.binary(min_size=12, max_size=80))
def test_rtp_random_version_2_bytes(data: bytes) -> None:
    data = bytes([0x80 | (data[0] & 0x3F)]) + data[1:]
    with contextlib.suppress(PacketError):
        RtpPacket.parse(data)


def test_rtp_vector_pcmu() -> None:
    data = bytes.fromhex("80001c8a0001f400deadbeef") + b"\xff" * 160
    packet = RtpPacket.parse(data)
    assert packet == RtpPacket(0, 7306, 128000, 0xDEADBEEF, b"\xff" * 160)
    assert packet.serialize() == data


def test_rtp_vector_telephone_event_with_marker() -> None:
    data = bytes.fromhex("80e50001000000a012345678058a0320")
    packet = RtpPacket.parse(data)
    assert packet.marker and packet.payload_type == 101
    assert packet.payload == bytes.fromhex("058a0320")


def test_rtp_vector_csrc_extension_padding() -> None:
    data = bytes.fromhex(
        "b2080102"
        "00000010"
        "0000abcd"  # V=2 P X CC=2, PT 8, seq 258, ts 16, ssrc
        "00000001"
        "00000002"  # CSRCs
        "bede0001"
        "10aa0000"  # RFC 8285 one-byte extension block, kept opaque
        "d5d5d5"  # payload
        "000003"  # padding, count 3
    )
    packet = RtpPacket.parse(data)
    assert packet.csrc == (1, 2)
    assert packet.extension == RtpHeaderExtension(0xBEDE, bytes.fromhex("10aa0000"))
    assert packet.payload == b"\xd5\xd5\xd5"
    assert packet.padding == 3
    assert packet.serialize() == data


@pytest.mark.parametrize(
    ("hex_data", "reason"),
    [
        ("80", "too short"),
        ("40001c8a0001f400deadbeef", "version"),
        ("83001c8a0001f400deadbeef00000001", "CSRC"),
        ("90001c8a0001f400deadbeefbede", "extension truncated"),
        ("90001c8a0001f400deadbeefbede0002aaaaaaaa", "extension of 2 words"),
        ("a0001c8a0001f400deadbeef00", "padding"),
        ("a0001c8a0001f400deadbeef0005", "padding"),
    ],
)
def test_rtp_malformed(hex_data: str, reason: str) -> None:
    with pytest.raises(PacketError, match=reason):
        RtpPacket.parse(bytes.fromhex(hex_data))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"payload_type": 128},
        {"sequence_number": 65536},
        {"timestamp": -1},
        {"ssrc": 1 << 32},
        {"padding": 256},
        {"csrc": tuple(range(16))},
    ],
)
def test_rtp_invalid_fields(kwargs: dict[str, int]) -> None:
    base = {"payload_type": 0, "sequence_number": 0, "timestamp": 0, "ssrc": 0}
    with pytest.raises(PacketError):
        RtpPacket(**{**base, **kwargs})  # type: ignore[arg-type]


def test_errors_share_the_package_base() -> None:
    assert issubclass(PacketError, MediaError)


def test_cross_check_with_aiortc_rtp() -> None:
    theirs = aiortc_rtp.RtpPacket(
        payload_type=8, marker=1, sequence_number=65535, timestamp=4000000000, ssrc=42, payload=b"\x01\x02"
    )
    ours = RtpPacket.parse(theirs.serialize())
    assert ours == RtpPacket(8, 65535, 4000000000, 42, b"\x01\x02", marker=True)
    back = aiortc_rtp.RtpPacket.parse(ours.serialize())
    assert (
        back.payload_type,
        back.marker,
        back.sequence_number,
        back.timestamp,
        back.ssrc,
        back.payload,
    ) == (
        8,
        1,
        65535,
        4000000000,
        42,
        b"\x01\x02",
    )


def test_is_rtcp_demultiplexes_per_rfc_5761() -> None:
    assert is_rtcp(bytes.fromhex("80c80006"))  # SR
    assert is_rtcp(bytes.fromhex("81c9"))  # RR
    assert not is_rtcp(bytes.fromhex("8000"))  # PCMU
    assert not is_rtcp(bytes.fromhex("80e5"))  # PT 101 with marker
    assert not is_rtcp(b"\x80")


# ------------------------------------------------------------------------------------------ RTCP


@given(st.lists(rtcp_packets, min_size=1, max_size=4))
def test_rtcp_compound_round_trip(packets: list[object]) -> None:
    data = serialize_rtcp(packets)  # type: ignore[arg-type]
    assert len(data) % 4 == 0
    assert parse_rtcp(data) == tuple(packets)


@given(st.binary(max_size=120))
def test_rtcp_random_bytes_raise_only_packet_error(data: bytes) -> None:
    with contextlib.suppress(PacketError):
        parse_rtcp(data)


@given(st.binary(min_size=4, max_size=120), st.integers(0, 31), st.sampled_from([200, 201, 202, 203, 204]))
def test_rtcp_random_bodies_with_valid_header(body: bytes, count: int, packet_type: int) -> None:
    body = body[: len(body) // 4 * 4]
    data = struct.pack("!BBH", 0x80 | count, packet_type, len(body) // 4) + body
    with contextlib.suppress(PacketError):
        parse_rtcp(data)


SR_SDES = bytes.fromhex(
    # SR, RC=1, length 12 words
    "81c8000c"
    "6d2454ea"
    "de4559700fb0b95c"
    "66a8353e"
    "0000010d"
    "000034f5"
    # report block: ssrc, fraction 1, cumulative 2, highest 0x12345, jitter 16, lsr, dlsr
    "8ef8a7ed"
    "01000002"
    "00012345"
    "00000010"
    "59700fb0"
    "00010000"
    # SDES, SC=1, length 6 words: CNAME "{1234567890ab}" (14 bytes) + null + padding
    "81ca0006"
    "6d2454ea"
    "010e" + b"{1234567890ab}".hex() + "0000"
    "0000"
)


def test_rtcp_vector_sr_and_sdes() -> None:
    sr, sdes = parse_rtcp(SR_SDES)
    assert isinstance(sr, RtcpSenderReport) and isinstance(sdes, RtcpSourceDescription)
    assert sr.ssrc == 0x6D2454EA
    assert sr.ntp_timestamp == 0xDE4559700FB0B95C
    assert (sr.rtp_timestamp, sr.packet_count, sr.octet_count) == (0x66A8353E, 269, 13557)
    assert sr.reports == (ReportBlock(0x8EF8A7ED, 1, 2, 0x12345, 16, 0x59700FB0, 65536),)
    assert sdes.chunks[0].ssrc == sr.ssrc and sdes.chunks[0].cname == "{1234567890ab}"
    assert serialize_rtcp((sr, sdes)) == SR_SDES


def test_rtcp_negative_cumulative_loss() -> None:
    block = ReportBlock(1, cumulative_lost=-3)
    data = serialize_rtcp([RtcpReceiverReport(2, (block,))])
    assert data[12:16] == bytes.fromhex("00fffffd")
    assert parse_rtcp(data)[0] == RtcpReceiverReport(2, (block,))


def test_rtcp_bye_with_reason_vector() -> None:
    data = bytes.fromhex("81cb00031122334405" + b"hello".hex() + "0000")
    (bye,) = parse_rtcp(data)
    assert bye == RtcpBye((0x11223344,), b"hello")
    assert serialize_rtcp([bye]) == data


def test_rtcp_padding_is_stripped() -> None:
    data = bytes.fromhex("a0c900020000000700000004")  # RR, P bit, 4 octets of padding
    assert parse_rtcp(data) == (RtcpReceiverReport(7),)


def test_rtcp_unknown_types_are_kept() -> None:
    pli = bytes.fromhex("81ce00020000000100000002")  # RFC 4585 PLI
    rr = bytes.fromhex("80c9000100000001")
    packets = parse_rtcp(rr + pli)
    assert packets[1] == RtcpUnknown(206, 1, bytes.fromhex("0000000100000002"))
    assert serialize_rtcp(packets) == rr + pli


@pytest.mark.parametrize(
    ("hex_data", "reason"),
    [
        ("80c9", "too short"),
        ("40c9000100000001", "version"),
        ("80c9000200000001", "truncated"),
        ("81c9000100000001", "report truncated"),
        ("80c8000100000001", "SR too short"),
        ("80c900010000000180", "trailing"),
        ("81ca00020000000101056161", "SDES item truncated"),
        ("81ca00020000000101026161", "not terminated"),
        ("82cb000100000001", "BYE truncated"),
        ("81cb00020000000109616263", "reason truncated"),
        ("a0c9000100000000", "padding"),
    ],
)
def test_rtcp_malformed(hex_data: str, reason: str) -> None:
    with pytest.raises(PacketError, match=reason):
        parse_rtcp(bytes.fromhex(hex_data))


def test_cross_check_with_aiortc_rtcp() -> None:
    info = aiortc_rtp.RtcpReceiverInfo(
        ssrc=5, fraction_lost=25, packets_lost=-2, highest_sequence=70000, jitter=33, lsr=1, dlsr=2
    )
    theirs = (
        bytes(
            aiortc_rtp.RtcpSrPacket(
                ssrc=9,
                sender_info=aiortc_rtp.RtcpSenderInfo(
                    ntp_timestamp=123456789012, rtp_timestamp=160, packet_count=3, octet_count=480
                ),
                reports=[info],
            )
        )
        + bytes(aiortc_rtp.RtcpSdesPacket(chunks=[aiortc_rtp.RtcpSourceInfo(ssrc=9, items=[(1, b"abc")])]))
        + bytes(aiortc_rtp.RtcpByePacket(sources=[9]))
    )
    sr, sdes, bye = parse_rtcp(theirs)
    assert sr == RtcpSenderReport(9, 123456789012, 160, 3, 480, (ReportBlock(5, 25, -2, 70000, 33, 1, 2),))
    assert sdes == RtcpSourceDescription((SdesChunk(9, ((1, b"abc"),)),))
    assert bye == RtcpBye((9,))
    back = aiortc_rtp.RtcpPacket.parse(serialize_rtcp((sr, sdes, bye)))
    assert [type(p).__name__ for p in back] == ["RtcpSrPacket", "RtcpSdesPacket", "RtcpByePacket"]
    assert back[0].reports[0].packets_lost == -2  # type: ignore[union-attr]
    assert back[1].chunks[0].items == [(1, b"abc")]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "build",
    [
        lambda: ReportBlock(1, fraction_lost=256),
        lambda: ReportBlock(1, cumulative_lost=0x800000),
        lambda: RtcpReceiverReport(1, (ReportBlock(1),) * 32),
        lambda: RtcpReceiverReport(1, (), b"abc"),
        lambda: SdesChunk(1, ((0, b"x"),)),
        lambda: SdesChunk(1, ((1, b"x" * 256),)),
        lambda: RtcpBye((1,), b"x" * 256),
        lambda: RtcpUnknown(200),
        lambda: RtcpUnknown(204, 0, b"abc"),
    ],
)
def test_rtcp_invalid_fields(build: object) -> None:
    with pytest.raises(PacketError):
        build()  # type: ignore[operator]


def test_ntp_conversion() -> None:
    assert ntp_from_unix(0.0) == 2208988800 << 32
    assert ntp_from_unix(1.5) == ((2208988801 << 32) | (1 << 31))
    assert ntp_middle32(0x1122334455667788) == 0x33445566
