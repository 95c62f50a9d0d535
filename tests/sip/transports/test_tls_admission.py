"""Issue 32, item 3: a SIP TLS listener counts a connection from the moment it is accepted, not from the
end of its handshake. Raw TCP connections that never finish a handshake (silent, or a partial
ClientHello) from several 127.0.0.x addresses: those beyond the per-address cap are closed at once,
the others when the handshake deadline passes (long before the idle timeout), nothing is counted
twice, and a real TLS client sending OPTIONS during the attack is served and answered. The process's
file-descriptor budget refuses connections beyond its room (closed at once), and gives the room back."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.config import ConfigError
from gateway.devcert import DevCertificates, make_dev_certificates
from gateway.fd_reserve import FdReserve
from gateway.sip.transports.transport_tcp import ConnectionState, TcpLimits, TlsTransport
from gateway.sip.useragent.ua_settings import UASettings
from gateway.tls import sip_tls_contexts
from peers.ports import free_port
from tests.e2e.harness import gateway_config, running_gateway, wait_until
from tests.sip.transports.test_transport import OPTIONS, Inbox

# the first bytes of a TLS 1.2 ClientHello record, cut off: the server waits for the rest
PARTIAL_HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> DevCertificates:
    return make_dev_certificates(tmp_path_factory.mktemp("pki"), ["127.0.0.1"])


@pytest.fixture
async def listening(certificates: DevCertificates) -> AsyncIterator[list[TlsTransport]]:
    opened: list[TlsTransport] = []
    yield opened
    for transport in opened:
        await transport.close()


async def tls_listener(
    certificates: DevCertificates, inbox: Inbox, limits: TcpLimits, opened: list[TlsTransport]
) -> TlsTransport:
    contexts = sip_tls_contexts(str(certificates.certificate), str(certificates.private_key), None)
    server = await TlsTransport.listen(
        "127.0.0.1", 0, inbox, idle_timeout=60, tcp_limits=limits, tls=contexts
    )
    assert isinstance(server, TlsTransport)
    server.trusts = lambda host: host == "127.0.0.1"
    opened.append(server)
    return server


async def closed(stream: Stream, timeout: float) -> bool:
    """Whether the server closed `stream` within `timeout` seconds (EOF or reset)."""
    try:
        return await asyncio.wait_for(stream[0].read(1024), timeout) == b""
    except TimeoutError:  # (an OSError too: first)
        return False
    except OSError:  # reset
        return True


async def attack(server: TlsTransport, hosts: range, each: int) -> dict[str, list[Stream]]:
    streams: dict[str, list[Stream]] = {}
    for n in hosts:
        host = f"127.0.0.{n}"
        for index in range(each):
            stream = await asyncio.open_connection(*server.local, local_addr=(host, 0))
            if index % 2:
                stream[1].write(PARTIAL_HELLO)
            streams.setdefault(host, []).append(stream)
    return streams


async def options_over_tls(server: TlsTransport, inbox: Inbox, ca: Path) -> None:
    """A real TLS client (trusting the CA) sends OPTIONS; the transport delivers it and its answer
    goes back over that connection."""
    client = ssl.create_default_context(cafile=str(ca))
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(*server.local, ssl=client, server_hostname="127.0.0.1"), 10
    )
    writer.write(OPTIONS)
    data, source = await inbox.get(timeout=10)
    assert data.startswith(b"OPTIONS") and source.host == "127.0.0.1"
    answer = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"
    server.send(answer, source.address)
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10) == answer
    writer.close()


async def test_handshakes_are_capped_per_address_and_cut_off_at_the_deadline(
    certificates: DevCertificates, listening: list[TlsTransport]
) -> None:
    inbox = Inbox()
    limits = TcpLimits(
        max_connections=40, reserved_trusted=6, max_untrusted_per_ip=3, untrusted_idle_timeout=60,
        handshake_timeout=1.5,
    )  # fmt: skip
    server = await tls_listener(certificates, inbox, limits, listening)
    streams = await attack(server, range(2, 7), 5)  # 5 addresses x 5 half-open handshakes
    for host, opened in streams.items():
        for extra in opened[3:]:  # beyond the cap of 3: closed at once, before any deadline
            assert await closed(extra, 5), f"a 4th/5th handshake from {host} was admitted"
    handshaking = [a for a, state in server.connections.items() if state is ConnectionState.CONNECTING]
    assert len(handshaking) == 15, server.connections  # counted from accept, 3 per address
    await options_over_tls(server, inbox, certificates.ca)  # served during the attack
    # the handshake deadline (1.5 s), not the idle timeout (60 s), closes the rest
    await wait_until(lambda: not any(a[0] != "127.0.0.1" for a in server.connections), timeout=20)
    for opened in streams.values():
        for stream in opened[:3]:
            assert await closed(stream, 5)
            stream[1].close()
        for stream in opened[3:]:
            stream[1].close()
    # the room is free again: a new handshake from an attacked address gets in (and is counted)
    again = await asyncio.open_connection(*server.local, local_addr=("127.0.0.2", 0))
    await wait_until(lambda: any(a[0] == "127.0.0.2" for a in server.connections), timeout=10)
    again[1].close()


async def test_the_fd_budget_refuses_handshakes_beyond_its_room(
    certificates: DevCertificates, listening: list[TlsTransport]
) -> None:
    inbox = Inbox()
    limits = TcpLimits(max_untrusted_per_ip=4, handshake_timeout=30, untrusted_idle_timeout=60)
    server = await tls_listener(certificates, inbox, limits, listening)
    server.fd_reserve = reserve = FdReserve(limit=100, reserve=90, baseline=4)  # room for 6
    streams = await attack(server, range(2, 5), 3)  # 9 from 3 addresses, under the per-address cap
    flat = [stream for opened in streams.values() for stream in opened]
    assert [await closed(stream, 0.5 if i < 6 else 5) for i, stream in enumerate(flat)] == [False] * 6 + [
        True
    ] * 3
    assert reserve.in_use == 6 and reserve.refused == 3
    for stream in flat[:2]:  # two leave: their descriptors are given back
        stream[1].close()
    await wait_until(lambda: reserve.in_use == 4, timeout=10)
    await options_over_tls(server, inbox, certificates.ca)
    for stream in flat:
        stream[1].close()
    await wait_until(lambda: reserve.in_use == 0, timeout=10)


def test_the_connections_section_sets_the_sip_limits() -> None:
    config = gateway_config(
        None,
        connections={
            "tls_handshake_timeout": 2.5, "sip_max_connections": 40, "sip_max_connections_per_ip": 8,
            "sip_max_untrusted_per_ip": 2, "sip_untrusted_idle_timeout": 3,
        },
    )  # fmt: skip
    limits = UASettings.from_config(config).tcp_limits
    assert (limits.handshake_timeout, limits.max_connections, limits.max_connections_per_ip) == (2.5, 40, 8)
    assert (limits.max_untrusted_per_ip, limits.untrusted_idle_timeout, limits.reserved_trusted) == (2, 3, 10)
    with pytest.raises(ConfigError, match="sip_max_untrusted_per_ip"):
        gateway_config(None, connections={"sip_max_untrusted_per_ip": 64})


async def test_the_running_gateway_answers_options_over_tls_during_a_handshake_flood(
    certificates: DevCertificates,
) -> None:
    tls_port = free_port()
    sip = {
        "listen": [
            {"transport": "udp", "host": "127.0.0.1", "port": free_port(socket.SOCK_DGRAM)},
            {"transport": "tls", "host": "127.0.0.1", "port": tls_port},
        ],
        "trusted_sources": ["127.0.0.1/32"],
        "tls": {"certificate": str(certificates.certificate), "private_key": str(certificates.private_key)},
    }
    limits = {"tls_handshake_timeout": 1.5, "sip_max_untrusted_per_ip": 3, "sip_untrusted_idle_timeout": 60}
    async with running_gateway(gateway_config(None, sip=sip, connections=limits)):
        attack: list[Stream] = []
        for n in range(2, 6):
            for index in range(5):
                stream = await asyncio.open_connection("127.0.0.1", tls_port, local_addr=(f"127.0.0.{n}", 0))
                if index % 2:
                    stream[1].write(PARTIAL_HELLO)
                attack.append(stream)
        refused = [await closed(stream, 5) for stream in attack if attack.index(stream) % 5 >= 3]
        assert all(refused), "handshakes beyond the per-address cap were kept"
        client = ssl.create_default_context(cafile=str(certificates.ca))
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", tls_port, ssl=client, server_hostname="127.0.0.1"), 10
        )
        # to the gateway itself (an OPTIONS to a user is answered as an INVITE to her would be: 404 for x)
        writer.write(OPTIONS.replace(b"SIP/2.0/TCP", b"SIP/2.0/TLS").replace(b"sip:x@", b"sip:"))
        status = await asyncio.wait_for(reader.readline(), 10)
        assert status.startswith(b"SIP/2.0 200"), status
        writer.close()
        for stream in attack:  # the deadline closes the rest
            assert await closed(stream, 10)
            stream[1].close()
