"""HEPv3 (the Homer Encapsulation Protocol, https://github.com/sipcapture/HEP): a SIP message as a capture
server (Homer's heplify-server, Kamailio's sipcapture, sngrep -L) receives it. Sans-I/O: `encode` makes
the datagram; gateway/ops/trace_wiring.py sends it over UDP.

A HEPv3 packet is the ASCII id ``HEP3``, the packet's total length (uint16, network order), then chunks,
each ``vendor id`` (uint16, 0 = generic), ``type id`` (uint16), ``length`` (uint16, including these 6
bytes) and the value. The generic chunk types used here (HEPv3 spec, "Chunk types"):

| type | value |
|---|---|
| 0x0001 | IP protocol family, uint8 (2 = IPv4, 10 = IPv6) |
| 0x0002 | IP protocol id, uint8 (17 = UDP, 6 = TCP) |
| 0x0003 / 0x0004 | IPv4 source / destination address (4 octets) |
| 0x0005 / 0x0006 | IPv6 source / destination address (16 octets) |
| 0x0007 / 0x0008 | source / destination port, uint16 |
| 0x0009 / 0x000a | timestamp, seconds / microseconds offset, uint32 |
| 0x000b | protocol type, uint8 (1 = SIP) |
| 0x000c | capture agent id, uint32 |
| 0x000e | authentication key (password), octets |
| 0x000f | captured payload, octets |
| 0x0011 | correlation id, octets (here the gateway's call id) |
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Final

HEP_ID: Final = b"HEP3"
FAMILY_IPV4: Final = 2
FAMILY_IPV6: Final = 10
PROTO_UDP: Final = 17
PROTO_TCP: Final = 6
TYPE_SIP: Final = 1
MAX_PACKET: Final = 65535  # the length field is 16 bits

CHUNK_FAMILY: Final = 0x0001
CHUNK_PROTOCOL: Final = 0x0002
CHUNK_SRC_IPV4: Final = 0x0003
CHUNK_DST_IPV4: Final = 0x0004
CHUNK_SRC_IPV6: Final = 0x0005
CHUNK_DST_IPV6: Final = 0x0006
CHUNK_SRC_PORT: Final = 0x0007
CHUNK_DST_PORT: Final = 0x0008
CHUNK_SECONDS: Final = 0x0009
CHUNK_MICROS: Final = 0x000A
CHUNK_PROTO_TYPE: Final = 0x000B
CHUNK_AGENT_ID: Final = 0x000C
CHUNK_AUTH_KEY: Final = 0x000E
CHUNK_PAYLOAD: Final = 0x000F
CHUNK_CORRELATION: Final = 0x0011

_CHUNK_HEADER: Final = struct.Struct("!HHH")


class HepError(ValueError):
    """A message that HEPv3 cannot carry (an address that is none, a packet over 64 KiB)."""


@dataclass(frozen=True, slots=True)
class HepMessage:
    source: tuple[str, int]
    destination: tuple[str, int]
    time: float  # seconds since the epoch
    payload: bytes
    transport: str = "UDP"  # UDP, or TCP/TLS/WS/WSS (all sent as TCP)
    correlation: str = ""


def chunk(kind: int, value: bytes) -> bytes:
    return _CHUNK_HEADER.pack(0, kind, _CHUNK_HEADER.size + len(value)) + value


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        raise HepError(f"not an IP address: {host!r}") from None


def encode(message: HepMessage, agent_id: int = 0, password: str | None = None) -> bytes:
    """The HEPv3 packet of a SIP message."""
    if len(message.payload) + 6 > MAX_PACKET:  # the payload chunk alone must fit
        raise HepError(f"a HEP packet of over {MAX_PACKET} bytes (a {len(message.payload)}-byte message)")
    src, dst = _address(message.source[0]), _address(message.destination[0])
    if src.version != dst.version:
        src, dst = (ipaddress.IPv6Address(f"::ffff:{a}") if a.version == 4 else a for a in (src, dst))
    whole = int(message.time)
    micros = min(round((message.time - whole) * 1_000_000), 999_999)
    v4 = src.version == 4
    chunks = [
        chunk(CHUNK_FAMILY, bytes([FAMILY_IPV4 if v4 else FAMILY_IPV6])),
        chunk(CHUNK_PROTOCOL, bytes([PROTO_UDP if message.transport.upper() == "UDP" else PROTO_TCP])),
        chunk(CHUNK_SRC_IPV4 if v4 else CHUNK_SRC_IPV6, src.packed),
        chunk(CHUNK_DST_IPV4 if v4 else CHUNK_DST_IPV6, dst.packed),
        chunk(CHUNK_SRC_PORT, struct.pack("!H", message.source[1])),
        chunk(CHUNK_DST_PORT, struct.pack("!H", message.destination[1])),
        chunk(CHUNK_SECONDS, struct.pack("!I", whole)),
        chunk(CHUNK_MICROS, struct.pack("!I", micros)),
        chunk(CHUNK_PROTO_TYPE, bytes([TYPE_SIP])),
        chunk(CHUNK_AGENT_ID, struct.pack("!I", agent_id)),
    ]
    if password:
        chunks.append(chunk(CHUNK_AUTH_KEY, password.encode("utf-8")))
    if message.correlation:
        chunks.append(chunk(CHUNK_CORRELATION, message.correlation.encode("utf-8")))
    chunks.append(chunk(CHUNK_PAYLOAD, message.payload))
    body = b"".join(chunks)
    total = len(HEP_ID) + 2 + len(body)
    if total > MAX_PACKET:
        raise HepError(f"a HEP packet of {total} bytes is over {MAX_PACKET}")
    return HEP_ID + struct.pack("!H", total) + body


def decode(packet: bytes) -> dict[int, bytes]:
    """The chunks of a HEPv3 packet by type (generic vendor only): for tests and tools."""
    if packet[:4] != HEP_ID or len(packet) < 6:
        raise HepError("not a HEPv3 packet")
    (total,) = struct.unpack("!H", packet[4:6])
    if total != len(packet):
        raise HepError(f"length field {total} but {len(packet)} bytes")
    chunks: dict[int, bytes] = {}
    offset = 6
    while offset < total:
        if offset + _CHUNK_HEADER.size > total:
            raise HepError(f"truncated chunk header at {offset}")
        vendor, kind, length = _CHUNK_HEADER.unpack_from(packet, offset)
        if length < _CHUNK_HEADER.size or offset + length > total:
            raise HepError(f"chunk {kind:#06x} has a bad length {length}")
        if vendor == 0:
            chunks[kind] = packet[offset + _CHUNK_HEADER.size : offset + length]
        offset += length
    return chunks
