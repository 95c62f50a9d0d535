"""The HEPv3 encoder (gateway/ops/hep.py) against the field layout of the spec
(https://github.com/sipcapture/HEP, "HEP3 header" and "Chunk types"): bytes written out by hand here."""

from __future__ import annotations

import struct

import pytest

from gateway.ops.hep import HepError, HepMessage, decode, encode

SIP = b"INVITE sip:2000@127.0.0.1 SIP/2.0\r\nCall-ID: abc\r\n\r\n"


def spec_chunk(kind: int, value: bytes) -> bytes:
    """A generic chunk: vendor 0x0000, type, length including the 6-byte chunk header."""
    return bytes([0, 0, kind >> 8, kind & 0xFF]) + (6 + len(value)).to_bytes(2, "big") + value


def test_an_ipv4_udp_sip_message_has_every_chunk_in_the_spec_layout() -> None:
    message = HepMessage(
        ("192.0.2.1", 5060), ("198.51.100.7", 5070), 1700000000.25, SIP, "UDP", correlation="gw-1"
    )
    packet = encode(message, agent_id=2001, password="s3cret")
    body = b"".join(
        [
            spec_chunk(0x0001, b"\x02"),  # IPv4
            spec_chunk(0x0002, b"\x11"),  # UDP
            spec_chunk(0x0003, bytes([192, 0, 2, 1])),
            spec_chunk(0x0004, bytes([198, 51, 100, 7])),
            spec_chunk(0x0007, b"\x13\xc4"),  # 5060
            spec_chunk(0x0008, b"\x13\xce"),  # 5070
            spec_chunk(0x0009, (1700000000).to_bytes(4, "big")),
            spec_chunk(0x000A, (250000).to_bytes(4, "big")),
            spec_chunk(0x000B, b"\x01"),  # SIP
            spec_chunk(0x000C, (2001).to_bytes(4, "big")),
            spec_chunk(0x000E, b"s3cret"),
            spec_chunk(0x0011, b"gw-1"),
            spec_chunk(0x000F, SIP),
        ]
    )
    assert packet == b"HEP3" + (6 + len(body)).to_bytes(2, "big") + body


def test_ipv6_and_tcp_use_their_own_chunks_and_no_password_means_no_key_chunk() -> None:
    message = HepMessage(("::1", 40000), ("2001:db8::5", 5061), 5.000001, SIP, "TLS")
    chunks = decode(encode(message))
    assert chunks[0x0001] == b"\x0a" and chunks[0x0002] == b"\x06"
    assert chunks[0x0005] == bytes(15) + b"\x01"
    assert chunks[0x0006] == bytes.fromhex("20010db8000000000000000000000005")
    assert struct.unpack("!H", chunks[0x0007]) == (40000,)
    assert struct.unpack("!II", chunks[0x0009] + chunks[0x000A]) == (5, 1)
    assert 0x000E not in chunks and 0x0011 not in chunks and 0x0003 not in chunks
    assert chunks[0x000F] == SIP


def test_a_dual_stack_pair_is_written_as_ipv6() -> None:
    chunks = decode(encode(HepMessage(("::", 5060), ("127.0.0.1", 5070), 0.0, SIP)))
    assert chunks[0x0001] == b"\x0a" and chunks[0x0006] == bytes(10) + b"\xff\xff\x7f\x00\x00\x01"


def test_what_hep_cannot_carry_is_refused() -> None:
    with pytest.raises(HepError, match="not an IP address"):
        encode(HepMessage(("pbx.example.org", 5060), ("127.0.0.1", 5070), 0.0, SIP))
    with pytest.raises(HepError, match="over 65535"):
        encode(HepMessage(("127.0.0.1", 5060), ("127.0.0.1", 5070), 0.0, b"x" * 65535))
    with pytest.raises(HepError):
        decode(b"HEP2\x00\x06")
    with pytest.raises(HepError, match="bad length"):
        decode(b"HEP3\x00\x0c" + b"\x00\x00\x00\x01\x00\x09")
