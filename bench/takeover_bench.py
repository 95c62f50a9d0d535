"""kill -9 of a gateway instance carrying N calls (issue 34 item 3): how many come back, and how fast.

Run: python bench/takeover_bench.py [--calls 20] [--lease 2] [--heartbeat 0.5] [--page-procs 1]
     [--page-codec opus|pcmu]
     (needs sipp, kamailio, redis-server, haproxy; about a minute)

Everything runs on loopback, as docs/deploy.md describes a cluster: Redis, three gateway instances as
processes (tests/e2e/cluster/cluster_procs.py, on 127.0.0.2-4, the CLI with `cluster:`), the shipped
Kamailio edge (deploy/kamailio-cluster.cfg) as every instance's `pbx.outbound_proxy` (so the PBX's
dialogs are record-routed through it), HAProxy (deploy/haproxy.cfg) in front of their HTTP. The PBX is a
sipp UAS with `-rtp_echo` (peers/scenarios/uas_takeover.xml: a call must see our INVITE, then the
survivor's re-INVITE, then the BYE; a BYE before the re-INVITE fails the call). The web users are N
aiortc pages (`peers.web_user` over `/ws`, the softphone protocol; a web user each) run in a second process (this script
with `--clients`, so their CPU is not the gateways'), each logged in at gw1 and calling the PBX with its
own tone, which comes back to it through sipp's echo. Each page comes from a loopback address of its own
(127.0.1.N), as browsers on different machines do, and the instances list HAProxy and each other in
`http.trusted_proxies` (docs/deploy.md).

Once every page hears its tone, gw1 gets SIGKILL. Each page reconnects at once through HAProxy with its
session token (as the softphone page does), is told its call by whichever instance it reaches (relayed
to the survivor that takes gw1's calls over), reattaches with a new RTCPeerConnection and waits for its
tone again. Printed: calls back with audio both ways (the tone is the page's own, so it crossed the
survivor to the PBX and back), the gap from the kill to the first 100 ms of tone (p50/p99/max), calls
lost (no tone within 15 s), and sipp's count of calls that saw a BYE before the survivor's re-INVITE
(must be 0), with /proc/loadavg.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.e2e.cluster.cluster_procs: instances as processes

from peers.demo import ALICE_HASH, ALICE_SECRET  # noqa: E402
from peers.haproxy import running_haproxy  # noqa: E402
from peers.kamailio_edge import running_edge  # noqa: E402
from peers.redis import running_redis  # noqa: E402
from peers.sipp import Sipp  # noqa: E402

PBX_HOST = "127.0.0.5"
BACK_WITHIN = 15.0
LOGIN_WITHIN = 8.0  # s a relogin may take: a lease and two heartbeats of waiting for the takeover, and more  # s: a call whose tone is not back by then is lost
LOGINS = asyncio.Lock()
PAGE_CODECS: dict[str, tuple[str, ...] | None] = {"opus": None, "pcmu": ("pcmu",)}  # None: aiortc's offer
RTP_BASE = 52000  # the instances' RTP ports: 52000-53999, 54000-55999, 56000-57999


def page_address(index: int) -> str:
    """Page ``index``'s own loopback address: each page a client of its own, as browsers on different
    machines are (from one address they would share the per-address caps: 8 sockets awaiting login)."""
    return f"127.0.1.{index + 1}"


def api_key(index: int) -> str:
    """Page ``index``'s API key (the JSON-RPC and HTTP API pages of bench/rolling_bench.py)."""
    return f"bench-page-key-{index:04d}-0123456789"


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# --- the pages (a process of their own) ------------------------------------------------------------------


async def one_page(
    index: int, gw1: str, front: str, killed: asyncio.Future[float], codecs: tuple[str, ...] | None = None
) -> dict[str, Any]:
    from peers.web_user import WebUser
    from peers.webpeer import WebPeer

    freq = 500 + 50 * index  # each page its own tone, through the PBX's echo and back
    first = WebPeer(freq=freq, codecs=codecs)
    user = WebUser(gw1, f"u{index}", ALICE_SECRET, local_address=page_address(index))
    async with LOGINS:  # one at a time: the gateway checks one password login per address at once
        await user.__aenter__()
    try:
        call_id = await user.call("2000", await first.offer())
        connected = await user.wait_for("connected", call_id=call_id, timeout=30)
        await first.accept(connected["sdp"])
        deadline = time.monotonic() + 20
        while not first.heard(freq, last=1.0):
            if time.monotonic() > deadline:
                raise RuntimeError(f"page {index}: no echo before the kill")
            await asyncio.sleep(0.1)
        print(json.dumps({"ready": index}), flush=True)
        kill_time = await killed
    finally:
        await asyncio.gather(user.close(), first.close(), return_exceptions=True)
    second = WebPeer(freq=freq, codecs=codecs)
    result: dict[str, Any] = {"index": index, "call_id": call_id}
    try:
        again = await relogin(index, front, str(user.token), call_id, kill_time)
        try:
            await again.request({"type": "reattach", "call_id": call_id, "sdp": await second.offer()})
            reattached = await again.wait_for("reattached", call_id=call_id, timeout=BACK_WITHIN)
            await second.accept(reattached["sdp"])
            while not second.heard(freq, last=0.1):
                if time.time() - kill_time > BACK_WITHIN:
                    raise RuntimeError(f"page {index}: no tone within {BACK_WITHIN:g} s")
                await asyncio.sleep(0.02)
            result["gap"] = time.time() - kill_time
            await asyncio.sleep(1.0)
            await again.request({"type": "hangup", "call_id": call_id})
            await again.wait_for("ended", call_id=call_id)
        finally:
            await again.close()
    except Exception as exc:
        result["lost"] = str(exc)
    finally:
        await second.close()
    return result


async def relogin(index: int, front: str, token: str, call_id: str, kill_time: float) -> Any:
    """The page's reconnect with its token, as the softphone page does: again after a refusal (429 at the
    upgrade, 1013: an instance busy with many pages of one address) until its call is listed."""
    from peers.web_user import WebUser, WebUserError

    attempt = 0
    while True:
        again = WebUser(front, f"u{index}", "", token=token, local_address=page_address(index))  # a token
        try:
            # a socket closed unanswered (1013) leaves its login pending: bounded, as a page's own timer is
            await asyncio.wait_for(again.__aenter__(), LOGIN_WITHIN)
            calls = await again.wait_for("calls", timeout=max(0.1, BACK_WITHIN - (time.time() - kill_time)))
            if any(c["call_id"] == call_id for c in calls["calls"]):
                return again
        except (WebUserError, aiohttp.ClientError, ConnectionError, TimeoutError):
            pass
        await again.close()
        if time.time() - kill_time > BACK_WITHIN:
            raise RuntimeError(f"page {index}: its call not listed within {BACK_WITHIN:g} s")
        attempt += 1
        await asyncio.sleep(min(2.0, 0.2 * attempt) * (0.5 + random.random()))  # backoff, jittered


async def pages_main(count: int, gw1: str, front: str, first: int = 0, codec: str = "opus") -> None:
    loop = asyncio.get_running_loop()
    killed: asyncio.Future[float] = loop.create_future()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def told() -> None:
        line = await reader.readline()  # the kill's time.time(), from the bench
        killed.set_result(float(line))

    waiting = asyncio.create_task(told())

    async def page(index: int) -> None:
        try:
            result = await one_page(index, gw1, front, killed, PAGE_CODECS[codec])
        except Exception as exc:  # before the kill: said at once (the bench waits for every page)
            result = {"index": index, "lost": f"before the kill: {exc!r}"}
        print(json.dumps(result), flush=True)

    await asyncio.gather(*(page(i) for i in range(first, first + count)))
    waiting.cancel()


# --- the bench ---------------------------------------------------------------------------------------------


def mappings(redis_url: str, pbx: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    from tests.e2e.cluster.cluster_procs import instance_mapping

    extra = {
        "web_auth": {"reconnect_grace": 30},
        "limits": {"calls_per_user": 200, "unanswered_per_user": 200},
        # HAProxy, and the instances (a socket one relays to another): each page its own client (docs/deploy.md)
        "http": {"trusted_proxies": ["127.0.0.1/32", "127.0.0.2/31", "127.0.0.4/32"]},
    }
    timing = {"heartbeat": args.heartbeat, "lease": args.lease}
    found = [
        instance_mapping(i, redis_url, rtp_base=RTP_BASE, pbx=pbx, extra=extra, **timing) for i in range(3)
    ]
    for index, mapping in enumerate(found):  # 2000 ports each: 100 calls' SIP legs and web legs' ICE
        mapping["media"]["rtp_ports"] = {
            "start": RTP_BASE + 2000 * index,
            "end": RTP_BASE + 2000 * index + 1999,
        }
    for mapping in found:  # a web user per page (a user has at most 5 sessions), alice's password
        mapping["users"] += [
            {
                "id": f"u{i}",
                "sip": f"{1100 + i}",
                "allow_outbound": ["."],
                "web_secret_hash": ALICE_HASH,
                "api_keys": [{"key": api_key(i), "default_dial": "2000"}],
            }
            for i in range(args.calls)
        ]
    return found


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclasses.dataclass
class Stage:
    """What `stage` set up: the three instances, HAProxy's URL; the PBX's sipp outcome once it is over."""

    instances: list[Any]
    front: str
    outcome: Any = None


@contextlib.asynccontextmanager
async def stage(
    workdir: Path, scenario: str, args: argparse.Namespace, timeout: float
) -> AsyncIterator[Stage]:
    """Redis, three instances as processes with the Kamailio edge as their outbound proxy, HAProxy in
    front, and sipp as the PBX (``scenario``, `-rtp_echo`) for ``args.calls`` calls (this bench's and
    bench/rolling_bench.py's). The sipp outcome is on the stage once the block and the cluster are over."""
    from tests.e2e.cluster.cluster_procs import process_cluster

    # the PBX on a loopback address of its own, port 5060: the Request-URI the edge relays by (sip:2000@host)
    sipp = Sipp(
        workdir, scenario, host=PBX_HOST, port=5060, calls=args.calls, rtp_echo=True, auto_answer=True,
        timeout=timeout,
    )  # fmt: skip
    async with sipp:
        with running_redis(workdir) as redis:
            found = mappings(redis.url, sipp.address, args)
            gateways = [(m["sip"]["listen"][0]["host"], m["sip"]["listen"][0]["port"]) for m in found]
            with running_edge(workdir, gateways) as edge:
                for mapping in found:  # calls to the PBX through the edge: record-routed (docs/deploy.md)
                    mapping["pbx"]["outbound_proxy"] = edge.address
                    mapping["pbx"]["domain"] = PBX_HOST  # the Request-URI's host, port 5060
                async with process_cluster(workdir, found) as instances:
                    https = [g.http_address for g in instances]
                    with running_haproxy(workdir / "haproxy", https) as front:
                        on = Stage(instances, front.url)
                        yield on
                    print(f"loadavg after: {loadavg()}")
        on.outcome = await sipp.stop()


async def main(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="takeover-bench-"))
    print(f"takeover bench: {args.calls} calls, lease {args.lease:g} s, heartbeat {args.heartbeat:g} s")
    print(f"loadavg before: {loadavg()}")
    async with stage(workdir, "uas_takeover", args, 300) as on:
        result = await run_pages(args, on.instances[0], on.front)
    report(args, result, on.outcome)
    return 0


async def run_pages(args: argparse.Namespace, gw1: Any, front: str) -> list[dict[str, Any]]:
    """The pages in ``--page-procs`` processes (a share of the calls each), all told the kill at once."""
    shares = [
        args.calls // args.page_procs + (i < args.calls % args.page_procs) for i in range(args.page_procs)
    ]
    starts = [sum(shares[:i]) for i in range(len(shares))]
    procs = []
    for share, start in zip(shares, starts, strict=True):
        if share:
            command = [
                sys.executable,
                __file__,
                "--pages",
                str(share),
                gw1.http_url,
                front,
                "--first",
                str(start),
                "--page-codec",
                args.page_codec,
            ]
            pipe = asyncio.subprocess.PIPE
            procs.append(await asyncio.create_subprocess_exec(*command, stdin=pipe, stdout=pipe))
    results: list[dict[str, Any]] = []

    async def until_up(proc: asyncio.subprocess.Process, share: int) -> None:
        assert proc.stdout is not None
        ready = done = 0
        while ready + done < share:  # every page up (or failed before the kill)
            line = await asyncio.wait_for(proc.stdout.readline(), 120)
            if not line:
                raise RuntimeError(f"a pages' process ended before every call was up: {results[:3]}")
            item = json.loads(line)
            if "ready" in item:
                ready += 1
            else:
                results.append(item)
                done += 1

    await asyncio.gather(*(until_up(p, s) for p, s in zip(procs, [s for s in shares if s], strict=True)))
    await asyncio.sleep(1.0)  # a heartbeat or two: every call's handover in Redis
    gw1.kill()
    now = f"{time.time()}\n".encode()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(now)
    await asyncio.gather(*(p.stdin.drain() for p in procs if p.stdin is not None))

    async def rest(proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            results.append(json.loads(line))
        await proc.wait()

    await asyncio.gather(*(rest(p) for p in procs))
    return results


def report(args: argparse.Namespace, results: list[dict[str, Any]], outcome: Any) -> None:
    gaps = [r["gap"] for r in results if "gap" in r]
    lost = [r for r in results if "gap" not in r]
    print(f"calls back with audio both ways: {len(gaps)} of {args.calls}")
    if gaps:
        print(
            f"gap from kill -9 to the page's own tone back: p50 {statistics.median(gaps):.2f} s, "
            f"p99 {percentile(gaps, 0.99):.2f} s, max {max(gaps):.2f} s"
        )
    for item in lost:
        print(f"  lost: {item.get('lost')}")
    invites = outcome.count("INVITE sip:")  # each call's INVITE and the survivor's re-INVITE, as received
    unexpected = outcome.errors.count("unexpected message")  # a BYE before the re-INVITE, say
    print(
        f"the PBX (sipp) received {invites - args.calls} re-INVITEs for {args.calls} calls, "
        f"{outcome.count('BYE sip:')} BYEs (all after the re-INVITE: {unexpected} unexpected messages)"
    )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--heartbeat", type=float, default=0.5)
    parser.add_argument(
        "--page-procs", type=int, default=1,
        help="processes the pages are spread over (one process of 100 aiortc pages saturates a core)",
    )  # fmt: skip
    parser.add_argument(
        "--page-codec", choices=sorted(PAGE_CODECS), default="opus",
        help="what the pages offer: opus (aiortc's own offer, as a browser's: Opus chosen, the gateway "
        "transcodes) or pcmu (passed through to the PBX: a page costs its process a fraction as much)",
    )  # fmt: skip
    parser.add_argument("--pages", nargs=3, metavar=("COUNT", "GW1", "FRONT"), help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse()
    if arguments.pages:
        count, gw1_url, front_url = arguments.pages
        asyncio.run(pages_main(int(count), gw1_url, front_url, arguments.first, arguments.page_codec))
    else:
        with contextlib.suppress(KeyboardInterrupt):
            sys.exit(asyncio.run(main(arguments)))
