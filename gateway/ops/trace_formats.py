"""A call's trace written out: as text for people (`as_text`) and as a libpcap file (`as_pcap`) for
Wireshark, tshark, tcpdump and sngrep.

The pcap file (https://wiki.wireshark.org/Development/LibpcapFileFormat, microsecond timestamps) has link
type LINKTYPE_RAW (101): each SIP message is one IPv4 or IPv6 packet with a UDP header, from and to the
real addresses and ports of the message, at the time the gateway sent or received it. A message that
went over TCP, TLS or a WebSocket is written as a UDP datagram too (its payload is the whole SIP
message; TLS and WebSocket framing are not shown): readers then show the SIP flow without TCP streams to
reassemble. The web leg's JSON events and the decisions are in the text only. Pure: bytes in, bytes out.
"""

from __future__ import annotations

import datetime
import ipaddress
import struct
from collections.abc import Iterable
from typing import Final

from gateway.ops.trace import Address, CallTrace, Kind, TraceEntry

LINKTYPE_RAW: Final = 101
PCAP_MAGIC: Final = 0xA1B2C3D4  # microsecond timestamps
SNAPLEN: Final = 65535
_MAX_UDP_PAYLOAD: Final = 65535 - 8 - 40  # fits in one IPv4 or IPv6 packet; longer SIP is cut there
_IPV4_HEADER: Final = struct.Struct("!BBHHHBBH4s4s")
_IPV6_HEADER: Final = struct.Struct("!IHBB16s16s")
_UDP_HEADER: Final = struct.Struct("!HHHH")
_RECORD: Final = struct.Struct("<IIII")
_UDP: Final = 17


def _when(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def _where(address: Address | None) -> str:
    if address is None:
        return "-"
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _heading(entry: TraceEntry) -> str:
    stamp = _when(entry.time)
    if entry.kind is Kind.DECISION:
        return f"{stamp} gateway {entry.transport} {entry.source}: {entry.text}"
    if entry.kind is Kind.WEB:
        return f"{stamp} web {entry.direction} {entry.transport} {entry.source}"
    if entry.direction == "in":
        route = f"{_where(entry.remote)} -> {_where(entry.local)}"
    else:
        route = f"{_where(entry.local)} -> {_where(entry.remote)}"
    return f"{stamp} {entry.leg.value} {entry.direction} {entry.transport} {route} ({len(entry.text)} bytes)"


def as_text(trace: CallTrace) -> str:
    """Every entry in time order: a heading line, then the message indented (SIP, the web event)."""
    ended = _when(trace.ended) + " UTC" if trace.ended is not None else "(live)"
    lines = [
        f"call {trace.call_id}",
        f"SIP Call-IDs: {', '.join(trace.sip_call_ids) or '-'}",
        f"started {_when(trace.started)} UTC, ended {ended}",
        f"{len(trace.entries)} entries, {trace.dropped} dropped (trace limits)",
        "",
    ]
    for entry in trace.entries:
        lines.append(_heading(entry))
        if entry.kind is not Kind.DECISION:
            lines.extend("    " + line for line in entry.text.replace("\r\n", "\n").rstrip("\n").split("\n"))
    return "\n".join(lines) + "\n"


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return ipaddress.IPv4Address(0)  # a name where an address should be: shown as 0.0.0.0


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_packet(source: Address, destination: Address, payload: bytes, ident: int = 0) -> bytes:
    """One raw IP packet (no link layer) carrying `payload` in UDP from `source` to `destination`."""
    payload = payload[:_MAX_UDP_PAYLOAD]
    src, dst = _ip(source[0]), _ip(destination[0])
    if src.version != dst.version:  # a dual-stack socket's peer: both as IPv6 (IPv4-mapped)
        src, dst = (ipaddress.IPv6Address(f"::ffff:{a}") if a.version == 4 else a for a in (src, dst))
    length = _UDP_HEADER.size + len(payload)
    if src.version == 4:
        udp = _UDP_HEADER.pack(source[1], destination[1], length, 0) + payload  # checksum 0: none (IPv4)
        header = _IPV4_HEADER.pack(
            0x45, 0, 20 + length, ident & 0xFFFF, 0x4000, 64, _UDP, 0, src.packed, dst.packed
        )
        header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
        return header + udp
    pseudo = src.packed + dst.packed + struct.pack("!IxxxB", length, _UDP)
    checksum = _checksum(pseudo + _UDP_HEADER.pack(source[1], destination[1], length, 0) + payload) or 0xFFFF
    udp = _UDP_HEADER.pack(source[1], destination[1], length, checksum) + payload
    return _IPV6_HEADER.pack(6 << 28, length, _UDP, 64, src.packed, dst.packed) + udp


def pcap_header(linktype: int = LINKTYPE_RAW) -> bytes:
    return struct.pack("<IHHiIII", PCAP_MAGIC, 2, 4, 0, 0, SNAPLEN, linktype)


def pcap_record(seconds: float, packet: bytes) -> bytes:
    whole = int(seconds)
    micros = min(round((seconds - whole) * 1_000_000), 999_999)
    kept = packet[:SNAPLEN]
    return _RECORD.pack(whole, micros, len(kept), len(packet)) + kept


def sip_packets(entries: Iterable[TraceEntry]) -> Iterable[tuple[float, bytes]]:
    """(time, raw IP packet) for each SIP message among `entries`."""
    for number, entry in enumerate(entries):
        if entry.kind is not Kind.SIP or entry.local is None or entry.remote is None:
            continue
        source, destination = (
            (entry.remote, entry.local) if entry.direction == "in" else (entry.local, entry.remote)
        )
        yield entry.time, udp_packet(source, destination, entry.text.encode("utf-8"), number)


def as_pcap(trace: CallTrace) -> bytes:
    """The call's SIP messages (both legs) as a libpcap file of raw IP/UDP packets."""
    parts = [pcap_header()]
    parts.extend(pcap_record(when, packet) for when, packet in sip_packets(trace.entries))
    return b"".join(parts)
