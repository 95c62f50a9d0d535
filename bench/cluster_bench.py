"""Benchmark of a gateway cluster (issue 18): call setup through Kamailio for 1 and 3 instances, the time the
edge and the Redis lookups add, and the failover times of a kill -9.

Run: python bench/cluster_bench.py [--rate 2] [--calls 40] [--hold 1] [--ring-rate 5] [--ring-calls 60]
     [--no-failover] [--ka-interval 30]          (needs sipp, kamailio, redis-server, haproxy; ~3 minutes)

Everything runs on loopback: Redis, the gateway instances as processes (tests/e2e/cluster/cluster_procs.py, on
127.0.0.2-4), Kamailio with the shipped deploy/kamailio-cluster.cfg, HAProxy with deploy/haproxy.cfg.
The callers are sipp UACs; the called web user alice is a set of aiortc sessions logged in on the first
instance, run in a separate process (this script with `--answerer`), so that their cost is not the
gateways'. Times come from sipp's message trace (microsecond timestamps of the INVITE sent and the 180
and 200 received, per Call-ID).

1. setup: sipp places `--calls` calls at `--rate` calls/s (each held `--hold` s) through Kamailio to
   alice, with 1 instance and with 3 (where Kamailio's round robin hands two INVITEs in three to an
   instance that does not hold her: a Redis lookup and a 302 that Kamailio follows). Printed: calls
   answered, the setup rate achieved, INVITE -> 180 and INVITE -> 200 (answered by aiortc: ICE and DTLS
   inside) p50/p99, and CPU seconds per call of the gateways and of the answerers.
2. ring: INVITE -> 180 (no media: alice's sessions ring, sipp CANCELs) at `--ring-rate`, three ways:
   sipp straight to the instance holding alice (`direct`), through Kamailio to that instance (`edge`:
   Kamailio plus the gateway's Redis lookup of other owners), and through Kamailio to the two others
   only (`redirect`: Kamailio, a Redis lookup, 302, Kamailio again). The added setup time is the p50 of
   `redirect` (and `edge`) minus the p50 of `direct`; target < 3 ms.
3. failover (behaviour 2 of issue 18): alice logged in through HAProxy and in a call from sipp through
   Kamailio; kill -9 of the instance holding her. Measured from the kill: a new login through HAProxy
   succeeds (`relogin`), a call through Kamailio rings her again (`rung`), her PBX registration is held
   by a live instance and REGISTERed at the registrar (`registration`; the registrar is a second
   Kamailio), and the call on the dead instance ends at sipp with a BYE from Kamailio's dialog
   keepalive (`far end BYE`, bounded by KA_INTERVAL + 12 s).

These machines are shared and noisy: compare the figures of one run; /proc/loadavg is printed with them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.e2e.cluster.cluster_procs: instances as processes

from peers.demo import ALICE_SECRET  # noqa: E402
from peers.haproxy import running_haproxy  # noqa: E402
from peers.kamailio import running_kamailio  # noqa: E402
from peers.kamailio_edge import running_edge  # noqa: E402
from peers.redis import running_redis  # noqa: E402
from peers.sipp import Sipp, SippResult  # noqa: E402
from tests.e2e.cluster.cluster_procs import GatewayProcess, instance_mapping, process_cluster  # noqa: E402

RTP_BASE = 42000  # instance i: 42000 + 600 * i, 200 ports
SESSIONS = 3  # alice's sessions answering in the answerer process
TARGET_ADDED_MS = 3.0
ALICE_PBX = ("1001", "pw1001")
_STAMP = re.compile(r"^-{10,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)$")


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def p50_p99(values: Sequence[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its reaped children (/proc/PID/stat), 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


# --- sipp's message trace: per Call-ID, when the INVITE went and the 180/200 came -------------------


@dataclass
class CallTimes:
    invite: float
    ringing: float | None = None
    answered: float | None = None
    bye_received: float | None = None


def call_times(messages: str) -> dict[str, CallTimes]:
    """Parse sipp's -trace_msg log: a dashed line with a timestamp, then "UDP message sent/received",
    then the message."""
    found: dict[str, CallTimes] = {}
    for block in re.split(r"\n(?=-{10,} \d{4}-)", messages):
        lines = block.strip("\n").splitlines()
        if len(lines) < 4 or not (stamp := _STAMP.match(lines[0])):
            continue
        at = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
        sent = "sent" in lines[1]
        start = next((line.strip() for line in lines[2:] if line.strip()), "")
        call_id = next((ln.split(":", 1)[1].strip() for ln in lines if ln.lower().startswith("call-id:")), "")
        if not call_id:
            continue
        times = found.get(call_id)
        if sent and start.startswith("INVITE ") and times is None:
            found[call_id] = CallTimes(at)
        elif times is None:
            continue
        elif not sent and start.startswith("SIP/2.0 180") and times.ringing is None:
            times.ringing = at
        elif not sent and start.startswith("SIP/2.0 200") and "INVITE" in block and times.answered is None:
            if re.search(r"^CSeq:\s*\d+ INVITE", block, re.M | re.I):
                times.answered = at
        elif not sent and start.startswith("BYE ") and times.bye_received is None:
            times.bye_received = at
    return found


def ring_ms(times: dict[str, CallTimes]) -> list[float]:
    return [1000 * (t.ringing - t.invite) for t in times.values() if t.ringing is not None]


def answer_ms(times: dict[str, CallTimes]) -> list[float]:
    return [1000 * (t.answered - t.invite) for t in times.values() if t.answered is not None]


# --- the answerer process: alice's aiortc sessions -----------------------------------------------------


async def answerer_main(url: str, sessions: int, answer: bool) -> None:
    """Log alice in `sessions` times at `url`; answer every call (aiortc) unless `answer` is False; print
    "ready", run until stdin closes, then print the count answered as JSON."""
    from tests.e2e.cluster.test_cluster_rolling_restart import Answerers

    @dataclass
    class Target:
        http_url: str

    group = Answerers(Target(url), set())  # type: ignore[arg-type]
    if answer:
        await group.open()
    else:
        from peers.web_user import WebUser

        for _ in range(sessions):
            user = WebUser(url, "alice", ALICE_SECRET)
            await user.__aenter__()
            group.users.append(user)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    print(json.dumps({"answered": group.answered}), flush=True)
    await group.close()


@contextlib.asynccontextmanager
async def answerer(url: str, *, answer: bool = True) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--answerer", url, *(() if answer else ("--ring-only",)),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    assert process.stdout is not None and process.stdin is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        if line.strip() != b"ready":
            raise RuntimeError(f"the answerer did not start: {line!r}")
        yield process
    finally:
        if process.returncode is None:
            process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


# --- the phases ----------------------------------------------------------------------------------------


def mappings(redis_url: str, count: int, pbx: str | None = None) -> list[dict[str, Any]]:
    maps = [instance_mapping(i, redis_url, rtp_base=RTP_BASE, pbx=pbx) for i in range(count)]
    for mapping in maps:  # one user's calls are the load (limits: issue 32)
        mapping["limits"] = {"calls_per_user": 10000, "unanswered_per_user": 10000, "port_share": 1.0}
    return maps


async def run_sipp(workdir: Path, scenario: str, remote: str, **options: Any) -> tuple[SippResult, dict[str, CallTimes]]:  # fmt: skip
    sipp = Sipp(workdir, scenario, remote, service="1001", **options)
    result = await sipp.run()
    return result, call_times(result.messages)


async def setup_phase(workdir: Path, count: int, args: argparse.Namespace) -> dict[str, Any]:
    with running_redis(workdir) as redis:
        async with process_cluster(workdir, mappings(redis.url, count)) as instances:
            with running_edge(workdir, [i.sip for i in instances]) as edge:
                async with answerer(instances[0].http_url) as answering:
                    await asyncio.sleep(1.0)  # Kamailio's first probes
                    cpu = [cpu_seconds(i.pid) for i in instances]
                    cpu_answerer = cpu_seconds(answering.pid)
                    started = time.monotonic()
                    result, times = await run_sipp(
                        workdir, "uac_basic_call", edge.address, calls=args.calls, rate=args.rate,
                        limit=4 * int(args.rate * (args.hold + 5) + 1), duration_ms=int(args.hold * 1000),
                        timeout=args.calls / args.rate + 120,
                    )  # fmt: skip
                    elapsed = time.monotonic() - started
                    used = sum(cpu_seconds(i.pid) for i in instances) - sum(cpu)
                    used_answerer = cpu_seconds(answering.pid) - cpu_answerer
                redirected = edge.log().count("redirected by the gateway")
    answered = [t for t in times.values() if t.answered is not None]
    first, last = min(t.invite for t in times.values()), max(t.answered or 0.0 for t in answered)
    return {
        "instances": count,
        "calls": len(times),
        "answered": len(answered),
        "redirected": redirected,
        "rate": len(answered) / (last - first) if len(answered) > 1 else float("nan"),
        "ring": p50_p99(ring_ms(times)),
        "answer": p50_p99(answer_ms(times)),
        "cpu_per_call": used / max(1, len(answered)),
        "answerer_cpu_per_call": used_answerer / max(1, len(answered)),
        "ok": result.ok,
        "elapsed": elapsed,
    }


async def ring_phase(workdir: Path, args: argparse.Namespace) -> dict[str, tuple[float, float, int]]:
    found: dict[str, tuple[float, float, int]] = {}
    options = {"calls": args.ring_calls, "rate": args.ring_rate, "limit": 20, "timeout": 120}
    with running_redis(workdir) as redis:
        async with process_cluster(workdir, mappings(redis.url, 3)) as instances:
            owner = instances[0]
            host, port = owner.sip
            async with answerer(owner.http_url, answer=False):
                for name, targets in (("direct", None), ("edge", [owner]), ("redirect", instances[1:])):
                    if targets is None:
                        _, times = await run_sipp(workdir, "uac_cancel", f"{host}:{port}", **options)
                    else:
                        with running_edge(workdir / name, [i.sip for i in targets]) as edge:
                            await asyncio.sleep(1.0)
                            _, times = await run_sipp(workdir, "uac_cancel", edge.address, **options)
                    p50, p99 = p50_p99(ring_ms(times))
                    found[name] = (p50, p99, len(ring_ms(times)))
    return found


async def live_statuses(instances: list[GatewayProcess]) -> dict[str, dict[str, Any]]:
    found = {}
    for instance in instances:
        if instance.alive():
            with contextlib.suppress(OSError):
                found[instance.id] = await instance.status()
    return found


async def holder_of(instances: list[GatewayProcess], what: str, timeout: float = 30.0) -> GatewayProcess:
    deadline = time.monotonic() + timeout
    while True:
        found = await live_statuses(instances)
        holding = [i for i in instances if found.get(i.id, {}).get(what)]
        if len(holding) == 1:
            return holding[0]
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} held by {[i.id for i in holding]}")
        await asyncio.sleep(0.05)


async def failover_phase(workdir: Path, args: argparse.Namespace) -> dict[str, float]:
    from peers.web_user import WebUser, WebUserError
    from peers.webpeer import WebPeer

    found: dict[str, float] = {}
    with (
        running_redis(workdir) as redis,
        running_kamailio(workdir, users={ALICE_PBX[0]: ALICE_PBX[1]}) as registrar,
    ):
        maps = mappings(redis.url, 3, pbx=registrar.address)
        for mapping in maps:
            mapping["pbx"].update({"register": True, "register_expiry": 60})
            mapping["users"][0]["pbx_auth"] = {"username": ALICE_PBX[0], "password": ALICE_PBX[1]}
        async with process_cluster(workdir, maps) as instances:
            http = [i.http_address for i in instances]
            with (
                running_edge(workdir, [i.sip for i in instances], ka_interval=args.ka_interval) as edge,
                running_haproxy(workdir / "haproxy", http) as front,
            ):
                registering = await holder_of(instances, "registrations")
                alice = WebUser(front.url, "alice", ALICE_SECRET)
                await alice.__aenter__()
                peer = WebPeer(1000, codecs=("PCMU",))
                call = Sipp(workdir, "uac_basic_call", edge.address, service="1001", rtp_echo=True,
                            duration_ms=(args.ka_interval + 30) * 1000, timeout=args.ka_interval + 60)  # fmt: skip
                try:
                    owner = await holder_of(instances, "users")
                    await call.start()
                    ringing = await alice.wait_for("incoming", timeout=10)
                    await alice.answer(ringing["call_id"], peer.answer)  # returns once connected
                    mark = len(registrar.log())
                    owner.kill()
                    killed_at = time.time()
                    killed = time.monotonic()
                    await alice.close()
                    while True:  # the page's reconnect: a new login through HAProxy
                        alice = WebUser(front.url, "alice", ALICE_SECRET)
                        try:
                            await alice.__aenter__()
                            break
                        except (WebUserError, OSError):
                            await alice.close()
                            await asyncio.sleep(0.05)
                    found["relogin"] = time.monotonic() - killed
                    while True:  # a call through the edge rings her again
                        result, _ = await run_sipp(workdir, "uac_cancel", edge.address, timeout=5)
                        if result.ok:
                            break
                    found["rung"] = time.monotonic() - killed
                    if registering is not owner:
                        mark = len(registrar.log())
                        registering.kill()
                        killed = time.monotonic()
                    taker = await holder_of([i for i in instances if i.alive()], "registrations")
                    while (
                        f"REGISTER sip:{registrar.address} from {taker.host}:" not in registrar.log()[mark:]
                    ):
                        await asyncio.sleep(0.05)
                    found["registration"] = time.monotonic() - killed
                    ended = await call.wait(timeout=args.ka_interval + 40)
                    bye = [t.bye_received for t in call_times(ended.messages).values() if t.bye_received]
                    found["far end BYE"] = (bye[0] - killed_at) if bye else float("nan")
                finally:
                    await call.stop()
                    await peer.close()
                    await alice.close()
    return found


# --- main ------------------------------------------------------------------------------------------------


def fmt(value: float) -> str:
    return f"{value:7.2f}"


async def main(args: argparse.Namespace) -> int:
    print(f"loadavg before: {loadavg()}")
    workdir = Path(tempfile.mkdtemp(prefix="cluster-bench-"))
    setups = []
    for count in (1, 3):
        setups.append(await setup_phase(workdir / f"setup{count}", count, args))
        print(f"setup with {count} instance(s) done, loadavg {loadavg()}", flush=True)
    rings = await ring_phase(workdir / "ring", args)
    print(f"ring phase done, loadavg {loadavg()}", flush=True)
    print(
        f"\ncall setup through Kamailio, {args.rate:g} calls/s offered, {args.calls} calls held {args.hold:g} s"
    )
    print("instances  answered/calls  redirected  setup/s  180 p50  180 p99  200 p50  200 p99  gw CPU s/call  answerer CPU s/call")  # fmt: skip
    for s in setups:
        print(
            f"{s['instances']:9d}  {s['answered']:6d}/{s['calls']:<7d}  {s['redirected']:10d}  {s['rate']:7.2f}"
            f"  {fmt(s['ring'][0])}  {fmt(s['ring'][1])}  {fmt(s['answer'][0])}  {fmt(s['answer'][1])}"
            f"  {s['cpu_per_call']:13.3f}  {s['answerer_cpu_per_call']:19.3f}"
        )
    print(f"\nINVITE -> 180 (ms), {args.ring_calls} calls at {args.ring_rate:g}/s, alice on gw1 of 3")
    print("path                                     p50      p99  calls  added p50")
    base = rings["direct"][0]
    labels = {
        "direct": "sipp -> gw1 (holder)",
        "edge": "sipp -> Kamailio -> gw1",
        "redirect": "sipp -> Kamailio -> gw2/3 -302-> gw1",
    }
    for name, (p50, p99, n) in rings.items():
        added = "" if name == "direct" else f"{p50 - base:+9.2f}"
        print(f"{labels[name]:38s} {fmt(p50)}  {fmt(p99)}  {n:5d}  {added}")
    worst = rings["redirect"][0] - base
    verdict = "met" if worst < TARGET_ADDED_MS else "NOT met"
    print(
        f"added by Kamailio + Redis lookups + redirect, p50: {worst:.2f} ms (target < {TARGET_ADDED_MS:g}: {verdict})"
    )
    print(f"loadavg: {loadavg()}", flush=True)
    failover = {} if args.no_failover else await failover_phase(workdir / "failover", args)
    if failover:
        print(
            "\nkill -9 of alice's instance (3 instances, lease 2 s, heartbeat 0.5 s), seconds after the kill"
        )
        for name, seconds in failover.items():
            print(f"  {name:14s} {seconds:6.2f}")
        print(
            f"  (far end BYE: Kamailio's dialog keepalive, about KA_INTERVAL {args.ka_interval} s + 2 + 10)"
        )
    print(f"\nloadavg after: {loadavg()}")
    ok = all(s["ok"] and s["answered"] == s["calls"] for s in setups)
    if not ok:
        print(f"some calls failed: see {workdir}")
    return 0 if ok else 1


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=2.0, help="calls/s in the setup phase")
    parser.add_argument("--calls", type=int, default=40, help="calls per setup run")
    parser.add_argument("--hold", type=float, default=1.0, help="seconds each call is held")
    parser.add_argument("--ring-rate", type=float, default=5.0, help="calls/s in the ring phase")
    parser.add_argument("--ring-calls", type=int, default=60, help="calls per ring path")
    parser.add_argument("--no-failover", action="store_true", help="skip the kill -9 phase")
    parser.add_argument("--ka-interval", type=int, default=30, help="Kamailio's dialog keepalive, s (>= 30)")
    parser.add_argument("--answerer", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--ring-only", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse()
    if arguments.answerer:
        asyncio.run(answerer_main(arguments.answerer, SESSIONS, not arguments.ring_only))
        sys.exit(0)
    sys.exit(asyncio.run(main(arguments)))
