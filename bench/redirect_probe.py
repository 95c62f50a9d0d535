"""Where the redirect path's setup time goes (issue 18): the gateways' own part of it, on the wire.

Run: python bench/redirect_probe.py [--invites 200] [--gap 0.05]      (needs redis-server; ~1 minute)

Two instances as processes (tests/e2e/cluster/cluster_procs.py, 127.0.0.2-3, RTP from 42400), alice logged in on
the first. A UDP client in this script (no Kamailio, no sipp: nothing between it and the gateway) sends
INVITEs for 1001 one at a time and times, from the INVITE sent, the answers:

- to the second instance, which does not hold alice: 100 Trying and the 302 (its presence lookup in
  Redis, one script call, and the 302 built and sent); the client ACKs the 302;
- to the first, which holds her: 100 Trying and 180 Ringing (her session rung); the client CANCELs.

bench/cluster_bench.py's ring phase measures the whole redirect path through Kamailio; the difference
between its `redirect` and `edge` rows, less the INVITE -> 302 here, is Kamailio's second pass and the
extra messages (302, ACK, the second INVITE and its 100). /proc/loadavg is printed with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from peers.demo import ALICE_SECRET
from peers.redis import running_redis
from peers.web_user import WebUser
from tests.e2e.cluster.cluster_procs import instance_mapping, process_cluster

SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
)


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


class Dialog:
    """One INVITE transaction of the probe's UAC (RFC 3261 §17.1.1: ACK / CANCEL reuse its branch)."""

    def __init__(self, target: tuple[str, int], local: tuple[str, int]) -> None:
        self.target, self.local = target, local
        self.call_id, self.tag = secrets.token_hex(8), secrets.token_hex(4)
        self.branch = "z9hG4bK" + secrets.token_hex(6)

    def request(self, method: str, to_tag: str | None = None, body: str = "") -> bytes:
        host, port = self.target
        to = f"<sip:1001@{host}:{port}>" + (f";tag={to_tag}" if to_tag else "")
        kind = "Content-Type: application/sdp\r\n" if body else ""
        return (
            f"{method} sip:1001@{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {self.local[0]}:{self.local[1]};branch={self.branch};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:2000@{self.local[0]}>;tag={self.tag}\r\nTo: {to}\r\n"
            f"Call-ID: {self.call_id}\r\nCSeq: 1 {method}\r\n"
            f"Contact: <sip:2000@{self.local[0]}:{self.local[1]}>\r\n"
            f"{kind}Content-Length: {len(body)}\r\n\r\n{body}"
        ).encode()


def to_tag(message: str) -> str | None:
    for line in message.split("\r\n"):
        if line.lower().startswith("to:") and "tag=" in line:
            return line.split("tag=", 1)[1].split(";", 1)[0]
    return None


def probe(target: tuple[str, int], final: int, invites: int, gap: float) -> tuple[list[float], list[float]]:
    """INVITE -> 100 and INVITE -> `final` (ms) for `invites` INVITEs sent one after the other."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(3)
    local = sock.getsockname()
    trying: list[float] = []
    answered: list[float] = []
    try:
        for _ in range(invites):
            dialog = Dialog(target, local)
            started = time.perf_counter()
            sock.sendto(dialog.request("INVITE", body=SDP), target)
            first: float | None = None
            while True:
                data = sock.recv(65535).decode("utf-8", "replace")
                now = time.perf_counter()
                if dialog.call_id not in data or not data.startswith("SIP/2.0 "):
                    continue
                status = int(data.split(" ", 2)[1])
                if status == 100 and first is None:
                    first = now - started
                if status == final:
                    trying.append((first if first is not None else now - started) * 1000)
                    answered.append((now - started) * 1000)
                    break
            if final >= 300:
                sock.sendto(dialog.request("ACK", to_tag(data)), target)
            else:
                sock.sendto(dialog.request("CANCEL"), target)
                while not ((data := sock.recv(65535).decode("utf-8", "replace")).startswith("SIP/2.0 487")
                           and dialog.call_id in data):  # fmt: skip
                    pass
                sock.sendto(dialog.request("ACK", to_tag(data)), target)
            time.sleep(gap)
    finally:
        sock.close()
    return trying, answered


def summary(values: Sequence[float]) -> str:
    ordered = sorted(values)
    return f"p50 {statistics.median(ordered):6.3f}  p90 {ordered[int(len(ordered) * 0.9)]:6.3f}"


async def main(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="redirect-probe-"))
    with running_redis(workdir) as redis:
        mappings = [instance_mapping(i, redis.url, rtp_base=42400) for i in range(2)]
        async with (
            process_cluster(workdir, mappings) as instances,
            WebUser(instances[0].http_url, "alice", ALICE_SECRET),
        ):
            await asyncio.sleep(1.0)
            print(f"loadavg before: {loadavg()}")
            print(f"{args.invites} INVITEs one at a time, {args.gap:g} s apart (ms)")
            trying, moved = await asyncio.to_thread(probe, instances[1].sip, 302, args.invites, args.gap)
            print(
                f"gw2 (not holding alice)  INVITE -> 100  {summary(trying)}   INVITE -> 302  {summary(moved)}"
            )
            trying, ringing = await asyncio.to_thread(probe, instances[0].sip, 180, args.invites, args.gap)
            print(
                f"gw1 (holding alice)      INVITE -> 100  {summary(trying)}   INVITE -> 180  {summary(ringing)}"
            )
            print(f"loadavg after: {loadavg()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--invites", type=int, default=200, help="INVITEs per instance")
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between INVITEs")
    asyncio.run(main(parser.parse_args()))
