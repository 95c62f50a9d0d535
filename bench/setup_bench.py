"""Benchmark of call setup: offer -> answer, and offer -> ICE+DTLS connected, on both web dialects.

Run: python bench/setup_bench.py [--rates 1,10] [--seconds 10] [--hold 1] [--dialects http,ws,ws-early] [--capacity]
     [--profile] [--phases] [--port-base 40000] [--in-process] [--log-level INFO]
     (needs sipp; about a minute per dialect and rate)

The gateway runs as users run it: ``python -m gateway run -c gateway.yaml`` (the shipped file, logging at
its INFO to a file as a service's does; GATEWAY_* variables override only the ports, the PBX address, the
state directory and the per-user limits, since one user's calls are the load) in a process of its own, with
sipp's UAS (peers/scenarios/uas_basic_call.xml, -rtp_echo) as its PBX; the web users are aiortc peers in a
third process (their own costs are not the gateway's). The HTTP dialect's requests carry alice's session
token (``Authorization: Bearer``, from a WebSocket login, as a web app's page does). ``--in-process`` runs
the gateway inside this process instead (the end-to-end tests' config, an API key, logging at WARNING
unless ``--log-level``): the figures before issue 38. At each rate (calls per second) calls are started for
`--seconds`, each held `--hold` seconds, then closed.

- http: `POST /webrtc/offer` (docs/signaling.md, the HTTP offer API) -> its response carrying the answer
  (the gateway answers as soon as its WebRTC answer exists, before the far end answers);
- ws: the WebSocket protocol's `call` request sent -> the `connected` event carrying the answer (after
  the far end's 200 OK: the SIP round trip to sipp is inside this figure);
- ws-early: the same with `early_answer: true`: `call` sent -> the `answer` event (sent as soon as the
  gateway's answer exists, before the INVITE, as the HTTP API's response).

Printed per dialect and rate: offer -> answer p50/p99/max, offer -> connected (the client's
RTCPeerConnection reports `connected`: ICE and DTLS done) p50/p99, failures, the gateway's CPU seconds
per call, and /proc/loadavg. ``--profile`` runs cProfile in the gateway (CPU time of every thread) and
prints where setup time goes; ``--phases``: bench/setup_phases.py (with the CLI, the gateway's process is
started through ``setup_phases.py --run``, which wraps the same functions and writes its marks on exit).
``--capacity``: the setups per second one core sustains: the gateway pinned to CPU 0, the clients on the
others, open-loop HTTP offers (made before the run, each with ICE credentials of its own) at 2, 5, 10,
20... calls/s for ``--seconds`` each, every call closed at its answer (its media never connects); the
highest rate whose offer -> answer p99 stays under 50 ms with no failure, the ramp stopping at two misses
in a row. With Janus installed (as root) bench/vs_janus.py does the same for Janus's `call` -> `accepted`.
Targets (issue 38): offer -> answer p50 at most Janus's (about 6 ms here; bench/vs_janus.py prints both) and
p99 <= 15 ms at 1 and 10 calls/s; offer -> connected p50 at most Janus's.

These machines are shared and noisy: compare the figures of one run, not across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import pstats
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from peers.demo import ALICE_SECRET
from peers.ports import free_port
from peers.sipp import SCENARIOS

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.e2e.harness: the gateway config of the end-to-end tests
SCENARIO = SCENARIOS / "uas_basic_call.xml"
API_KEY = "setup-bench-key-0123456789"
SESSIONS = 4  # WebSocket sessions of alice the calls are spread over
TARGET_P50, TARGET_P99 = 6.0, 15.0


def port_span(args: argparse.Namespace) -> int:
    """The gateway's RTP ports from --port-base: 1000, or 8000 for --capacity (200 setups/s, each
    call's ports in a 2 s quarantine after it)."""
    return 8000 if getattr(args, "capacity", False) else 1000


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def quantiles(values: list[float]) -> tuple[float, float, float]:
    if not values:
        return float("nan"), float("nan"), float("nan")
    ordered = sorted(values)
    return (
        statistics.median(ordered),
        ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        ordered[-1],
    )


# --- the client process: aiortc web users ------------------------------------------------------------


async def paced(delay: float, call: Coroutine[Any, Any, None]) -> None:
    """Start ``call`` ``delay`` seconds from now (a call rate, calls overlapping)."""
    await asyncio.sleep(delay)
    await call


class _Timed:
    """One aiortc peer, and when its connection state became `connected` (perf_counter)."""

    def __init__(self) -> None:
        from peers.webpeer import WebPeer

        self.peer = WebPeer(1000, codecs=("PCMU",), raw=True)
        self.connected_at: float | None = None
        self.done = asyncio.Event()
        self.peer.pc.on("connectionstatechange", self._changed)

    def _changed(self) -> None:
        state = self.peer.pc.connectionState
        if state == "connected" and self.connected_at is None:
            self.connected_at = time.perf_counter()
        if state in ("connected", "failed", "closed"):
            self.done.set()


async def client_main(
    dialect: str, url: str, rate: float, seconds: float, hold: float, api_key: str
) -> dict[str, Any]:
    import aiohttp

    from peers.web_user import WebUser

    answers: list[float] = []
    connects: list[float] = []
    failures: list[str] = []
    http = aiohttp.ClientSession()
    # http: one WebSocket login for alice's session token (the page of a web app), unless an API key
    sessions = SESSIONS if dialect in ("ws", "ws-early") else (0 if api_key else 1)
    users = [WebUser(url, "alice", ALICE_SECRET) for _ in range(sessions)]
    for user in users:
        await user.__aenter__()
    credentials = {"X-API-Key": api_key} if api_key else {"Authorization": f"Bearer {users[0].token}"}

    async def http_call(offer: str) -> tuple[str, Any]:
        body = {"sdp": {"type": "offer", "sdp": offer}, "metadata": {"dial": "2000"}}
        async with http.post(f"{url}/webrtc/offer", json=body, headers=credentials) as response:
            data = await response.json()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status} {data}")
        return data["sdp"]["sdp"], data["session_id"]

    async def ws_call(number: int, offer: str) -> tuple[str, Any]:
        user = users[number % len(users)]
        early = dialect == "ws-early"  # the `answer` event (early_answer) instead of `connected`'s SDP
        call_id = await user.call("2000", offer, early_answer=early)
        event = await user.wait_for(
            ("answer" if early else "connected", "ended"), timeout=20, call_id=call_id
        )
        if event["type"] == "ended":
            raise RuntimeError(f"ended {event['reason']} {event.get('sip_status')}")
        return event["sdp"], (user, call_id)

    async def one_call(number: int) -> None:
        timed = _Timed()
        handle: Any = None
        try:
            offer = await timed.peer.offer()
            start = time.perf_counter()
            if dialect == "http":
                answer, handle = await http_call(offer)
            else:
                answer, handle = await ws_call(number, offer)
            answers.append(1000 * (time.perf_counter() - start))
            await timed.peer.accept(answer)
            await asyncio.wait_for(timed.done.wait(), 20)
            if timed.connected_at is None:
                failures.append(f"web leg {timed.peer.pc.connectionState}")
                return
            connects.append(1000 * (timed.connected_at - start))
            await asyncio.sleep(hold)
        except Exception as exc:  # a failed call is a figure, not the end of the run
            failures.append(f"{type(exc).__name__} {exc}"[:120])
        finally:
            try:
                if dialect == "http" and handle is not None:
                    close = {"session_id": handle, "reason": "bench"}
                    async with http.post(f"{url}/webrtc/close", json=close, headers=credentials):
                        pass
                elif handle is not None:
                    user, call_id = handle
                    await user.request({"type": "hangup", "call_id": call_id})
            except Exception as exc:
                failures.append(f"close: {type(exc).__name__}")
            await timed.peer.close()

    count = max(1, round(rate * seconds))
    await asyncio.gather(*[paced(number / rate, one_call(number)) for number in range(count)])
    for user in users:
        await user.close()
    await http.close()
    return {"answers": answers, "connects": connects, "failures": failures, "calls": count}


# --- capacity: the setups per second one core sustains -------------------------------------------------

CAPACITY_RATES = (2.0, 5.0, 10.0, 20.0, 30.0, 40.0, 60.0, 80.0, 100.0, 130.0, 160.0, 200.0)
CAPACITY_P99 = 50.0  # ms: the highest rate whose offer -> answer p99 stays under it is the capacity
GATEWAY_CPU = 0  # the CPU the gateway (or Janus) is pinned to; the clients take the others


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of ``pid`` on ``cpus`` (threads it starts later inherit it)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(task.name), cpus)


def client_cpus() -> set[int]:
    return (os.sched_getaffinity(0) - {GATEWAY_CPU}) or {GATEWAY_CPU}


async def offers(count: int, host: str | None = None) -> list[str]:
    """``count`` aiortc offers (PCMU), made before the timed calls: the clients' cost is not a setup's."""
    from peers.webpeer import WebPeer

    made = []
    for _ in range(count):
        peer = WebPeer(1000, codecs=("PCMU",), raw=True)
        if host is not None:  # Janus's namespace: gather on the veth end only
            from gateway.media.webrtc import aiortc_hooks

            aiortc_hooks.restrict_host_addresses(peer.pc, [host])
        made.append(await peer.offer())
        await peer.close()
    return made


def fresh(offer: str, number: int) -> str:
    """``offer`` with ICE credentials of its own (each call's ICE agent is a new one)."""
    lines = [
        f"a=ice-ufrag:c{number:07d}" if line.startswith("a=ice-ufrag:") else line
        for line in offer.split("\r\n")
    ]
    return "\r\n".join(lines)


async def capacity_client(url: str, rate: float, seconds: float) -> dict[str, Any]:
    """Open-loop HTTP offers at ``rate`` for ``seconds``: each call's offer -> answer, then closed at once
    (its media never connects: the setup is what is measured, not the clients' ICE and DTLS)."""
    import aiohttp

    from peers.web_user import WebUser

    os.sched_setaffinity(0, client_cpus())
    answers: list[float] = []
    failures: list[str] = []
    made = await offers(8)
    async with WebUser(url, "alice", ALICE_SECRET) as user, aiohttp.ClientSession() as http:
        credentials = {"Authorization": f"Bearer {user.token}"}

        async def one_call(number: int) -> None:
            body = {"sdp": {"type": "offer", "sdp": fresh(made[number % len(made)], number)}}
            body["metadata"] = {"dial": "2000"}
            start = time.perf_counter()
            try:
                async with http.post(f"{url}/webrtc/offer", json=body, headers=credentials) as response:
                    data = await response.json()
                answers.append(1000 * (time.perf_counter() - start))
                if response.status != 200:
                    failures.append(f"HTTP {response.status} {data}"[:120])
                    return
                close = {"session_id": data["session_id"], "reason": "bench"}
                async with http.post(f"{url}/webrtc/close", json=close, headers=credentials):
                    pass
            except Exception as exc:
                failures.append(f"{type(exc).__name__} {exc}"[:120])

        count = max(1, round(rate * seconds))
        await asyncio.gather(*[paced(number / rate, one_call(number)) for number in range(count)])
    return {"answers": answers, "failures": failures, "calls": count}


def capacity_verdict(p99: float, failures: int) -> bool:
    return p99 < CAPACITY_P99 and failures == 0


def missed_twice(results: list[dict[str, Any]]) -> bool:
    """The last two rates both missed (one miss alone may be another process's burst on a shared
    core: at 10 setups/s for 5 s, p99 is the slowest of 50)."""
    return len(results) >= 2 and not any(
        capacity_verdict(quantiles(r["answers"])[1], len(r["failures"])) for r in results[-2:]
    )


async def capacity(gateway: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The rates of ``CAPACITY_RATES`` (or ``--rates``) in turn, the gateway pinned to one CPU, until two
    in a row miss (offer -> answer p99 over 50 ms, or a failure)."""
    pin(gateway.pid, {GATEWAY_CPU})
    results = []
    for rate in args.rates:
        cpu = gateway.cpu()
        process = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--capacity-client", gateway.url, str(rate), str(args.seconds),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await process.communicate()
        cpu = gateway.cpu() - cpu
        result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        result.update(dialect="http", rate=rate, cpu_per_call=cpu / max(1, result["calls"]), load=loadavg())
        results.append(result)
        report_capacity("ours", results[-1:], summary=False)
        await asyncio.sleep(3.0)  # the calls' ports out of quarantine, the far end's dialogs ended
        if missed_twice(results):
            break
    return results


def report_capacity(box: str, results: list[dict[str, Any]], *, summary: bool = True) -> None:
    for r in results:
        a50, a99, amax = quantiles(r["answers"])
        verdict = "ok" if capacity_verdict(a99, len(r["failures"])) else "MISSED"
        print(
            f"{box:6} one core {r['rate']:6g} setups/s  n {r['calls']:5d}  fail {len(r['failures']):4d}"
            f"  offer->answer p50 / p99 / max {a50:8.2f} / {a99:8.2f} / {amax:8.2f} ms {verdict:6}"
            f"  CPU s per 100 setups {100 * r['cpu_per_call']:.3f}  loadavg {r['load']}"
        )
        if r["failures"]:
            print(f"        failures: {r['failures'][:3]}")
    passed = [r["rate"] for r in results if capacity_verdict(quantiles(r["answers"])[1], len(r["failures"]))]
    if summary:
        print(
            f"{box}: sustained {max(passed, default=0):g} setups/s on one core (p99 < {CAPACITY_P99:g} ms;"
            " the highest rate that passed, the ramp stopping at two misses in a row)"
        )


# --- the gateway process -------------------------------------------------------------------------------


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


def _process_cpu(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_case(
    dialect: str, gateway: Any, rate: float, args: argparse.Namespace, profiler: cProfile.Profile | None
) -> dict[str, Any]:
    cpu = gateway.cpu()
    if profiler is not None and not args.phases:
        profiler.enable()
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--client", dialect, gateway.url, str(rate), str(args.seconds),
        str(args.hold), gateway.api_key, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await process.communicate()
    if profiler is not None and not args.phases:
        profiler.disable()
    cpu = gateway.cpu() - cpu
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    result.update(dialect=dialect, rate=rate, cpu_per_call=cpu / max(1, result["calls"]), load=loadavg())
    await asyncio.sleep(0.5)  # the last calls end
    return result


class InProcess:
    """The gateway in this process: the end-to-end tests' config with an API key (the figures before 38)."""

    api_key = API_KEY

    def __init__(self, far_end: Any, args: argparse.Namespace, tmp: Path) -> None:
        from tests.e2e.harness import gateway_config, running_gateway

        config = gateway_config(
            far_end.address,
            alice_extra={"api_keys": [{"key": API_KEY, "name": "bench"}]},
            media={"rtp_ports": {"start": args.port_base, "end": args.port_base + 998}},
            ice={"host_addresses": ["127.0.0.1"] if args.host_addresses is None else args.host_addresses},
            logging={"level": args.log_level or "WARNING"},
            limits={
                "calls_per_user": 10000,
                "unanswered_per_user": 10000,
                "port_share": 1.0,
            },  # one user's calls are the load
        )
        if (args.log_level or "WARNING").upper() != "WARNING":  # as the CLI sets it up (gateway/logs.py)
            from gateway.logs import configure_logging

            # open until the process ends: the gateway logs to it up to its last line
            configure_logging(args.log_level, "text", stream=open(tmp / "gateway.log", "w"))  # noqa: SIM115
            print(
                f"the gateway logs at {args.log_level.upper()} to a file (as a service does, not a terminal)"
            )
        self._running = running_gateway(config)
        self.url = ""

    async def __aenter__(self) -> InProcess:
        gateway = await self._running.__aenter__()
        self.url = gateway.http_url
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._running.__aexit__(*exc)

    def cpu(self) -> float:
        return _cpu()

    @property
    def pid(self) -> int:
        return os.getpid()


class Cli:
    """``python -m gateway run -c gateway.yaml`` (the shipped file) in its own process; with ``--phases``
    through ``setup_phases.py --run``, which writes its marks to a file when the gateway stops."""

    api_key = ""  # the HTTP dialect logs alice in for her session token

    def __init__(self, far_end: Any, args: argparse.Namespace, tmp: Path) -> None:
        http, sip = free_port(), free_port(socket.SOCK_DGRAM)
        self.url = f"http://127.0.0.1:{http}"
        self.tmp = tmp
        self.phases = tmp / "phases.json" if args.phases else None
        self.env = {
            **os.environ,
            "GATEWAY_SIP__LISTEN__0__PORT": str(sip),
            "GATEWAY_SIP__LISTEN__1__PORT": str(sip),
            "GATEWAY_HTTP__PORT": str(http),
            "GATEWAY_PBX__ADDRESS": far_end.address,
            "GATEWAY_MEDIA__RTP_PORTS__START": str(args.port_base),
            "GATEWAY_MEDIA__RTP_PORTS__END": str(args.port_base + port_span(args) - 2),
            "GATEWAY_STATE_DIR": str(tmp / "state"),
            # one user's calls are the load: her per-user limits (8 calls, 4 unanswered) lifted
            "GATEWAY_LIMITS__CALLS_PER_USER": "10000",
            "GATEWAY_LIMITS__UNANSWERED_PER_USER": "10000",
            "GATEWAY_LIMITS__PORT_SHARE": "1.0",
        }
        if args.log_level:
            self.env["GATEWAY_LOGGING__LEVEL"] = args.log_level
        if args.host_addresses is not None:
            self.env["GATEWAY_ICE__HOST_ADDRESSES"] = json.dumps(args.host_addresses)
        if self.phases is not None:
            self.env["SETUP_PHASES_OUT"] = str(self.phases)
            if args.profile:
                self.env["SETUP_PHASES_PROFILE"] = args.profile_out or str(tmp / "profile.pstats")
        self.process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Cli:
        import gateway_process

        runner = [str(ROOT / "bench" / "setup_phases.py"), "--run"] if self.phases else ["-m", "gateway"]
        self.process = await gateway_process.start(self.tmp, self.env, self.tmp / "gateway.log", runner)
        level = self.env.get("GATEWAY_LOGGING__LEVEL", "INFO (gateway.yaml)")
        print(
            f"the gateway: python -m gateway run -c gateway.yaml, pid {self.process.pid}, logging {level} to a file"
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        import gateway_process

        await gateway_process.stop(self.process)

    def cpu(self) -> float:
        return _process_cpu(self.pid)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid


def report(results: list[dict[str, Any]]) -> None:
    print(
        f"\n{'dialect':8} {'calls/s':>7} {'n':>4} {'fail':>4}  {'offer->answer p50 / p99 / max ms':>33}"
        f"  {'offer->connected p50 / p99 ms':>30}  {'CPU s/call':>10}  loadavg"
    )
    for r in results:
        a50, a99, amax = quantiles(r["answers"])
        c50, c99, _ = quantiles(r["connects"])
        verdict = "ok" if a50 <= TARGET_P50 and a99 <= TARGET_P99 else "MISSED"
        print(
            f"{r['dialect']:8} {r['rate']:7g} {r['calls']:4d} {len(r['failures']):4d}  "
            f"{a50:9.2f} / {a99:8.2f} / {amax:8.2f} {verdict:6}  {c50:12.2f} / {c99:12.2f}  "
            f"{r['cpu_per_call']:10.4f}  {r['load']}"
        )
        if r["failures"]:
            print(f"        failures: {r['failures'][:5]}")
    print(
        f"targets: offer->answer p50 <= {TARGET_P50:g} ms (Janus's here), p99 <= {TARGET_P99:g} ms (issue 38 item 1)"
    )


async def bench(args: argparse.Namespace) -> int:
    import logging

    from peers.sipp import Sipp

    if shutil.which("sipp") is None:
        print("sipp is not installed (apt-get install sip-tester); nothing to measure")
        return 1
    logging.basicConfig(level=logging.WARNING)
    in_process = args.in_process
    profiler = cProfile.Profile(time.process_time) if args.profile and in_process else None
    if args.phases and in_process:
        import setup_phases

        setup_phases.install(profiler)  # with --profile: the requests' critical path only
    if args.profile and not in_process and not args.phases:
        print("--profile with the CLI needs --phases (the profile covers the requests' critical path)")
        return 2
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="setup-bench-") as tmp:
        far_end = Sipp(
            Path(tmp), SCENARIO, calls=None, media_port=args.port_base + 1000 + 2 * (free_port() % 400),
            rtp_echo=True, auto_answer=True, timeout=3600,
        ) if not args.capacity else Sipp(
            Path(tmp), SCENARIO, calls=None, media_port=args.port_base + port_span(args),
            rtp_echo=False, auto_answer=True, timeout=3600,
        )  # fmt: skip
        async with far_end:
            box = (InProcess if in_process else Cli)(far_end, args, Path(tmp))
            async with box as gateway:
                print(
                    f"gateway {gateway.url}, far end sipp UAS (-rtp_echo) on {far_end.address}; loadavg {loadavg()}"
                )
                if args.capacity:
                    results = await capacity(gateway, args)
                for rate in args.rates if not args.capacity else ():
                    for dialect in args.dialects:
                        results.append(await run_case(dialect, gateway, rate, args, profiler))
                        report(results[-1:])
        if args.capacity:
            print()
            report_capacity("ours", results)
        else:
            report(results)
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(results))
        if args.keep_log and (Path(tmp) / "gateway.log").exists():
            shutil.copy(Path(tmp) / "gateway.log", args.keep_log)
        if args.phases:
            import setup_phases

            if not in_process:
                setup_phases.load(Path(tmp) / "phases.json")
                if args.profile:
                    saved = args.profile_out or str(Path(tmp) / "profile.pstats")
                    pstats.Stats(saved).sort_stats("cumulative").print_stats(45)
            setup_phases.report()
    if profiler is not None:
        out = io.StringIO()
        if args.profile_out:
            profiler.dump_stats(args.profile_out)
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("cumulative").print_stats(45)
        stats.sort_stats("tottime").print_stats(25)
        print(out.getvalue())
    return 0


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--capacity-client":
        url, rate, seconds = sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
        print(json.dumps(asyncio.run(capacity_client(url, rate, seconds))))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        dialect, url = sys.argv[2], sys.argv[3]
        rate, seconds, hold = float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
        api_key = sys.argv[7] if len(sys.argv) > 7 else ""
        print(json.dumps(asyncio.run(client_main(dialect, url, rate, seconds, hold, api_key))))
        return 0
    if (
        "--no-janus" not in sys.argv
        and shutil.which("janus") is not None
        and os.geteuid() == 0
        and not {"--in-process", "--profile", "--phases", "-h", "--help"} & set(sys.argv)
    ):
        # Janus installed: bench/vs_janus.py measures it, then runs this script for ours in the same
        # namespace, and prints both side by side
        keep: list[str] = []  # vs_janus.py's own (Janus's rounds too)
        forward: list[str] = []  # this script's, for ours
        args_iter = iter(sys.argv[1:])
        for arg in args_iter:
            if arg == "--capacity":  # Janus's too
                keep.append(arg)
            elif arg in ("--rates", "--seconds"):
                keep += [arg, next(args_iter, "")]
            elif arg.startswith(("--rates=", "--seconds=")):
                keep.append(arg)
            else:
                forward.append(arg)
        print(
            "Janus is installed: bench/vs_janus.py measures it and ours side by side (--no-janus: ours alone)"
        )
        command = [
            sys.executable,
            str(ROOT / "bench" / "vs_janus.py"),
            *keep,
            f"--ours-args={' '.join(forward)}",
        ]
        return subprocess.run(command, check=False).returncode
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="1,10", type=lambda s: [float(x) for x in s.split(",")])
    parser.add_argument("--dialects", default="http,ws,ws-early", type=lambda s: s.split(","))
    parser.add_argument("--seconds", type=float, default=10.0, help="how long calls are started at each rate")
    parser.add_argument("--hold", type=float, default=1.0, help="how long each call lasts once connected")
    parser.add_argument(
        "--host-addresses",
        default=None,
        type=lambda s: [a for a in s.split(",") if a],
        help="ice.host_addresses of the gateway ('' : every interface; default: gateway.yaml's with the CLI, "
        "127.0.0.1 in process)",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run the gateway in this process (the tests' config, WARNING) instead of the CLI",
    )
    parser.add_argument(
        "--port-base",
        type=int,
        default=int(os.environ.get("SETUP_BENCH_PORT_BASE", "40000")),
        help="the gateway's RTP ports from here (1000), sipp's media above them (env SETUP_BENCH_PORT_BASE)",
    )
    parser.add_argument(
        "--log-level",
        default="",
        help="the gateway's logging.level (default: gateway.yaml's INFO; in process WARNING)",
    )
    parser.add_argument(
        "--capacity",
        action="store_true",
        help="the setups per second one core sustains: the gateway pinned to CPU 0, open-loop HTTP offers "
        f"at each rate (default {','.join(f'{r:g}' for r in CAPACITY_RATES)}) until offer -> answer p99 "
        f"reaches {CAPACITY_P99:g} ms; each call closed at its answer",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the gateway (CPU time)")
    parser.add_argument(
        "--phases", action="store_true", help="per-phase timestamps of HTTP offers (bench/setup_phases.py)"
    )
    parser.add_argument("--no-janus", action="store_true", help="ours alone, even with Janus installed")
    parser.add_argument("--json-out", help="also write the results to this file (JSON)")
    parser.add_argument("--keep-log", help="copy the gateway's log here at the end")
    parser.add_argument("--profile-out", help="also write the profile's stats to this file (pstats)")
    args = parser.parse_args()
    if args.capacity and "--rates" not in " ".join(sys.argv):
        args.rates = list(CAPACITY_RATES)
    return asyncio.run(bench(args))


if __name__ == "__main__":
    sys.exit(main())
