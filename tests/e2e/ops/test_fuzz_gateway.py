"""The whole gateway under a bounded fuzz (issue 10): ~20,000 mutated SIP datagrams, ~2,000 TCP streams,
~5,000 WebSocket messages and ~1,000 raw HTTP requests, in batches, from trusted and untrusted loopback
addresses. After every batch the gateway must answer an OPTIONS (SIP, sent again as a UDP client
would) and /healthz (HTTP) within ALIVE_WITHIN; at the end no log record may carry a traceback or be an
ERROR. A fixed seed and a random one run; the seed is in every failure message."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import socket
import time
from typing import Any

import aiohttp
import pytest

from gateway.app import Gateway
from peers.ports import free_port
from tests.conftest import RUN_SEED
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway
from tests.sip.transports.test_fuzz_receive import BASE, mutate

# Seconds for the gateway to answer an OPTIONS after each fuzz batch. A stall shows (a blocked loop never
# answers; a transaction timer's wait is 32 s); a loaded machine's scheduling does not: the gateway reads
# what the kernel kept of a batch (2,000 datagrams) before the probe. With the suite's parallel workers
# on 2 cores 2 s failed at load 7-9 (1 s once at load 5-8 in the serial suite), and 8 s (five probes
# sent) once at load 12 in the first minute of a 6-worker run on a fresh clone.
ALIVE_WITHIN = 15.0

SIP_BATCHES, SIP_PER_BATCH = 10, 2000
TCP_BATCHES, TCP_PER_BATCH = 10, 200
WS_BATCHES, WS_PER_BATCH = 10, 500
HTTP_BATCHES, HTTP_PER_BATCH = 5, 200

WS_BASE: list[dict[str, Any]] = [
    {"type": "login", "id": 1, "user": "alice", "secret": ALICE_SECRET},
    {"type": "call", "id": 2, "to": "2000", "sdp": {"type": "offer", "sdp": "v=0\r\n"}},
    {"type": "answer", "id": 3, "call_id": "x", "sdp": {"type": "answer", "sdp": "v=0"}},
    {"type": "dtmf", "id": 4, "call_id": "x", "digits": "123"},
    {"type": "hold", "id": 5, "call_id": "x"},
    {
        "type": "ice",
        "id": 6,
        "call_id": "x",
        "candidate": {"candidate": "candidate:1 1 udp 1 1.2.3.4 5 typ host"},
    },
    {"type": "ping", "id": 7},
]
ODD_VALUES: list[Any] = [
    None,
    True,
    -1,
    2**70,
    1.5e308,
    "",
    "\x00",
    "\u202e",
    "x" * 5000,
    [],
    {},
    [1, [2, [3]]],
]


def mutate_ws(rng: random.Random) -> str:
    message = dict(rng.choice(WS_BASE))
    for _ in range(rng.randint(1, 3)):
        key = rng.choice([*message, "type", "id", "extra"])
        if rng.random() < 0.3:
            message.pop(key, None)
        else:
            message[key] = rng.choice(ODD_VALUES)
    text = json.dumps(message)
    if rng.random() < 0.2:
        cut = rng.randrange(len(text) + 1)
        text = text[:cut] + rng.choice(["", "}", "\x00", "\\", '"']) + text[cut:]
    return text


def mutate_http(rng: random.Random, port: int) -> bytes:
    line = rng.choice(["GET /healthz", "POST /webrtc/offer", "GET /ws", "OPTIONS /", "GET /static/../../etc"])
    headers = [f"Host: 127.0.0.1:{port}", "Content-Type: application/json"]
    body = rng.choice([b"", b"{}", b'{"sdp":', b"\x00" * 10, json.dumps({"sdp": {"type": "offer"}}).encode()])
    headers.append(f"Content-Length: {rng.choice([len(body), 0, 99999, -1])}")
    if rng.random() < 0.3:
        headers.append(
            rng.choice(["Authorization: Basic !!!", "Transfer-Encoding: chunked", "Upgrade: websocket"])
        )
    raw = f"{line} HTTP/1.1\r\n" + "\r\n".join(headers) + "\r\n\r\n"
    data = bytearray(raw.encode() + body)
    if rng.random() < 0.3:
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


async def _answered(
    loop: asyncio.AbstractEventLoop, probe: socket.socket, marker: bytes, within: float
) -> bool:
    """Whether a datagram holding `marker` reaches `probe` within `within` seconds."""
    deadline = time.monotonic() + within
    try:
        while True:
            data = await asyncio.wait_for(loop.sock_recv(probe, 65535), deadline - time.monotonic())
            if marker in data:
                return True
    except TimeoutError:
        return False


async def alive(gateway: Gateway, seed: int, what: str) -> None:
    """OPTIONS from the trusted address and /healthz, each answered within ALIVE_WITHIN."""
    host, port = gateway.sip_address
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        probe.setblocking(False)
        local = probe.getsockname()[1]
        nonce = random.randrange(10**9)
        options = (
            f"OPTIONS sip:{host}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bKalive{nonce}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag={nonce}\r\nTo: <sip:{host}:{port}>\r\n"
            f"Call-ID: alive-{nonce}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
        # Sent again as an RFC 3261 client does over UDP (Timer E: 500 ms, doubling): the batch may have
        # filled the gateway's receive buffer, and the kernel drops a datagram that finds it full.
        started = time.monotonic()
        interval, sends = 0.5, 0
        while True:
            left = ALIVE_WITHIN - (time.monotonic() - started)
            if left <= 0:
                pytest.fail(
                    f"seed {seed}: no answer to OPTIONS within {ALIVE_WITHIN} s ({sends} sent) after {what}"
                )
            await loop.sock_sendto(probe, options.encode(), (host, port))
            sends += 1
            if await _answered(loop, probe, f"alive-{nonce}".encode(), min(interval, left)):
                break
            interval = min(2 * interval, 4.0)
    async with (
        aiohttp.ClientSession() as http,
        http.get(gateway.http_url + "/healthz", timeout=aiohttp.ClientTimeout(total=ALIVE_WITHIN)) as reply,
    ):
        assert reply.status == 200, f"seed {seed}: /healthz {reply.status} after {what}"


async def fuzz_sip_datagrams(gateway: Gateway, rng: random.Random, seed: int) -> None:
    """Mutated SIP messages over UDP from three addresses, in batches."""
    host, port = gateway.sip_address
    senders = []
    for source in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sender.bind((source, 0))
        sender.setblocking(False)
        senders.append(sender)
    try:
        for batch in range(SIP_BATCHES):
            for n in range(SIP_PER_BATCH):
                try:
                    senders[n % 3].sendto(mutate(rng.choice(BASE), rng), (host, port))
                except BlockingIOError:
                    await asyncio.sleep(0.001)
                if n % 200 == 0:
                    await asyncio.sleep(0)  # let the gateway read
            await asyncio.sleep(0.05)
            await alive(gateway, seed, f"SIP datagram batch {batch}")
    finally:
        for sender in senders:
            sender.close()


async def fuzz_sip_tcp(gateway: Gateway, rng: random.Random, seed: int) -> None:
    """One mutated SIP message per TCP connection, from 20 addresses, in batches."""
    assert gateway.sip is not None
    tcp = next(t for t in gateway.sip.layer.transports if t.name == "TCP")
    for batch in range(TCP_BATCHES):
        for n in range(TCP_PER_BATCH):
            try:
                _, writer = await asyncio.open_connection(*tcp.local, local_addr=(f"127.0.0.{1 + n % 20}", 0))
            except OSError:
                continue
            writer.write(mutate(rng.choice(BASE), rng))
            writer.close()
        await asyncio.sleep(0.05)
        await alive(gateway, seed, f"TCP batch {batch}")


async def fuzz_websocket(gateway: Gateway, rng: random.Random, seed: int) -> None:
    """Mutated /ws messages, 50 a socket, each batch from an address of its own."""
    ws_url = gateway.http_url.replace("http://", "ws://") + "/ws"
    for batch in range(WS_BATCHES):
        connector = aiohttp.TCPConnector(local_addr=(f"127.0.0.{10 + batch}", 0), force_close=True)
        async with aiohttp.ClientSession(connector=connector) as client:
            sent = 0
            while sent < WS_PER_BATCH:
                try:
                    async with client.ws_connect(ws_url, heartbeat=None) as ws:
                        for _ in range(50):
                            await ws.send_str(mutate_ws(rng))
                            sent += 1
                        await ws.close()
                except (aiohttp.ClientError, ConnectionError):
                    sent += 50  # the gateway closed or refused it (rate limits): counted as sent
        await alive(gateway, seed, f"WebSocket batch {batch}")


async def fuzz_http(gateway: Gateway, rng: random.Random, seed: int) -> None:
    """One mutated HTTP request per connection, in batches."""
    http_port = int(gateway.http_url.rsplit(":", 1)[1])
    for batch in range(HTTP_BATCHES):
        for _ in range(HTTP_PER_BATCH):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", http_port)
            except OSError:
                continue
            writer.write(mutate_http(rng, http_port))
            writer.close()
        await asyncio.sleep(0.05)
        await alive(gateway, seed, f"HTTP batch {batch}")


# A failure names its seed: FUZZ_SEED=<seed> replays it.
SEEDS = [int(os.environ["FUZZ_SEED"])] if os.environ.get("FUZZ_SEED") else [1122, RUN_SEED]


@pytest.mark.parametrize("seed", SEEDS)
async def test_the_gateway_survives_a_bounded_fuzz(seed: int, caplog: pytest.LogCaptureFixture) -> None:
    rng = random.Random(seed)
    listen = [
        {"transport": "udp", "host": "127.0.0.1", "port": free_port(socket.SOCK_DGRAM)},
        {"transport": "tcp", "host": "127.0.0.1", "port": free_port()},
    ]
    sip = {"listen": listen, "trusted_sources": ["127.0.0.1/32"]}
    async with running_gateway(gateway_config(None, sip=sip)) as gateway:
        assert gateway.sip is not None
        with caplog.at_level(logging.INFO):
            await fuzz_sip_datagrams(gateway, rng, seed)
            await fuzz_sip_tcp(gateway, rng, seed)
            await fuzz_websocket(gateway, rng, seed)
            await fuzz_http(gateway, rng, seed)
    bad = [r for r in caplog.records if r.exc_info is not None or r.levelno >= logging.ERROR]
    assert not bad, f"seed {seed}: {bad[0].name}: {bad[0].getMessage()}"
