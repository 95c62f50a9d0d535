"""`Tracing` (gateway/ops/trace_wiring.py) on a real event loop and real sockets: the SIP tap files the
message and sends it as HEPv3 to a UDP receiver, a HEP server that cannot be reached costs HEP only, log
records with a call id become decisions and link the SIP Call-ID, web events show no credentials."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from dataclasses import dataclass

import pytest

from gateway.config.secret import Secret, SecretSource
from gateway.config.trace import HepSection, TraceSection
from gateway.config.values import HostPort
from gateway.ops.hep import decode
from gateway.ops.trace import Kind
from gateway.ops.trace_wiring import Tracing, describe_event

INVITE = b"INVITE sip:2000@127.0.0.1 SIP/2.0\r\nCall-ID: sip-7\r\nCSeq: 1 INVITE\r\n\r\n"


@dataclass
class Transport:
    name: str
    local: tuple[str, int]


@dataclass(frozen=True)
class User:
    id: str
    secret_hash: str


@dataclass(frozen=True)
class WebDial:
    session_id: str
    user: User
    destination: str
    sdp: str
    api_key: str | None = None


async def test_the_tap_files_the_message_and_sends_it_as_hep() -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setblocking(False)
    hep = HepSection(
        HostPort("127.0.0.1", receiver.getsockname()[1]), 9, Secret(SecretSource.INLINE, "", "pw")
    )
    tracing = Tracing(TraceSection(enabled=True, hep=hep), clock=lambda: 1000.5)
    await tracing.start()
    try:
        tracing.store.link("gw-1", "sip-7", 1000.0)
        tracing.sip_tap("in", INVITE, Transport("UDP", ("127.0.0.1", 5060)), ("127.0.0.2", 5070))
        packet = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(receiver, 65535), 5)
    finally:
        await tracing.close()
        receiver.close()
    chunks = decode(packet)
    assert chunks[0x0003] == bytes([127, 0, 0, 2]) and chunks[0x0004] == bytes([127, 0, 0, 1])
    assert int.from_bytes(chunks[0x0007], "big") == 5070 and int.from_bytes(chunks[0x0008], "big") == 5060
    assert chunks[0x000E] == b"pw" and int.from_bytes(chunks[0x000C], "big") == 9
    assert chunks[0x0011] == b"sip-7" and chunks[0x000F] == INVITE
    trace = tracing.store.get("gw-1")
    assert trace is not None and trace.entries[0].remote == ("127.0.0.2", 5070) and tracing.hep_sent == 1


async def test_a_hep_server_that_cannot_be_reached_costs_hep_only(caplog: pytest.LogCaptureFixture) -> None:
    tracing = Tracing(TraceSection(enabled=True, hep=HepSection(HostPort("hep.invalid", 9060))))
    await tracing.start()
    try:
        tracing.store.link("gw-1", "sip-7", 0.0)
        tracing.sip_tap("out", INVITE, Transport("UDP", ("127.0.0.1", 5060)), ("127.0.0.2", 5070))
    finally:
        await tracing.close()
    assert "trace.hep.address hep.invalid:9060" in caplog.text
    assert tracing.hep_sent == 0 and tracing.text("gw-1") is not None


async def test_log_records_with_a_call_id_are_decisions_from_the_loops_thread_only() -> None:
    tracing = Tracing(TraceSection(enabled=True))
    await tracing.start()
    log = logging.getLogger("gateway.test_trace_wiring")
    log.setLevel(logging.INFO)
    try:
        tracing.sip_tap("in", INVITE, Transport("UDP", ("127.0.0.1", 5060)), ("127.0.0.2", 5070))
        log.info("call=gw-2 ringing", extra={"call": "gw-2", "sip_call_id": "sip-7"})
        log.info("no call here")
        thread = threading.Thread(target=log.info, args=("elsewhere",), kwargs={"extra": {"call": "gw-2"}})
        thread.start()
        thread.join()
    finally:
        await tracing.close()
        log.setLevel(logging.NOTSET)
    log.info("after close", extra={"call": "gw-2"})
    trace = tracing.store.get("gw-2")
    assert trace is not None
    assert [(e.kind, e.text) for e in trace.entries] == [
        (Kind.SIP, INVITE.decode()),
        (Kind.DECISION, "call=gw-2 ringing"),
    ]


def test_web_events_show_the_sdp_and_no_credentials() -> None:
    name, text = describe_event(WebDial("s1", User("alice", "scrypt$secret"), "2000", "v=0\r\n", "key-123"))
    assert name == "WebDial" and text.startswith('{"user": "alice", "destination": "2000"}')
    assert text.endswith("\nv=0\r\n") and "secret" not in text and "key-123" not in text and "s1" not in text
