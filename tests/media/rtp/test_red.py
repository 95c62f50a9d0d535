"""RFC 2198 redundant audio payloads (gateway/media/rtp/red.py): pack, unpack, and malformed input."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.media.rtp.red import MAX_BLOCK, MAX_OFFSET, RedBlock, pack, unpack

# What Chrome sends: Opus 111 in RED 63, the previous 20 ms frame (960 ticks) before the primary.
CHROME = bytes([0x80 | 111, 0x0F, 0x00, 0x03, 111]) + b"old" + b"primary"


def test_a_chrome_packet_unpacks_oldest_first_primary_last() -> None:
    blocks = unpack(CHROME, 10_000)
    assert blocks == (RedBlock(111, 10_000 - 960, b"old"), RedBlock(111, 10_000, b"primary"))


def test_pack_writes_rfc_2198_headers() -> None:
    primary = RedBlock(111, 10_000, b"primary")
    assert pack(primary, [RedBlock(111, 10_000 - 960, b"old")]) == CHROME
    assert pack(primary) == bytes([111]) + b"primary"  # only the primary: a one-octet header


def test_timestamps_wrap() -> None:
    packed = pack(RedBlock(111, 100, b"p"), [RedBlock(111, (100 - 1920) % 2**32, b"a")])
    assert unpack(packed, 100) == (RedBlock(111, 2**32 - 1820, b"a"), RedBlock(111, 100, b"p"))


def test_blocks_that_cannot_be_described_are_left_out() -> None:
    primary = RedBlock(111, 50_000, b"p")
    too_old = RedBlock(111, 50_000 - MAX_OFFSET - 1, b"x")
    too_long = RedBlock(111, 49_040, bytes(MAX_BLOCK + 1))
    same_time = RedBlock(111, 50_000, b"y")
    newer = RedBlock(111, 50_960, b"z")
    assert pack(primary, [too_old, too_long, same_time, newer]) == bytes([111]) + b"p"
    edge = pack(primary, [RedBlock(111, 50_000 - MAX_OFFSET, bytes(MAX_BLOCK))])
    assert unpack(edge, 50_000) == (RedBlock(111, 50_000 - MAX_OFFSET, bytes(MAX_BLOCK)), primary)


def test_empty_blocks() -> None:
    assert unpack(bytes([111]), 7) == (RedBlock(111, 7, b""),)
    assert unpack(bytes([0x80 | 111, 0x00, 0x3C, 0x00, 111]), 960) == (
        RedBlock(111, 945, b""),
        RedBlock(111, 960, b""),
    )


def test_malformed_payloads_are_none() -> None:
    assert unpack(b"", 0) is None  # no header at all
    assert unpack(bytes([0x80 | 111, 0x0F]), 0) is None  # a redundant header cut short
    assert unpack(bytes([0x80 | 111, 0x0F, 0x00, 0x03]), 0) is None  # no primary header
    assert unpack(bytes([0x80 | 111, 0x0F, 0x00, 0x09, 111]) + b"abc", 0) is None  # length past the end
    assert unpack(bytes([0x80, 0, 0, 0]) * 40 + bytes([111]), 0) is None  # more headers than any sender


@given(
    st.lists(st.tuples(st.integers(0, 127), st.integers(1, MAX_OFFSET), st.binary(max_size=40)), max_size=4),
    st.integers(0, 127),
    st.integers(0, 2**32 - 1),
    st.binary(max_size=200),
)
def test_unpack_reads_what_pack_wrote(
    redundant: list[tuple[int, int, bytes]], pt: int, timestamp: int, data: bytes
) -> None:
    blocks = [RedBlock(p, (timestamp - offset) % 2**32, payload) for p, offset, payload in redundant]
    primary = RedBlock(pt, timestamp, data)
    assert unpack(pack(primary, blocks), timestamp) == (*blocks, primary)


@given(st.binary(max_size=300), st.integers(0, 2**32 - 1))
def test_unpack_never_raises(payload: bytes, timestamp: int) -> None:
    blocks = unpack(payload, timestamp)
    assert blocks is None or (blocks and all(b.payload in payload for b in blocks))
