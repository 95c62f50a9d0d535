"""Redis failing under live calls (issue 65 item 3): a Sentinel failover, then Redis gone altogether.

Run: python bench/redis_failover_bench.py [--calls 50] [--outage 30] [--new-calls 5]
     (needs sipp, redis-server; about three minutes)

Two gateway instances as processes (tests/e2e/cluster/cluster_procs.py), a sipp UAS with `-rtp_echo` as
the PBX, and the web users as aiortc pages (`peers.web_user` over `/ws`) in a second process (this
script with `--pages`, so their CPU is not the gateways'), half logged in at each instance, each calling
the PBX with its own tone, which comes back to it through sipp's echo. Two scenes, each on a cluster of
its own:

1. **sentinel**: the instances find Redis through three sentinels (`cluster.sentinel`; a primary and a
   replica: peers/redis.py `running_sentinel`, down-after 1 s). Once every page hears its tone, the
   primary gets kill -9. Printed: the time until the sentinels promote the replica and until both
   instances' /readyz `cluster` check is ok again; then `--new-calls` pages per instance, logged in
   beforehand, each make a new call (a second's tone back, hang up).
2. **outage**: one Redis, killed (kill -9) and its files removed, started again `--outage` seconds
   later, empty. During the outage the new-call pages call as above (each instance alone). Printed: the
   time from its return to both instances ok, and whether gw1 wrote every call's handover again (what a
   survivor needs to carry them on).

For both: calls kept (a page whose tone still comes back at the end and whose call did not end) of the
total, the longest gap in any page's audio from the event to the end (sampled every 0.1 s: a sample is
good when audio arrived since the last and its last 0.2 s hold the tone), new calls that worked, and
/proc/loadavg and the pages' own CPU share (a page process near 100% measures itself).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.e2e.cluster.cluster_procs: instances as processes

from peers.demo import ALICE_HASH, ALICE_SECRET  # noqa: E402
from peers.redis import running_redis, running_sentinel  # noqa: E402
from peers.sipp import Sipp  # noqa: E402

PBX_HOST = "127.0.0.5"
RTP_BASE = 52000  # the instances' RTP ports: 52000-53999, 54000-55999
LOGINS = asyncio.Lock()


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_seconds(pid: int) -> float:
    """utime + stime of process `pid` (clock ticks of 1/100 s)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / 100


# --- the pages (a process of their own) ------------------------------------------------------------------


class Page:
    """A web user in a call with the PBX's echo; `longest` its longest gap since `watch` began."""

    def __init__(self, index: int, url: str, user: str) -> None:
        from peers.web_user import WebUser
        from peers.webpeer import WebPeer

        self.index, self.freq = index, 400 + 30 * index
        self.peer = WebPeer(freq=self.freq)
        self.user = WebUser(url, user, ALICE_SECRET, local_address=f"127.0.1.{index + 1}")
        self.call_id = ""
        self.longest = 0.0
        self.ended = False

    async def log_in(self) -> None:
        async with LOGINS:  # one at a time: the gateway checks one password login per address at once
            await self.user.__aenter__()

    async def call(self) -> None:
        self.call_id = await self.user.call("2000", await self.peer.offer())
        connected = await self.user.wait_for("connected", call_id=self.call_id, timeout=30)
        await self.peer.accept(connected["sdp"])
        deadline = time.monotonic() + 20
        while not self.peer.heard(self.freq, last=1.0):
            if time.monotonic() > deadline:
                raise RuntimeError(f"page {self.index}: no echo")
            await asyncio.sleep(0.1)

    async def hang_up(self) -> None:
        await self.user.request({"type": "hangup", "call_id": self.call_id})
        await self.user.wait_for("ended", call_id=self.call_id, timeout=10)

    async def watch(self) -> None:
        good, size = time.monotonic(), len(self.peer.pcm)
        while True:
            await asyncio.sleep(0.1)
            now = time.monotonic()
            if len(self.peer.pcm) > size and self.peer.heard(self.freq, last=0.2):
                good = now
            size = len(self.peer.pcm)
            self.longest = max(self.longest, now - good)

    def kept(self) -> bool:
        ended = any(e.get("type") == "ended" for e in getattr(self.user, "events", ()))
        return not ended and self.peer.heard(self.freq, last=1.0)

    async def close(self) -> None:
        await asyncio.gather(self.user.close(), self.peer.close(), return_exceptions=True)


async def pages_main(count: int, urls: list[str], new_calls: int) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    pages = [Page(i, urls[i % 2], f"u{i}") for i in range(count)]
    spares = [Page(count + j, urls[j % 2], f"n{j}") for j in range(2 * new_calls)]

    async def up(page: Page) -> bool:
        try:
            await page.log_in()
            await page.call()
            return True
        except Exception as exc:
            print(json.dumps({"failed": page.index, "why": repr(exc)}), flush=True)
            return False

    ups = await asyncio.gather(*(up(p) for p in pages))
    for spare in spares:
        await spare.log_in()
    print(json.dumps({"up": sum(ups)}), flush=True)
    watches = []
    while command := (await reader.readline()).decode().strip():
        if command == "watch":
            watches = [loop.create_task(p.watch()) for p in pages]
        elif command == "new":
            results = await asyncio.gather(*(new_call(s) for s in spares))
            print(json.dumps({"new": results}), flush=True)
        elif command == "stop":
            kept = [p.kept() for p in pages]
            gaps = {p.index: round(p.longest, 2) for p in pages}
            worst = max(gaps, key=lambda i: gaps[i])
            print(json.dumps({"kept": sum(kept), "worst": [worst, gaps[worst]], "gaps": gaps}), flush=True)
            break
    for task in watches:
        task.cancel()
    await asyncio.gather(*(p.close() for p in (*pages, *spares)))


async def new_call(page: Page) -> bool:
    try:
        await page.call()
        await page.hang_up()
        return True
    except Exception as exc:
        print(json.dumps({"new_call_failed": page.index, "why": repr(exc)}), file=sys.stderr, flush=True)
        return False


# --- the bench ---------------------------------------------------------------------------------------------


def mappings(redis_url: str, pbx: str, args: argparse.Namespace, group: Any = None) -> list[dict[str, Any]]:
    from tests.e2e.cluster.cluster_procs import instance_mapping

    extra = {
        "web_auth": {"reconnect_grace": 30},
        "limits": {"calls_per_user": 200, "unanswered_per_user": 200},
        "http": {"trusted_proxies": ["127.0.0.2/31"]},  # a socket one instance relays to another
    }
    found = [instance_mapping(i, redis_url, rtp_base=RTP_BASE, pbx=pbx, extra=extra) for i in range(2)]
    for index, mapping in enumerate(found):
        mapping["media"]["rtp_ports"] = {
            "start": RTP_BASE + 2000 * index,
            "end": RTP_BASE + 2000 * index + 1999,
        }
        mapping["users"] += [
            {"id": name, "sip": f"{1100 + i}", "allow_outbound": ["."], "web_secret_hash": ALICE_HASH}
            for i, name in enumerate([*(f"u{i}" for i in range(args.calls)),
                                      *(f"n{j}" for j in range(2 * args.new_calls))])
        ]  # fmt: skip
        if group is not None:
            del mapping["cluster"]["redis"]
            mapping["cluster"]["sentinel"] = {"addresses": group.addresses, "service": group.service}
    return found


def cluster_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=2) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
    except OSError:
        return False
    return bool(json.loads(body)["checks"]["cluster"]["state"] == "ok")


async def until_ok(instances: list[Any], since: float, limit: float = 60.0) -> float:
    while not all(await asyncio.gather(*(asyncio.to_thread(cluster_ok, g.http_url) for g in instances))):
        if time.monotonic() - since > limit:
            return float("nan")
        await asyncio.sleep(0.1)
    return time.monotonic() - since


class Pages:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, args: argparse.Namespace, instances: list[Any]) -> tuple[Pages, int]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--pages", str(args.calls), str(args.new_calls),
            *(g.http_url for g in instances),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        pages = cls(process)
        while "up" not in (line := await pages.read(300)):
            print(f"  {line}")
        return pages, int(line["up"])

    async def read(self, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            raise RuntimeError("the pages' process ended")
        item: dict[str, Any] = json.loads(line)
        return item

    async def tell(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{command}\n".encode())
        await self.process.stdin.drain()

    async def new_calls(self) -> list[bool]:
        await self.tell("new")
        while "new" not in (item := await self.read(120)):
            pass
        return list(item["new"])

    async def stop(self) -> dict[str, Any]:
        await self.tell("stop")
        while "kept" not in (item := await self.read(60)):
            pass
        await self.process.wait()
        return item


async def sentinel_scene(args: argparse.Namespace, workdir: Path, sipp: Sipp) -> None:
    from tests.e2e.cluster.cluster_procs import process_cluster

    with running_sentinel(workdir / "sentinel") as group:
        async with process_cluster(workdir / "s", mappings("", sipp.address, args, group)) as instances:
            pages, up = await Pages.start(args, instances)
            cpu0, wall0 = cpu_seconds(pages.process.pid), time.monotonic()
            await asyncio.sleep(1.0)
            await pages.tell("watch")
            old = group.primary()
            await asyncio.to_thread(old.stop, kill=True)
            killed = time.monotonic()
            await asyncio.to_thread(group.wait_for_primary, old)
            promoted = time.monotonic() - killed
            back = await until_ok(instances, killed)
            new = await pages.new_calls()
            await asyncio.sleep(max(0.0, 10 - (time.monotonic() - killed)))  # 10 s of audio after the kill
            share = (cpu_seconds(pages.process.pid) - cpu0) / (time.monotonic() - wall0)
            end = await pages.stop()
    print(f"sentinel failover: {end['kept']}/{up} calls kept ({args.calls} asked), longest audio gap "
          f"{end['worst'][1]:.2f} s (page {end['worst'][0]}); replica promoted {promoted:.2f} s and both "
          f"instances' cluster check ok {back:.2f} s after the primary's kill -9; new calls after it "
          f"{sum(new)}/{len(new)}; the pages' process {share:.0%} of a core; loadavg {loadavg()}")  # fmt: skip


async def outage_scene(args: argparse.Namespace, workdir: Path, sipp: Sipp) -> None:
    import redis as redis_py

    from tests.e2e.cluster.cluster_procs import process_cluster

    with running_redis(workdir / "outage") as server:
        async with process_cluster(workdir / "o", mappings(server.url, sipp.address, args)) as instances:
            pages, up = await Pages.start(args, instances)
            cpu0, wall0 = cpu_seconds(pages.process.pid), time.monotonic()
            await asyncio.sleep(1.0)
            await pages.tell("watch")
            await asyncio.to_thread(server.stop, kill=True)
            stopped = time.monotonic()
            shutil.rmtree(server.workdir / "appendonlydir", ignore_errors=True)  # it comes back empty
            await asyncio.sleep(1.0)  # each instance has failed a heartbeat
            new = await pages.new_calls()
            await asyncio.sleep(max(0.0, args.outage - (time.monotonic() - stopped)))
            restarted = time.monotonic()  # (its start, until it answers PING, counts too)
            await asyncio.to_thread(server.start)
            back = await until_ok(instances, restarted)
            gw1_calls = (up + 1) // 2
            client = redis_py.Redis.from_url(server.url)
            try:
                while client.hlen("gw:handover:gw1") < gw1_calls and time.monotonic() - restarted < 15:
                    await asyncio.sleep(0.1)
                rewritten, rewritten_at = client.hlen("gw:handover:gw1"), time.monotonic() - restarted
            finally:
                client.close()
            await asyncio.sleep(2.0)
            share = (cpu_seconds(pages.process.pid) - cpu0) / (time.monotonic() - wall0)
            end = await pages.stop()
    print(f"Redis gone {args.outage:g} s: {end['kept']}/{up} calls kept, longest audio gap "
          f"{end['worst'][1]:.2f} s (page {end['worst'][0]}); new calls during the outage {sum(new)}/"
          f"{len(new)}; both instances ok {back:.2f} s after Redis came back (empty), gw1's handovers "
          f"written again {rewritten}/{gw1_calls} within {rewritten_at:.2f} s; the pages' process "
          f"{share:.0%} of a core; loadavg {loadavg()}")  # fmt: skip


async def main(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="redis-failover-bench-"))
    for scene in ("s", "o"):
        (workdir / scene).mkdir()
    print(f"Redis failover bench: {args.calls} calls, outage {args.outage:g} s, {args.new_calls} new calls "
          f"per instance; loadavg before: {loadavg()}")  # fmt: skip
    sipp = Sipp(workdir, "uas_basic_call", host=PBX_HOST, calls=None, rtp_echo=True, auto_answer=True,
                timeout=900)  # fmt: skip
    async with sipp:
        if "sentinel" in args.scenes:
            await sentinel_scene(args, workdir, sipp)
        if "outage" in args.scenes:
            await outage_scene(args, workdir, sipp)
    return 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--outage", type=float, default=30.0, help="seconds Redis is gone (scene 2)")
    parser.add_argument("--new-calls", type=int, default=5, help="new calls per instance in each scene")
    parser.add_argument("--scenes", nargs="+", default=["sentinel", "outage"], choices=["sentinel", "outage"])
    parser.add_argument("--pages", nargs="+", help=argparse.SUPPRESS)  # the pages' process: N M url url
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse()
    if arguments.pages:
        count, spares, *urls = arguments.pages
        asyncio.run(pages_main(int(count), urls, int(spares)))
    else:
        sys.exit(asyncio.run(main(arguments)))
