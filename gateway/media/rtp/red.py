"""RFC 2198 redundant audio (``audio/red``), sans-I/O: one RTP payload carrying several blocks.

Chrome negotiates ``a=rtpmap:63 red/48000/2`` with ``a=fmtp:63 111/111``: each RED packet carries the
current Opus frame (the primary) and a copy of the previous one, so a single lost packet is restored
from the next one whole, before FEC or PLC are needed. The payload (RFC 2198 §3) is a list of headers,
then the blocks' data in the same order, the primary last::

     0                   1                    2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |F|   block PT  |  timestamp offset         |   block length    |   (F=1: a redundant block)
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |0|   block PT  |                                                     (F=0: the last, the primary)
    +-+-+-+-+-+-+-+-+

A redundant block's timestamp is the packet's minus its 14-bit offset; its length is 10 bits. ``unpack``
returns None for anything malformed (truncated headers, a block running past the end, no primary): the
media path drops that packet and never raises. ``pack`` leaves out a redundant block that cannot be
described (an offset past 14 bits, data past 10 bits, one not older than the primary).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["MAX_BLOCK", "MAX_OFFSET", "RED_NAME", "RedBlock", "pack", "unpack"]

RED_NAME = "red"
MAX_OFFSET = 0x3FFF  # 14 bits (RFC 2198 §3)
MAX_BLOCK = 0x3FF  # 10 bits
_MAX_BLOCKS = 32  # more headers than any sender uses: a packet claiming more is not RED


@dataclass(frozen=True, slots=True)
class RedBlock:
    """One block: its payload type, its own RTP timestamp (the packet's minus the offset) and data."""

    payload_type: int
    timestamp: int
    payload: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.payload_type <= 0x7F or not 0 <= self.timestamp <= 0xFFFFFFFF:
            raise ValueError(
                f"bad RED block: payload type {self.payload_type!r}, timestamp {self.timestamp!r}"
            )


def unpack(payload: bytes, timestamp: int) -> tuple[RedBlock, ...] | None:
    """The blocks of a RED payload of a packet with RTP timestamp ``timestamp``, oldest first and the
    primary last; None when it is malformed."""
    headers: list[tuple[int, int, int]] = []  # (payload type, offset, length)
    pos = 0
    size = len(payload)
    while True:
        if pos >= size or len(headers) > _MAX_BLOCKS:
            return None
        first = payload[pos]
        if not first & 0x80:  # the primary's one-octet header (F=0)
            pos += 1
            headers.append((first & 0x7F, 0, -1))
            break
        if pos + 4 > size:
            return None
        word = int.from_bytes(payload[pos + 1 : pos + 4], "big")
        headers.append((first & 0x7F, word >> 10, word & MAX_BLOCK))
        pos += 4
    blocks: list[RedBlock] = []
    for payload_type, offset, length in headers:
        end = size if length < 0 else pos + length
        if end > size:
            return None
        blocks.append(RedBlock(payload_type, (timestamp - offset) & 0xFFFFFFFF, bytes(payload[pos:end])))
        pos = end
    return tuple(blocks)


def pack(primary: RedBlock, redundant: Sequence[RedBlock] = ()) -> bytes:
    """A RED payload of ``primary`` (whose timestamp is the packet's) and the ``redundant`` blocks that
    fit, oldest first."""
    headers = bytearray()
    data = bytearray()
    for block in redundant:
        offset = (primary.timestamp - block.timestamp) & 0xFFFFFFFF
        if not 0 < offset <= MAX_OFFSET or len(block.payload) > MAX_BLOCK:
            continue
        headers.append(0x80 | block.payload_type)
        headers += ((offset << 10) | len(block.payload)).to_bytes(3, "big")
        data += block.payload
    headers.append(primary.payload_type)
    return bytes(headers + data + primary.payload)
