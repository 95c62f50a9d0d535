"""Legitimate calls while the gateway is attacked (issue 10): success rate and setup time per attack.

Run: python bench/attack_bench.py [--calls 10]   (needs sipp; about two minutes)

The gateway runs in this process with sipp's UAS as its PBX. For each scenario a legitimate web user
(aiortc, from 127.0.0.1) logs in, calls 2000 and hangs up, `--calls` times, while the attack runs from
untrusted loopback addresses (127.0.0.2 and up):

- none: no attack (the reference);
- idle-websockets: never-logged-in WebSockets opened as fast as the gateway accepts them;
- login-guessing: wrong secrets for alice over WebSockets, as fast as they are answered;
- sip-garbage: mutated SIP datagrams (the fuzz of tests/sip/transports/test_fuzz_receive.py), flat out;
- tcp-connections: idle SIP TCP connections from 20 addresses, reopened as they are closed.

Printed per scenario: logins and calls that succeeded, and login and call setup times (p50, p99, max),
with /proc/loadavg. Compare scenarios of one run; these machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from peers.sipp import Sipp  # noqa: E402
from peers.web_user import WebUser  # noqa: E402
from peers.webpeer import WebPeer  # noqa: E402
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway  # noqa: E402
from tests.sip.transports.test_fuzz_receive import BASE, mutate  # noqa: E402

Attack = Callable[[str, tuple[str, int], tuple[str, int]], Awaitable[None]]


def percentiles(values: list[float]) -> str:
    if not values:
        return "no samples"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered):7.1f} ms  p99 {p99:7.1f} ms  max {ordered[-1]:7.1f} ms"


async def no_attack(http: str, sip: tuple[str, int], tcp: tuple[str, int]) -> None:
    await asyncio.Event().wait()


async def idle_websockets(http: str, sip: tuple[str, int], tcp: tuple[str, int]) -> None:
    url = http.replace("http://", "ws://") + "/ws"
    held: list[aiohttp.ClientWebSocketResponse] = []
    sessions = [
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(local_addr=(f"127.0.0.{n}", 0), force_close=True)
        )
        for n in range(2, 12)
    ]
    try:
        while True:
            for session in sessions:
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    held.append(await session.ws_connect(url, heartbeat=None))
            await asyncio.sleep(0)
    finally:
        for ws in held:
            await ws.close()
        for session in sessions:
            await session.close()


async def login_guessing(http: str, sip: tuple[str, int], tcp: tuple[str, int]) -> None:
    url = http.replace("http://", "ws://") + "/ws"
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0), force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        n = 0
        while True:
            with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError, TypeError):
                async with session.ws_connect(url) as ws:
                    for _ in range(5):
                        n += 1
                        await ws.send_json({"type": "login", "id": n, "user": "alice", "secret": f"guess{n}"})
                        await ws.receive_json(timeout=5)


async def sip_garbage(http: str, sip: tuple[str, int], tcp: tuple[str, int]) -> None:
    rng = random.Random(7)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind(("127.0.0.2", 0))
    sender.setblocking(False)
    try:
        while True:
            for _ in range(20):  # ~2,000 datagrams per second (the loop's pace), from one host
                with contextlib.suppress(BlockingIOError):
                    sender.sendto(mutate(rng.choice(BASE), rng), sip)
            await asyncio.sleep(0.01)
    finally:
        sender.close()


async def tcp_connections(http: str, sip: tuple[str, int], tcp: tuple[str, int]) -> None:
    writers: list[asyncio.StreamWriter] = []
    try:
        while True:
            for n in range(2, 22):
                with contextlib.suppress(OSError):
                    _, writer = await asyncio.open_connection(*tcp, local_addr=(f"127.0.0.{n}", 0))
                    writers.append(writer)
            await asyncio.sleep(0.05)
    finally:
        for writer in writers:
            writer.close()


ATTACKS: dict[str, Attack] = {
    "none": no_attack,
    "idle-websockets": idle_websockets,
    "login-guessing": login_guessing,
    "tcp-connections": tcp_connections,
    "sip-garbage": sip_garbage,
}


async def legitimate_calls(http: str, count: int) -> tuple[int, int, list[float], list[float]]:
    logins = calls = 0
    login_ms: list[float] = []
    setup_ms: list[float] = []
    for _ in range(count):
        started = time.perf_counter()
        try:
            async with WebUser(http, "alice", ALICE_SECRET) as alice:
                logins += 1
                login_ms.append((time.perf_counter() - started) * 1000)
                peer = WebPeer(1000.0)
                try:
                    offer = await peer.offer()
                    dialled = time.perf_counter()
                    call_id = await alice.call("2000", offer)
                    await alice.wait_for("connected", call_id=call_id, timeout=10)
                    setup_ms.append((time.perf_counter() - dialled) * 1000)
                    calls += 1
                    await alice.request({"type": "hangup", "call_id": call_id})
                    await alice.wait_for("ended", call_id=call_id, timeout=10)
                finally:
                    await peer.close()
        except Exception as exc:  # a failed login or call is a data point, not the end of the bench
            print(f"    failed: {type(exc).__name__}: {str(exc)[-160:]}")
    return logins, calls, login_ms, setup_ms


async def main(count: int) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        pbx = Sipp(Path(workdir), "uas_basic_call", calls=None, rtp_echo=True, auto_answer=True)
        await pbx.start()
        try:
            listen = [
                {"transport": "udp", "host": "127.0.0.1", "port": free_udp()},
                {"transport": "tcp", "host": "127.0.0.1", "port": free_tcp()},
            ]
            config = gateway_config(pbx.address, sip={"listen": listen, "trusted_sources": ["127.0.0.1/32"]})
            async with running_gateway(config) as gateway:
                assert gateway.sip is not None
                sip = gateway.sip_address
                tcp = next(t.local for t in gateway.sip.layer.transports if t.name == "TCP")
                for name, attack in ATTACKS.items():
                    task: asyncio.Future[None] = asyncio.ensure_future(attack(gateway.http_url, sip, tcp))
                    await asyncio.sleep(1.0)  # let the attack build up
                    logins, calls, login_ms, setup_ms = await legitimate_calls(gateway.http_url, count)
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
                    await asyncio.sleep(1.0)
                    load = Path("/proc/loadavg").read_text().split()[:3]
                    print(
                        f"{name:16s} logins {logins}/{count}  calls {calls}/{count}  loadavg {' '.join(load)}"
                    )
                    print(f"{'':16s} login  {percentiles(login_ms)}")
                    print(f"{'':16s} setup  {percentiles(setup_ms)}")
        finally:
            await pbx.stop()


def free_udp() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_tcp() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=10, help="legitimate calls per scenario")
    logging.basicConfig(level=logging.ERROR)  # the attacks' refusals are logged by design: not here
    asyncio.run(main(parser.parse_args().calls))
