"""Legitimate calls while the gateway is attacked (issues 10 and 32): success rate and setup time per attack.

Run: python bench/attack_bench.py [--calls 10] [--only NAME,NAME] [--https] [--per-address 40]
     (needs sipp; about four minutes; --per-address 400 is the issue-32 probe's scale, 19,600 connections)

The gateway runs in this process with sipp's UAS as its PBX. For each scenario a legitimate web user
(aiortc, from 127.0.0.1) logs in, calls 2000 and hangs up, `--calls` times, while the attack runs in a
process of its own (so that its sockets are not counted as the gateway's) from untrusted loopback
addresses (127.0.0.2 and up):

- none: no attack (the reference);
- idle-websockets: never-logged-in WebSockets opened as fast as the gateway accepts them;
- login-guessing: wrong secrets for alice over WebSockets, as fast as they are answered;
- sip-garbage: mutated SIP datagrams (the fuzz of tests/sip/transports/test_fuzz_receive.py), flat out;
- tcp-connections: idle SIP TCP connections from 20 addresses, reopened as they are closed;
- tls-handshakes: TCP connections to the SIP TLS port from 49 addresses that never finish (never start)
  their TLS handshake, reopened as they are closed (issue 32 item 3);
- slowloris: HTTP requests from 49 addresses whose headers never end, one byte every 5 s (item 4);
- spread-guessing: wrong secrets for alice from 10 addresses at once, and one typo from alice's own
  address (item 5: alice's correct login, from an address that is not guessing, must still get in);
- sipws-idle: SIP-over-WebSocket flows (RFC 7118) from 49 addresses that never send SIP (item 6);
- message-flood: SIP MESSAGEs to alice (1001) as fast as the gateway answers them (item 10);
- port-hog: bob places as many calls as the gateway lets him and holds them (item 8);
- https-handshakes (with --https only): TCP connections to the HTTPS/WSS port from 49 addresses that never
  start their TLS handshake (item 3). With --https the gateway serves HTTPS and WSS with a dev CA, the
  legitimate user logs in over WSS, and slowloris speaks TLS first.

Printed per scenario: logins and calls that succeeded, login and call setup times (p50, p99, max), the
gateway process's open file descriptors and RSS at the end of the attack, the ERROR lines and tracebacks
it logged during the scenario, whether /healthz still answered, and whether the issue-32 goal held (every
login and call succeeded, each within 1 s), with /proc/loadavg. Compare scenarios of one run; these
machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import resource
import socket
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.devcert import make_dev_certificates  # noqa: E402
from peers.sipp import Sipp  # noqa: E402
from peers.web_user import WebUser  # noqa: E402
from peers.webpeer import WebPeer  # noqa: E402
from tests.e2e.harness import ALICE_SECRET, BOB_SECRET, gateway_config, running_gateway  # noqa: E402
from tests.sip.transports.test_fuzz_receive import BASE, mutate  # noqa: E402


@dataclass(frozen=True)
class Targets:
    """Where the attacks aim: the HTTP(S) base URL and the SIP UDP, TCP and TLS addresses."""

    http: str
    sip: tuple[str, int]
    tcp: tuple[str, int]
    tls: tuple[str, int]

    def to_args(self) -> list[str]:
        return [self.http, *(f"{host}:{port}" for host, port in (self.sip, self.tcp, self.tls))]

    @classmethod
    def from_args(cls, args: list[str]) -> Targets:
        def address(text: str) -> tuple[str, int]:
            host, port = text.rsplit(":", 1)
            return host, int(port)

        return cls(args[0], address(args[1]), address(args[2]), address(args[3]))


Attack = Callable[[Targets], Awaitable[None]]
FAR = [f"127.0.0.{n}" for n in range(2, 51)]  # 49 attacking addresses


def percentiles(values: list[float]) -> str:
    if not values:
        return "no samples"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered):7.1f} ms  p99 {p99:7.1f} ms  max {ordered[-1]:7.1f} ms"


async def no_attack(to: Targets) -> None:
    await asyncio.Event().wait()


def ws_url(to: Targets, path: str) -> str:
    return to.http.replace("https://", "wss://").replace("http://", "ws://") + path


async def idle_websockets(to: Targets) -> None:
    url = ws_url(to, "/ws")
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
                    held.append(await session.ws_connect(url, heartbeat=None, ssl=False))
            await asyncio.sleep(0)
    finally:
        for ws in held:
            await ws.close()
        for session in sessions:
            await session.close()


async def guess_from(url: str, host: str, pause: float = 0.0) -> None:
    """Wrong secrets for alice from `host`, five per WebSocket, as fast as they are answered."""
    connector = aiohttp.TCPConnector(local_addr=(host, 0), force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        n = 0
        while True:
            with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError, TypeError):
                async with session.ws_connect(url, ssl=False) as ws:
                    for _ in range(5):
                        n += 1
                        await ws.send_json({"type": "login", "id": n, "user": "alice", "secret": f"guess{n}"})
                        await ws.receive_json(timeout=5)
            await asyncio.sleep(pause)


async def login_guessing(to: Targets) -> None:
    await guess_from(ws_url(to, "/ws"), "127.0.0.2")


async def sip_garbage(to: Targets) -> None:
    rng = random.Random(7)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind(("127.0.0.2", 0))
    sender.setblocking(False)
    try:
        while True:
            for _ in range(20):  # ~2,000 datagrams per second (the loop's pace), from one host
                with contextlib.suppress(BlockingIOError):
                    sender.sendto(mutate(rng.choice(BASE), rng), to.sip)
            await asyncio.sleep(0.01)
    finally:
        sender.close()


async def tcp_connections(to: Targets) -> None:
    writers: list[asyncio.StreamWriter] = []
    try:
        while True:
            for n in range(2, 22):
                with contextlib.suppress(OSError):
                    _, writer = await asyncio.open_connection(*to.tcp, local_addr=(f"127.0.0.{n}", 0))
                    writers.append(writer)
            await asyncio.sleep(0.05)
    finally:
        for writer in writers:
            writer.close()


def client_tls() -> ssl.SSLContext:
    """The attacker's TLS: it checks nothing (an attacker does not care whom it exhausts)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def hold_open(
    address: tuple[str, int], first: bytes, trickle: bytes | None, tls: ssl.SSLContext | None = None
) -> None:
    """Keep connections to `address` from every FAR address open, reopening each one the gateway closes;
    send `first` on connect (after a TLS handshake with `tls`) and then `trickle` every 5 s (None: nothing
    more)."""

    async def one(host: str) -> None:
        while True:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(*address, local_addr=(host, 0), ssl=tls), 10
                )
            except (TimeoutError, OSError, ssl.SSLError):
                await asyncio.sleep(0.2)
                continue
            try:
                if first:
                    writer.write(first)
                while not reader.at_eof():
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(reader.read(4096), 5)
                    if trickle is not None:
                        writer.write(trickle)
                        await writer.drain()
            except OSError:
                pass
            finally:
                writer.close()

    async def many(host: str) -> None:
        await asyncio.gather(*(one(host) for _ in range(PER_ADDRESS)))

    await asyncio.gather(*(many(host) for host in FAR))


PER_ADDRESS = 40  # connections each attacking address keeps open: 1,960 in all (--per-address)


async def tls_handshakes(to: Targets) -> None:
    await hold_open(to.tls, b"", None)


def http_address(to: Targets) -> tuple[str, int]:
    host, port = to.http.split("://", 1)[1].rsplit(":", 1)
    return host, int(port)


async def slowloris(to: Targets) -> None:
    host, port = http_address(to)
    start = f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\n".encode()
    await hold_open((host, port), start, b"X", client_tls() if to.http.startswith("https") else None)


async def https_handshakes(to: Targets) -> None:
    await hold_open(http_address(to), b"", None)


async def spread_guessing(to: Targets) -> None:
    url = ws_url(to, "/ws")

    # alice's own address mistyped once (an office NAT: a colleague, or alice herself)
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.1", 0), force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.ws_connect(url, ssl=False) as ws,
    ):
        await ws.send_json({"type": "login", "id": 0, "user": "alice", "secret": "typo"})
        await ws.receive_json(timeout=5)
    await asyncio.gather(*(guess_from(url, host, 0.05) for host in FAR[:10]))


async def sipws_idle(to: Targets) -> None:
    url = ws_url(to, "/sip")

    async def hold(host: str) -> None:
        connector = aiohttp.TCPConnector(local_addr=(host, 0), force_close=True, limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            while True:
                with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
                    async with session.ws_connect(url, protocols=("sip",), heartbeat=None, ssl=False) as ws:
                        async for _ in ws:
                            pass
                await asyncio.sleep(0.2)

    async def many(host: str) -> None:
        await asyncio.gather(*(hold(host) for _ in range(PER_ADDRESS)))

    await asyncio.gather(*(many(host) for host in FAR))


async def message_flood(to: Targets) -> None:
    """SIP MESSAGEs to alice from 127.0.0.1 (a trusted source: the PBX's place) as fast as they are answered."""
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind(("127.0.0.1", 0))
    sender.setblocking(False)
    port = sender.getsockname()[1]
    n = 0
    try:
        while True:
            for _ in range(20):  # ~2,000 a second, the loop's pace
                n += 1
                message = (
                    f"MESSAGE sip:1001@{to.sip[0]} SIP/2.0\r\n"
                    f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKflood{n}\r\n"
                    f"From: <sip:2000@127.0.0.1>;tag=f{n}\r\nTo: <sip:1001@{to.sip[0]}>\r\n"
                    f"Call-ID: flood{n}@127.0.0.1\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\n"
                    "Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nflood"
                )
                with contextlib.suppress(BlockingIOError):
                    sender.sendto(message.encode(), to.sip)
            with contextlib.suppress(BlockingIOError, ConnectionRefusedError):
                while sender.recv(4096):  # the answers: drained, not read
                    pass
            await asyncio.sleep(0.01)
    finally:
        sender.close()


async def port_hog(to: Targets) -> None:
    """bob places calls until the gateway refuses him, holds them, and keeps asking for more."""
    peers: list[WebPeer] = []
    refused = 0
    tls = client_tls() if to.http.startswith("https") else None
    async with WebUser(to.http, "bob", BOB_SECRET, ssl=tls) as bob:
        try:
            while True:
                peer = WebPeer(440.0)
                try:
                    await bob.call("2000", await peer.offer())
                    peers.append(peer)
                    continue
                except Exception as exc:
                    await peer.close()
                    if not refused:
                        print(
                            f"{'':16s} port-hog: bob holds {len(peers)} calls; the next: {exc}"[:200],
                            flush=True,
                        )
                    refused += 1
                await asyncio.sleep(0.5)
        finally:
            for peer in peers:
                await peer.close()


ATTACKS: dict[str, Attack] = {
    "none": no_attack,
    "idle-websockets": idle_websockets,
    "login-guessing": login_guessing,
    "tcp-connections": tcp_connections,
    "sip-garbage": sip_garbage,
    "tls-handshakes": tls_handshakes,
    "slowloris": slowloris,
    "sipws-idle": sipws_idle,
    "message-flood": message_flood,
    "port-hog": port_hog,
    "https-handshakes": https_handshakes,  # --https only
    "spread-guessing": spread_guessing,  # last: a lockout it causes outlasts the run
}


async def legitimate_calls(
    http: str, count: int, tls: ssl.SSLContext | None
) -> tuple[int, int, list[float], list[float]]:
    logins = calls = 0
    login_ms: list[float] = []
    setup_ms: list[float] = []
    for _ in range(count):
        started = time.perf_counter()
        try:
            async with WebUser(http, "alice", ALICE_SECRET, ssl=tls) as alice:
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


def gateway_figures() -> str:
    """This process's (the gateway's) open file descriptors and resident memory."""
    fds = len(list(Path("/proc/self/fd").iterdir()))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    status = Path("/proc/self/status").read_text()
    now = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
    return f"fds {fds}  RSS {int(now) / 1024:.0f} MB (peak {rss:.0f} MB)"


class LogCounter(logging.Handler):
    """Counts what the gateway (this process) logs at ERROR and above, and the tracebacks among them."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.errors = 0
        self.tracebacks = 0
        self.first: str = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.errors += 1
        self.tracebacks += record.exc_info is not None
        if not self.first:
            self.first = f"{record.name}: {record.getMessage()[:160]}"

    def take(self) -> str:
        text = f"errors logged {self.errors}, tracebacks {self.tracebacks}" + (
            f" (first: {self.first})" if self.first else ""
        )
        self.errors = self.tracebacks = 0
        self.first = ""
        return text


async def healthz(http: str, tls: ssl.SSLContext | None) -> str:
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"{http}/healthz", ssl=tls if tls is not None else True, timeout=aiohttp.ClientTimeout(5)
            ) as reply,
        ):
            return f"/healthz {reply.status}"
    except (TimeoutError, aiohttp.ClientError) as exc:
        return f"/healthz FAILED ({type(exc).__name__})"


def goal(count: int, logins: int, calls: int, login_ms: list[float], setup_ms: list[float]) -> str:
    """Issue 32's goal: every legitimate login and call succeeds, each within 1 s."""
    slow = [ms for ms in [*login_ms, *setup_ms] if ms > 1000]
    held = logins == count and calls == count and not slow
    return "goal held" if held else f"GOAL MISSED ({len(slow)} over 1 s)"


async def main(count: int, only: list[str], https: bool) -> None:
    counter = LogCounter()
    logging.getLogger().addHandler(counter)
    with tempfile.TemporaryDirectory() as workdir:
        certificates = make_dev_certificates(Path(workdir) / "pki", ["127.0.0.1"])
        pbx = Sipp(Path(workdir), "uas_basic_call", calls=None, rtp_echo=True, auto_answer=True, timeout=3600)
        await pbx.start()
        try:
            listen = [
                {"transport": "udp", "host": "127.0.0.1", "port": free_udp()},
                {"transport": "tcp", "host": "127.0.0.1", "port": free_tcp()},
                {"transport": "tls", "host": "127.0.0.1", "port": free_tcp()},
            ]
            tls = {"certificate": str(certificates.certificate), "private_key": str(certificates.private_key)}
            sip = {"listen": listen, "trusted_sources": ["127.0.0.1/32"], "tls": tls, "websocket": {}}
            sections: dict[str, Any] = {"sip": sip}
            trust: ssl.SSLContext | None = None
            if https:  # HTTPS and WSS on http.port, as a deployment beyond loopback serves them
                sections["http"] = {"host": "127.0.0.1", "port": free_tcp(), "tls": dict(tls)}
                trust = ssl.create_default_context(cafile=str(certificates.ca))
            config = gateway_config(pbx.address, **sections)
            async with running_gateway(config) as gateway:
                assert gateway.sip is not None
                transports = {t.name: t.local for t in gateway.sip.layer.transports}
                base = gateway.http_url.replace("http://", "https://") if https else gateway.http_url
                to = Targets(base, gateway.sip_address, transports["TCP"], transports["TLS"])
                print(f"before any attack: {gateway_figures()}  ({'HTTPS/WSS' if https else 'HTTP/WS'})")
                counter.take()
                for name in ATTACKS:
                    if (only and name not in only) or (name == "https-handshakes" and not https):
                        continue
                    attacker = await asyncio.create_subprocess_exec(
                        sys.executable,
                        __file__,
                        "--attack",
                        name,
                        "--per-address",
                        str(PER_ADDRESS),
                        *to.to_args(),
                    )
                    await asyncio.sleep(5.0 if name != "none" else 1.0)  # let the attack build up
                    logins, calls, login_ms, setup_ms = await legitimate_calls(base, count, trust)
                    figures = gateway_figures()
                    health = await healthz(base, trust)
                    attacker.terminate()
                    await attacker.wait()
                    await asyncio.sleep(2.0)
                    load = Path("/proc/loadavg").read_text().split()[:3]
                    print(
                        f"{name:16s} logins {logins}/{count}  calls {calls}/{count}  loadavg {' '.join(load)}"
                        f"  {goal(count, logins, calls, login_ms, setup_ms)}"
                    )
                    print(f"{'':16s} login  {percentiles(login_ms)}")
                    print(f"{'':16s} setup  {percentiles(setup_ms)}")
                    print(f"{'':16s} during the attack: {figures}; {health}")
                    print(f"{'':16s} {counter.take()}")
        finally:
            await pbx.stop()


async def attack_alone(name: str, to: Targets) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    await ATTACKS[name](to)


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
    parser.add_argument("--only", default="", help="comma-separated scenarios (default: all)")
    parser.add_argument("--https", action="store_true", help="serve HTTPS/WSS and add https-handshakes")
    parser.add_argument(
        "--per-address", type=int, default=PER_ADDRESS, help="connections each of the 49 addresses holds"
    )
    parser.add_argument("--attack", help=argparse.SUPPRESS)  # the attacker process: NAME HTTP SIP TCP TLS
    parser.add_argument("targets", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    PER_ADDRESS = args.per_address
    logging.basicConfig(level=logging.ERROR)  # the attacks' refusals are logged by design: not here
    if args.attack:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(attack_alone(args.attack, Targets.from_args(args.targets)))
    else:
        asyncio.run(main(args.calls, [name for name in args.only.split(",") if name], args.https))
