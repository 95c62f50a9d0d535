"""UDP and TCP transports on loopback (IPv4 and IPv6): delivery with source, connection reuse,
CRLF keep-alive, framing errors, idle timeout, connect failures."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator

import pytest

from gateway.sip.transports.transport import Source, UdpTransport
from gateway.sip.transports.transport_tcp import ConnectionState, TcpLimits, TcpTransport
from peers.binaries import require_ipv6_loopback
from sipcore.errors import TransportError, Unreachable

OPTIONS = (
    b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKx\r\n"
    b"From: <sip:a@b>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n"
    b"Content-Length: 0\r\n\r\n"
)


class Inbox:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, Source]] = asyncio.Queue()

    def __call__(self, data: bytes, source: Source) -> None:
        self.queue.put_nowait((data, source))

    async def get(self, timeout: float = 2.0) -> tuple[bytes, Source]:
        return await asyncio.wait_for(self.queue.get(), timeout)


@pytest.fixture
async def closing() -> AsyncIterator[list[UdpTransport | TcpTransport]]:
    opened: list[UdpTransport | TcpTransport] = []
    yield opened
    for transport in opened:
        await transport.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_udp_delivers_with_source(host: str, closing: list[UdpTransport | TcpTransport]) -> None:
    if host == "::1":
        require_ipv6_loopback()
    inbox_a, inbox_b = Inbox(), Inbox()
    a = await UdpTransport.bind(host, 0, inbox_a)
    b = await UdpTransport.bind(host, 0, inbox_b)
    closing += [a, b]
    assert (a.name, a.reliable, a.local[0]) == ("UDP", False, host)
    a.send(OPTIONS, b.local)
    data, source = await inbox_b.get()
    assert data == OPTIONS
    assert (source.transport, source.address, source.local) == (b, a.local, b.local)
    b.send(b"reply", source.address)
    assert (await inbox_a.get())[0] == b"reply"


async def test_udp_send_errors_are_reported_not_raised(closing: list[UdpTransport | TcpTransport]) -> None:
    errors: list[Exception] = []
    udp = await UdpTransport.bind("127.0.0.1", 0, Inbox())
    closing.append(udp)
    udp.send(b"x", ("::1", 5060), errors.append)  # wrong family
    udp.send(b"x", ("example.com", 5060), errors.append)  # not an IP
    await udp.close()
    await udp.close()  # idempotent
    udp.send(b"x", ("127.0.0.1", 5060), errors.append)
    await asyncio.sleep(0)
    assert len(errors) == 3 and all(isinstance(e, TransportError) for e in errors)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_udp_icmp_port_unreachable_names_the_destination_and_loses_no_other_datagram(
    host: str, closing: list[UdpTransport | TcpTransport]
) -> None:
    """RFC 3261 §18.4: the ICMP error for a closed port reaches ``on_unreachable`` with that (ip, port);
    the kernel reports it to the next send as well, to another peer, which must still be delivered."""
    if host == "::1":
        require_ipv6_loopback()
    unreachable: list[tuple[UdpTransport, tuple[str, int], TransportError]] = []
    inbox = Inbox()
    udp = await UdpTransport.bind(host, 0, Inbox(), on_unreachable=lambda *args: unreachable.append(args))
    live = await UdpTransport.bind(host, 0, inbox)
    closing += [udp, live]
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.bind((host, 0))
        closed = probe.getsockname()[:2]
    udp.send(OPTIONS, closed)
    await asyncio.sleep(0.05)  # the ICMP error is queued on the socket by now (loopback)
    for n in range(5):
        udp.send(b"datagram %d" % n, live.local)
    assert [(await inbox.get())[0] for _ in range(5)] == [b"datagram %d" % n for n in range(5)]
    for _ in range(20):
        if unreachable:
            break
        await asyncio.sleep(0.05)
    assert [(t, a) for t, a, _ in unreachable] == [(udp, closed)]
    assert isinstance(unreachable[0][2], Unreachable)
    assert unreachable[0][2].reason_phrase.endswith("(ICMP: Connection refused)")


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_tcp_reuses_the_connection_both_ways(
    host: str, closing: list[UdpTransport | TcpTransport]
) -> None:
    if host == "::1":
        require_ipv6_loopback()
    inbox_a, inbox_b = Inbox(), Inbox()
    a = await TcpTransport.listen(host, 0, inbox_a)
    b = await TcpTransport.listen(host, 0, inbox_b)
    closing += [a, b]
    a.send(OPTIONS, b.local)
    a.send(OPTIONS, b.local)  # queued behind the connect, same connection
    data, source = await inbox_b.get()
    assert data == OPTIONS and source.transport is b and source.host == host
    await inbox_b.get()
    # The response goes back over the connection the request came on (RFC 3261 §18.2.2).
    b.send(OPTIONS.replace(b"OPTIONS sip", b"INFO sip"), source.address)
    data, back = await inbox_a.get()
    assert data.startswith(b"INFO") and back.address == b.local
    assert list(a.connections) == [b.local] and list(b.connections) == [source.address]


async def test_tcp_keepalive_pong_and_framing_error(closing: list[UdpTransport | TcpTransport]) -> None:
    inbox = Inbox()
    server = await TcpTransport.listen("127.0.0.1", 0, inbox)
    closing.append(server)
    good_r, good_w = await asyncio.open_connection(*server.local)
    bad_r, bad_w = await asyncio.open_connection(*server.local)
    good_w.write(b"\r\n\r\n")  # RFC 5626 §3.5.1 ping
    assert await asyncio.wait_for(good_r.readexactly(2), 2) == b"\r\n"
    bad_w.write(b"GARBAGE sip:x SIP/2.0\r\nVia: x\r\n\r\n")  # no Content-Length on a stream
    assert await asyncio.wait_for(bad_r.read(), 2) == b""  # closed
    good_w.write(OPTIONS)  # the other connection is untouched
    data, _ = await inbox.get()
    assert data == OPTIONS
    assert len(server.connections) == 1
    for writer in (good_w, bad_w):
        writer.close()


async def test_tcp_a_whole_message_before_unframeable_octets_is_delivered(
    closing: list[UdpTransport | TcpTransport],
) -> None:
    """RFC 4475 §3.1.1.8 on TCP: the complete message is handled, then the connection closes."""
    inbox = Inbox()
    server = await TcpTransport.listen("127.0.0.1", 0, inbox)
    closing.append(server)
    reader, writer = await asyncio.open_connection(*server.local)
    writer.write(OPTIONS + b"INVITE sip:joe@example.com SIP/2.0\r\nContent-Length: x\r\n\r\n")
    data, _ = await asyncio.wait_for(inbox.get(), 2)
    assert data == OPTIONS
    assert await asyncio.wait_for(reader.read(), 2) == b""  # then closed: the rest cannot be framed
    writer.close()


async def test_tcp_idle_connections_are_closed(closing: list[UdpTransport | TcpTransport]) -> None:
    server = await TcpTransport.listen("127.0.0.1", 0, Inbox(), idle_timeout=0.2)
    closing.append(server)
    reader, writer = await asyncio.open_connection(*server.local)
    writer.write(b"\r\n")
    await asyncio.sleep(0.05)
    assert list(server.connections.values()) == [ConnectionState.OPEN]
    assert await asyncio.wait_for(reader.read(), 2) == b""
    assert server.connections == {}
    writer.close()


async def test_tcp_connect_failure_reports_transport_error(
    closing: list[UdpTransport | TcpTransport],
) -> None:
    client = await TcpTransport.listen("127.0.0.1", 0, Inbox())
    closing.append(client)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, not listening: connection refused
        failed = asyncio.get_running_loop().create_future()
        client.send(OPTIONS, ("127.0.0.1", port), failed.set_result)
        error = await asyncio.wait_for(failed, 5)
    assert isinstance(error, Unreachable) and "refused the connection" in error.detail  # a 503 at once
    assert client.connections == {}
    await client.close()
    errors: list[Exception] = []
    client.send(OPTIONS, ("127.0.0.1", port), errors.append)
    await asyncio.sleep(0)
    assert len(errors) == 1


async def test_tcp_connection_caps(closing: list[UdpTransport | TcpTransport]) -> None:
    """At most max_connections_per_ip inbound connections from one IP, max_connections in all:
    the others are closed at once, and a freed slot can be used again."""
    limits = TcpLimits(max_connections=3, max_connections_per_ip=2)
    server = await TcpTransport.listen("127.0.0.1", 0, Inbox(), tcp_limits=limits)
    closing.append(server)
    first = [await asyncio.open_connection(*server.local) for _ in range(3)]
    assert await asyncio.wait_for(first[2][0].read(), 2) == b""  # third from 127.0.0.1: refused
    assert len(server.connections) == 2
    other = await asyncio.open_connection(server.local[0], server.local[1], local_addr=("127.0.0.2", 0))
    await asyncio.sleep(0.05)
    assert len(server.connections) == 3
    full = await asyncio.open_connection(server.local[0], server.local[1], local_addr=("127.0.0.3", 0))
    assert await asyncio.wait_for(full[0].read(), 2) == b""  # table full
    first[0][1].close()
    await asyncio.sleep(0.05)
    again = await asyncio.open_connection(*server.local)
    again[1].write(OPTIONS)
    await asyncio.sleep(0.05)
    assert len(server.connections) == 3
    for _, writer in (*first, other, full, again):
        writer.close()


async def test_untrusted_sources_cannot_take_the_connections_a_trusted_pbx_needs(
    closing: list[UdpTransport | TcpTransport],
) -> None:
    """Issue 10, item 2: 10 untrusted addresses x 4 idle connections against a table of 20 with 6 reserved:
    at most 3 each and 14 in all get in, they are closed after untrusted_idle_timeout, and the trusted
    PBX (127.0.0.1) is admitted during the attack and keeps its connection."""
    inbox = Inbox()
    limits = TcpLimits(
        max_connections=20, reserved_trusted=6, max_untrusted_per_ip=3, untrusted_idle_timeout=0.5
    )
    server = await TcpTransport.listen("127.0.0.1", 0, inbox, idle_timeout=30, tcp_limits=limits)
    server.trusts = lambda host: host == "127.0.0.1"
    closing.append(server)
    attackers = []
    for n in range(2, 12):
        for _ in range(4):
            attackers.append(await asyncio.open_connection(*server.local, local_addr=(f"127.0.0.{n}", 0)))
    await asyncio.sleep(0.1)
    untrusted = [a for a in server.connections if a[0] != "127.0.0.1"]
    assert len(untrusted) == 14 and max(sum(1 for a in untrusted if a[0] == h) for h, _ in untrusted) <= 3
    _, pbx = await asyncio.open_connection(*server.local)
    pbx.write(OPTIONS)
    data, source = await inbox.get()
    assert data.startswith(b"OPTIONS") and source.host == "127.0.0.1"
    for _ in range(3):  # the PBX keeps talking; the attackers stay idle
        await asyncio.sleep(0.3)
        pbx.write(OPTIONS)
    assert [a for a in server.connections if a[0] != "127.0.0.1"] == [], "idle untrusted connections stayed"
    assert any(a[0] == "127.0.0.1" for a in server.connections)
    # the closed ones were counted off (admission keeps counts, not a scan of the table): a second wave
    # from one address gets its 3 again, the 4th is refused at once
    wave = [await asyncio.open_connection(*server.local, local_addr=("127.0.0.2", 0)) for _ in range(4)]
    assert await asyncio.wait_for(wave[3][0].read(), 2) == b""
    assert sum(1 for a in server.connections if a[0] == "127.0.0.2") == 3
    for _, writer in (*attackers, *wave):
        writer.close()
    pbx.close()


async def test_tcp_trickled_partial_message_is_cut_off(closing: list[UdpTransport | TcpTransport]) -> None:
    """Slowloris: bytes of a message that never ends do not keep the connection open."""
    inbox = Inbox()
    server = await TcpTransport.listen(
        "127.0.0.1", 0, inbox, idle_timeout=10, tcp_limits=TcpLimits(message_timeout=0.3)
    )
    closing.append(server)
    reader, writer = await asyncio.open_connection(*server.local)
    closed = asyncio.ensure_future(reader.read())
    sent = 0
    for byte in OPTIONS[:100]:  # 100 bytes over 2 s, each well within the idle timeout
        writer.write(bytes([byte]))
        sent += 1
        await asyncio.sleep(0.02)
        if closed.done():
            break
    # closed with our bytes unread in its buffer, the kernel sends RST instead of FIN: closed all the same
    with contextlib.suppress(ConnectionResetError):
        assert await asyncio.wait_for(closed, 2) == b""
    assert sent < 50
    assert server.connections == {} and inbox.queue.empty()
    writer.close()
    # Whole messages keep a connection alive past the message timeout.
    reader, writer = await asyncio.open_connection(*server.local)
    for _ in range(4):
        writer.write(OPTIONS)
        await inbox.get()
        await asyncio.sleep(0.15)
    assert len(server.connections) == 1
    writer.close()


async def test_tcp_line_feed_flood_then_a_message(closing: list[UdpTransport | TcpTransport]) -> None:
    inbox = Inbox()
    server = await TcpTransport.listen("127.0.0.1", 0, inbox)
    closing.append(server)
    _, writer = await asyncio.open_connection(*server.local)
    writer.write(b"\n" * 3000 + OPTIONS)
    data, _ = await asyncio.wait_for(inbox.get(), 2)
    assert data == OPTIONS and len(server.connections) == 1
    writer.close()


async def test_a_dead_address_is_logged_once_a_minute_at_info(
    closing: list[UdpTransport | TcpTransport], caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 36 item 7: each retransmission to a dead UDP address brought an INFO `ICMP: Connection
    refused` line; the first is INFO, the next ones for that address within a minute DEBUG."""
    unreachable: list[object] = []
    udp = await UdpTransport.bind(
        "127.0.0.1", 0, Inbox(), on_unreachable=lambda *args: unreachable.append(args)
    )
    closing.append(udp)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[:2]
    caplog.set_level(logging.DEBUG, logger="gateway.sip.transports.transport")
    for n in range(4):  # a transaction's retransmissions
        udp.send(OPTIONS, closed)
        for _ in range(40):
            if len(unreachable) > n:
                break
            await asyncio.sleep(0.025)
    assert len(unreachable) == 4  # every one still reaches the transaction layer
    icmp = [r for r in caplog.records if "ICMP: Connection refused" in r.getMessage()]
    assert [r.levelno for r in icmp] == [logging.INFO] + [logging.DEBUG] * 3, [r.getMessage() for r in icmp]
