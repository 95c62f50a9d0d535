"""A call's trace written out (gateway/ops/trace_formats.py): the text in time order with both legs, and a
pcap file that a real independent reader (tshark, from Debian `tshark`) decodes as SIP over UDP from the
right addresses and ports, with valid IPv4 header and UDP checksums, IPv6 included."""

from __future__ import annotations

import subprocess
from pathlib import Path

from gateway.ops.trace import TraceStore
from gateway.ops.trace_formats import as_pcap, as_text
from peers.binaries import require_binary

GATEWAY = ("127.0.0.1", 5060)
PBX = ("127.0.0.2", 5070)
GATEWAY6 = ("::1", 5062)
PHONE6 = ("2001:db8::7", 5072)


def message(first: str, call_id: str, cseq: str, body: str = "") -> bytes:
    return (
        f"{first}\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK{cseq.replace(' ', '')}\r\n"
        f"From: <sip:1001@127.0.0.1>;tag=a\r\nTo: <sip:2000@127.0.0.1>\r\nCall-ID: {call_id}\r\n"
        f"CSeq: {cseq}\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


def a_trace() -> TraceStore:
    store = TraceStore()
    store.web(
        "gw-1", "in", "json", "WebDial", '{"destination": "2000"}\nv=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n', 1.0
    )
    store.link("gw-1", "c1", 1.1)
    store.sip(message("INVITE sip:2000@127.0.0.2:5070 SIP/2.0", "c1", "1 INVITE", "v=0\r\n"), "out", "UDP",
              GATEWAY, PBX, 1.25)  # fmt: skip
    store.sip(message("SIP/2.0 200 OK", "c1", "1 INVITE"), "in", "UDP", GATEWAY, PBX, 1.5)
    store.decision("gw-1", "INFO", "gateway.calls.machine", "call=gw-1 dialing -> connected", 1.6)
    store.link("gw-1", "c2", 1.7)
    store.sip(message("BYE sip:2000@[2001:db8::7]:5072 SIP/2.0", "c2", "2 BYE"), "out", "TCP", GATEWAY6,
              PHONE6, 2.0)  # fmt: skip
    return store


def test_the_text_has_both_legs_in_time_order() -> None:
    trace = a_trace().get("gw-1")
    assert trace is not None
    text = as_text(trace)
    lines = [line for line in text.splitlines() if line[:4].isdigit()]
    assert [line.split(" ", 3)[2] for line in lines] == ["web", "sip", "sip", "gateway", "sip"]
    assert "1970-01-01 00:00:01.250000 sip out UDP 127.0.0.1:5060 -> 127.0.0.2:5070" in text
    assert "sip in UDP 127.0.0.2:5070 -> 127.0.0.1:5060" in text
    assert "[::1]:5062 -> [2001:db8::7]:5072" in text
    assert "    INVITE sip:2000@127.0.0.2:5070 SIP/2.0" in text and "    o=- 1 1 IN IP4 0.0.0.0" in text
    assert "gateway INFO gateway.calls.machine: call=gw-1 dialing -> connected" in text
    assert "SIP Call-IDs: c1, c2" in text


def test_tshark_reads_the_pcap_as_sip_from_the_real_addresses(tmp_path: Path) -> None:
    tshark = require_binary("tshark")
    trace = a_trace().get("gw-1")
    assert trace is not None
    path = tmp_path / "call.pcap"
    path.write_bytes(as_pcap(trace))
    fields = ["frame.time_epoch", "ip.src", "ipv6.src", "udp.srcport", "udp.dstport", "sip.Method",
              "sip.Status-Code", "sip.Call-ID", "ip.checksum.status", "udp.checksum.status"]  # fmt: skip
    result = subprocess.run(
        [
            tshark,
            "-r",
            str(path),
            "-n",
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "udp.check_checksum:TRUE",
            "-d",
            "udp.port==5070,sip",
            "-d",
            "udp.port==5072,sip",
            "-T",
            "fields",
            "-E",
            "separator=|",
            *(arg for name in fields for arg in ("-e", name)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows = [line.split("|") for line in result.stdout.splitlines()]
    assert len(rows) == 3, result.stdout + result.stderr
    invite, ok, bye = rows
    assert invite[0].startswith("1.25") and invite[1:8] == [
        "127.0.0.1",
        "",
        "5060",
        "5070",
        "INVITE",
        "",
        "c1",
    ]
    assert ok[1:8] == ["127.0.0.2", "", "5070", "5060", "", "200", "c1"]
    assert bye[1:8] == ["", "::1", "5062", "5072", "BYE", "", "c2"]
    assert invite[8] == "1" and ok[8] == "1"  # IPv4 header checksums: good (0 bad, 1 good, 2 unverified)
    assert bye[9] == "1"  # the IPv6 UDP checksum (mandatory there): good
