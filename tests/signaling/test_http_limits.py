"""Issue 32, items 3 and 4, against the running gateway's HTTP(S) listener with raw sockets: a header
sent byte by byte (slowloris) loses its connection at the header deadline, a body at the body deadline,
connections beyond the per-address cap are closed at once (other addresses still served), and on
HTTPS half-open TLS handshakes from several 127.0.0.x addresses are counted and capped from accept and
closed at the handshake deadline, while a real HTTPS client gets /healthz during the attack; half-open
requests are capped per address and, when they fill the listener, the oldest makes room for a newcomer
(issue 67 item 18)."""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from gateway.app import Gateway
from gateway.devcert import DevCertificates, make_dev_certificates
from peers.ports import free_port
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until
from tests.e2e.ops.test_operations import scrape, value
from tests.sip.transports.test_tls_admission import PARTIAL_HELLO, Stream, closed

LIMITS = {
    "http_header_timeout": 1.0,
    "http_body_timeout": 1.0,
    "http_max_connections_per_ip": 4,
    "tls_handshake_timeout": 1.5,
}


@asynccontextmanager
async def limited_gateway(http: dict[str, Any] | None = None) -> AsyncIterator[tuple[Gateway, str, int]]:
    sections: dict[str, Any] = {"connections": LIMITS}
    if http is not None:
        sections["http"] = http
    config = gateway_config(None, **sections)
    async with running_gateway(config) as gateway:
        assert gateway.http is not None
        yield gateway, config.http.host, gateway.http.port


async def get_healthz(host: str, port: int, local: str = "127.0.0.1", **tls: Any) -> bytes:
    """The status line of GET /healthz over a fresh connection (TLS when `ssl` is given)."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, local_addr=(local, 0), **tls), 10
    )
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
    line = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    return line.strip()


async def test_a_header_sent_byte_by_byte_is_cut_off_at_the_header_deadline() -> None:
    async with limited_gateway() as (gateway, host, port):
        stream = await asyncio.open_connection(host, port, local_addr=("127.0.0.2", 0))
        stream[1].write(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n")
        line = b"X-Slow: a\r\n"
        for index in range(100):  # a header line a byte at a time, 0.1 s apart: never a blank line
            if await closed(stream, 0.1):
                break
            stream[1].write(line[index % len(line) : index % len(line) + 1])
        else:
            pytest.fail("a trickled header kept its connection for 10 s (deadline 1 s)")
        stream[1].close()
        assert await get_healthz(host, port, "127.0.0.2") == b"HTTP/1.1 200 OK"  # the address is not banned
        gate = gateway.http.gates[0] if gateway.http is not None else None
        assert gate is not None
        await wait_until(lambda: gate.from_address("127.0.0.2") == 0, timeout=10)


async def test_a_body_sent_too_slowly_is_cut_off_at_the_body_deadline() -> None:
    async with limited_gateway() as (_, host, port):
        stream = await asyncio.open_connection(host, port, local_addr=("127.0.0.2", 0))
        credentials = base64.b64encode(f"alice:{ALICE_SECRET}".encode()).decode()
        stream[1].write(
            b"POST /webrtc/offer HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
            + f"Authorization: Basic {credentials}\r\n".encode()
            + b'Content-Length: 400\r\n\r\n{"sdp": '
        )
        for _ in range(100):
            try:
                data = await asyncio.wait_for(stream[0].read(1024), 0.1)
            except TimeoutError:
                stream[1].write(b" ")  # a byte every 0.1 s: the body never completes
                continue
            except OSError:
                data = b""
            assert data == b"", f"an answer to an incomplete body: {data[:80]!r}"
            break
        else:
            pytest.fail("a trickled body kept its connection for 10 s (deadline 1 s)")
        stream[1].close()


async def test_connections_beyond_the_per_address_cap_are_closed_at_once() -> None:
    async with limited_gateway() as (gateway, host, port):
        held = [await asyncio.open_connection(host, port, local_addr=("127.0.0.2", 0)) for _ in range(6)]
        for extra in held[4:]:
            assert await closed(extra, 5), "a 5th/6th connection from one address was kept"
        assert gateway.http is not None and gateway.http.gates[0].from_address("127.0.0.2") == 4
        assert await get_healthz(host, port, "127.0.0.3") == b"HTTP/1.1 200 OK"  # another address: served
        for stream in held[:4]:  # the held ones go at the header deadline
            assert await closed(stream, 10)
            stream[1].close()
        status, samples = await scrape(gateway, token=None)  # counted in /metrics (issue 36 item 2)
        assert status == 200
        refused = "gateway_connections_refused_total"
        assert value(samples, refused, listener="http", reason="connections") == 2, samples
        assert value(samples, refused, listener="http", reason="too_slow") == 4, samples
        assert value(samples, refused, listener="http", reason="fd_reserve") == 0, samples


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> DevCertificates:
    return make_dev_certificates(tmp_path_factory.mktemp("pki"), ["127.0.0.1"])


async def test_https_handshakes_are_capped_from_accept_and_cut_off_at_the_deadline(
    certificates: DevCertificates,
) -> None:
    tls = {"certificate": str(certificates.certificate), "private_key": str(certificates.private_key)}
    async with limited_gateway({"host": "127.0.0.1", "port": free_port(), "tls": tls}) as (
        gateway,
        host,
        port,
    ):
        assert gateway.http is not None
        gate = gateway.http.gates[0]
        attack: dict[str, list[Stream]] = {}
        for n in range(2, 6):  # 4 addresses x 6 handshakes that never end
            for index in range(6):
                stream = await asyncio.open_connection(host, port, local_addr=(f"127.0.0.{n}", 0))
                if index % 2:
                    stream[1].write(PARTIAL_HELLO)
                attack.setdefault(f"127.0.0.{n}", []).append(stream)
        for address, streams in attack.items():
            for extra in streams[4:]:
                assert await closed(extra, 5), f"a handshake beyond the cap from {address} was kept"
        assert gate.open == 16, gate.open
        client = ssl.create_default_context(cafile=str(certificates.ca))
        status = await get_healthz(host, port, ssl=client, server_hostname="127.0.0.1")
        assert status == b"HTTP/1.1 200 OK"  # served during the attack
        for streams in attack.values():  # the handshake deadline (1.5 s) closes them all
            for stream in streams[:4]:
                assert await closed(stream, 10)
        for streams in attack.values():
            for stream in streams:
                stream[1].close()
        await wait_until(lambda: gate.open == 0, timeout=10)
        assert await get_healthz(host, port, "127.0.0.2", ssl=client, server_hostname="127.0.0.1") == (
            b"HTTP/1.1 200 OK"
        )


async def test_tls_handshakes_at_once_are_capped_per_address(certificates: DevCertificates) -> None:
    """Each handshake holds a 256 KiB buffer: beyond `tls_max_handshakes_per_ip` at once, a connection
    from that address is closed at once, though it is under the connection cap; a finished handshake
    frees its slot (a real client from the same address then gets in)."""
    tls = {"certificate": str(certificates.certificate), "private_key": str(certificates.private_key)}
    config = gateway_config(
        None,
        http={"host": "127.0.0.1", "port": free_port(), "tls": tls},
        connections={"tls_max_handshakes_per_ip": 2, "tls_handshake_timeout": 1.5},
    )
    async with running_gateway(config) as gateway:
        assert gateway.http is not None
        port = gateway.http.port
        pending = [
            await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.2", 0)) for _ in range(4)
        ]
        for extra in pending[2:]:
            assert await closed(extra, 5), "a third handshake at once from one address was kept"
        client = ssl.create_default_context(cafile=str(certificates.ca))
        assert await get_healthz("127.0.0.1", port, "127.0.0.3", ssl=client, server_hostname="127.0.0.1") == (
            b"HTTP/1.1 200 OK"
        )
        for stream in pending[:2]:  # their deadline frees the slots
            assert await closed(stream, 10)
            stream[1].close()
        for stream in pending[2:]:
            stream[1].close()
        await wait_until(lambda: gateway.http is not None and gateway.http.gates[0].open == 0, timeout=10)
        for _ in range(3):  # one after another, each finishing: never more than one at once
            status = await get_healthz(
                "127.0.0.1", port, "127.0.0.2", ssl=client, server_hostname="127.0.0.1"
            )
            assert status == b"HTTP/1.1 200 OK"


async def test_tls_handshakes_at_once_are_capped_in_all(certificates: DevCertificates) -> None:
    tls = {"certificate": str(certificates.certificate), "private_key": str(certificates.private_key)}
    config = gateway_config(
        None,
        http={"host": "127.0.0.1", "port": free_port(), "tls": tls},
        connections={"tls_max_handshakes": 3, "tls_handshake_timeout": 1.5},
    )
    async with running_gateway(config) as gateway:
        assert gateway.http is not None
        port = gateway.http.port
        pending = [
            await asyncio.open_connection("127.0.0.1", port, local_addr=(f"127.0.0.{2 + n % 2}", 0))
            for n in range(5)
        ]
        assert [await closed(stream, 0.3 if n < 3 else 5) for n, stream in enumerate(pending)] == [
            False, False, False, True, True,
        ]  # fmt: skip
        for stream in pending:
            stream[1].close()
        await wait_until(lambda: gateway.http is not None and gateway.http.gates[0].open == 0, timeout=10)
        client = ssl.create_default_context(cafile=str(certificates.ca))
        assert await get_healthz("127.0.0.1", port, "127.0.0.4", ssl=client, server_hostname="127.0.0.1") == (
            b"HTTP/1.1 200 OK"
        )


async def test_a_stale_handshake_yields_its_slot_to_a_new_connection(certificates: DevCertificates) -> None:
    """Issue 32: handshakes that never finish from enough addresses, each under its own cap, take every
    slot; a browser arriving then gets in, and the oldest stalled handshake is closed for it."""
    tls = {"certificate": str(certificates.certificate), "private_key": str(certificates.private_key)}
    config = gateway_config(
        None,
        http={"host": "127.0.0.1", "port": free_port(), "tls": tls},
        connections={"tls_max_handshakes": 3, "tls_max_handshakes_per_ip": 1, "tls_handshake_timeout": 4},
    )
    async with running_gateway(config) as gateway:
        assert gateway.http is not None
        port = gateway.http.port
        stalled = [
            await asyncio.open_connection("127.0.0.1", port, local_addr=(f"127.0.0.{2 + n}", 0))
            for n in range(3)
        ]
        assert not await closed(stalled[0], 0.1)
        await asyncio.sleep(1.2)  # older than a browser's handshake takes: the slots are a flood's
        client = ssl.create_default_context(cafile=str(certificates.ca))
        status = await get_healthz("127.0.0.1", port, "127.0.0.9", ssl=client, server_hostname="127.0.0.1")
        assert status == b"HTTP/1.1 200 OK"
        assert await closed(stalled[0], 1)  # the oldest made room: closed long before its 4 s deadline
        assert not await closed(stalled[2], 0.1)
        for stream in stalled:
            stream[1].close()


async def test_a_reverse_proxy_is_exempt_from_the_per_address_caps() -> None:
    """HAProxy in front: every browser comes from its address, listed in `http.trusted_proxies`; the cap
    in all still applies."""
    limits = {**LIMITS, "http_max_connections": 8, "http_header_timeout": 60}
    http = {"host": "127.0.0.1", "port": free_port(), "trusted_proxies": ["127.0.0.2/32"]}
    async with running_gateway(gateway_config(None, connections=limits, http=http)) as gateway:
        assert gateway.http is not None
        port = gateway.http.port
        proxy = [
            await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.2", 0)) for _ in range(6)
        ]
        assert [await closed(stream, 0.3) for stream in proxy] == [False] * 6  # beyond 4: kept
        assert gateway.http.gates[0].from_address("127.0.0.2") == 6
        more = [
            await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.3", 0)) for _ in range(3)
        ]
        assert [await closed(stream, 0.3) for stream in more] == [False] * 3
        # the listener was full: the third took the slot of the proxy's oldest connection, which had
        # waited over a second without a request (issue 67 item 18); still 8 in all
        assert await closed(proxy[0], 1) and not await closed(proxy[1], 0.1)
        assert gateway.http.gates[0].open == 8
        for stream in proxy + more:
            stream[1].close()


HALF_OPEN = b"GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Slow: "  # never its blank line


async def test_half_open_requests_leave_room_for_a_well_behaved_client() -> None:
    """Issue 67 item 18: 4,096 half-open requests held from 33 addresses (128 each) kept a legitimate
    /healthz out. Here http_max_connections 12, 8 per address of which 3 may wait for their header:
    each of 127.0.0.2-5 gets 3 half-open requests in, its 4th is closed at once (its share), and four
    addresses hold the listener full; a second later a GET /healthz from 127.0.0.9 is answered 200, the
    oldest half-open request (127.0.0.2's first) closed for it long before its 30 s header deadline."""
    limits = {
        "http_max_connections": 12,
        "http_max_connections_per_ip": 8,
        "http_max_waiting_per_ip": 3,
        "http_header_timeout": 30,
    }
    http = {"host": "127.0.0.1", "port": free_port()}
    async with running_gateway(gateway_config(None, connections=limits, http=http)) as gateway:
        assert gateway.http is not None
        gate, port = gateway.http.gates[0], gateway.http.port
        held: list[Stream] = []
        for n in range(2, 6):
            streams = [
                await asyncio.open_connection("127.0.0.1", port, local_addr=(f"127.0.0.{n}", 0))
                for _ in range(4)
            ]
            for stream in streams:
                stream[1].write(HALF_OPEN)
            assert [await closed(stream, 0.1 if i < 3 else 5) for i, stream in enumerate(streams)] == [
                False, False, False, True,
            ], f"127.0.0.{n}"  # fmt: skip
            held += streams[:3]
            streams[3][1].close()
        assert gate.open == 12 and gate.from_address("127.0.0.5") == 3
        await asyncio.sleep(1.2)  # older than a browser takes to send its request: a flood's
        assert await get_healthz("127.0.0.1", port, "127.0.0.9") == b"HTTP/1.1 200 OK"
        assert await closed(held[0], 1)  # the oldest half-open request made room
        assert [await closed(stream, 0.05) for stream in held[1:]] == [False] * 11
        status, samples = await scrape(gateway, token=None)
        assert status == 200
        refused = "gateway_connections_refused_total"
        assert value(samples, refused, listener="http", reason="waiting_per_address") == 4, samples
        for stream in held:
            stream[1].close()
