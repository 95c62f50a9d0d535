"""Hundreds of concurrent calls through one middle box, with peers in C (issue 14 goals 2 and 5).

bench/vs_rtpengine.py's peers (aiortc for every packet) saturate the machine at ~200 calls; here the
handshakes are still aiortc's (real ICE, DTLS-SRTP, consent and RTCP on the web leg: the gateway's work
is the same), but the media period is pumped by bench/native_peer.c (bench/native_peers.py says how),
so that the peers cost less than the box. The boxes are vs_rtpengine.py's: ``ours`` (N ``MediaBridge``s
with the fast lane in one process), ``rtpengine``, and its bare C relays (``FLOORS``): ``floor`` (SRTP
with the calls' AEAD_AES_256_GCM on the browser's leg, fixed keys instead of DTLS), ``floor-gather``,
``floor-cm``, ``floor-gcm128``, ``floor-plain`` (plain RTP both legs). Every box gets the same peers, sending
on the same 1 ms ticks, so their packets reach it as bunched as they reach ours (vs_rtpengine.py's
Python peers send the floors' packets closer together than aiortc sends ours).

``--modes transcoding`` (issue 14 goal 2) has the browsers offer only Opus and send a canned Opus
stream, the phones PCMU (the SIP side answered with PCMU only, as vs_rtpengine.py's transcoding mode:
rtpengine with ``codec: {mask: [opus], transcode: [PCMU]}``), so every packet is decoded and encoded
by the box; the floor has no transcoding and is left out. Latency is then matched through the RTP
timestamp (bench/native_peer.c).

Per round it prints the box's CPU seconds per call-second and RSS per call (as vs_rtpengine.py), the
packets sent by the peers and those never delivered ("lost": by the box, the peers' own socket drops
are printed apart and are not in it), the drops the kernel counted on the box's sockets
(/proc/net/udp, sockets of the box's process), the bridges' own counters (ours), p50/p99 latency from
the send to the kernel's arrival stamp at the other peer (the box and the loopback), the peers' CPU (of
200 % on 2 cores) and /proc/loadavg.

Run (VS_RTPENGINE_PORT_BASE moves the boxes' ports, see vs_rtpengine.py):
    python bench/scale_bench.py [100,200,300,500] [--seconds 6] [--rounds 1] [--boxes ours,rtpengine,floor]
        [--calls-per-process 125] [--modes passthrough,transcoding] [--ramp S] [--warmup S]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from native_peers import BROWSER_OPUS, build, peer_main, percentile
from vs_rtpengine import (
    Box,
    Floor,
    Ours,
    RtpEngineBox,
    build_floor,
    connect,
    engine_note,
    loadavg,
    media_period,
    peer_processes,
    proc_rss,
    shares,
)


def udp_drops(pid: int) -> int:
    """Datagrams the kernel dropped on the UDP sockets of ``pid`` (receive buffer full): /proc/net/udp."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    drops = 0
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[9] in inodes:
                    drops += int(fields[-1])
    return drops


def peers(
    count: int,
    legs: str,
    seconds: float,
    warmup: float,
    ramp: float,
    per_process: int,
    library: Path,
    mode: str = "passthrough",
    spread: float = 1.0,
) -> Any:
    """The peer processes (native_peers.py), ``per_process`` calls each at most."""
    processes = max(1, math.ceil(count / per_process))
    return peer_processes(
        peer_main,
        [(n, legs, seconds, warmup, ramp, str(library), mode, spread) for n in shares(count, processes)],
    )


def run_round(
    box: Box,
    count: int,
    seconds: float,
    warmup: float,
    ramp: float,
    per_process: int,
    library: Path,
    mode: str = "passthrough",
    spread: float = 1.0,
) -> dict[str, Any]:
    legs = box.legs if isinstance(box, Floor) else "web"
    rss_before = proc_rss(box.pid)
    setup_start = time.monotonic()
    with peers(count, legs, seconds, warmup, ramp, per_process, library, mode, spread) as conns:
        connect(box, conns, mode, 300)
        setup = time.monotonic() - setup_start
        time.sleep(1.0)
        load = loadavg()
        drops_start = udp_drops(box.pid)
        cpu, wall, rss, reports = media_period(box, conns, warmup)
        box_drops = udp_drops(box.pid) - drops_start
        load_end = loadavg()
    notes = box.close() + engine_note(box, count, wall)
    counts = [c for r in reports for c in r.counts]
    dump = os.environ.get("VS_RTPENGINE_OURS_DUMP")
    if dump and box.name == "ours":  # the peers' counts per call over the measured seconds, beside the box's
        with open(dump + ".peers", "w") as out:  # (sent to the browser side, received there, sent to the
            out.writelines(" ".join(map(str, c)) + "\n" for c in counts)  # phone side, received there)
    histogram = [sum(h) for h in zip(*(hist for r in reports for hist in r.histograms), strict=True)]
    errors = {key: sum(r.errors[key] for r in reports) for key in reports[0].errors}
    sent = sum(c[0] + c[2] for c in counts)
    received = sum(c[1] + c[3] for c in counts)
    counters = getattr(box, "counters", {})
    return {
        "box": box.name, "mode": mode, "calls": count, "load": load, "load_end": load_end, "notes": notes, "setup_s": setup,
        "cpu": cpu / (count * wall), "rss_kib": (rss - rss_before) / count / 1024,
        "sent": sent, "lost": sent - received, "box_drops": box_drops,
        "silent_calls": sum(1 for c in counts if c[1] == 0 and c[3] == 0),  # nothing delivered either way
        "silent_per_process": [sum(1 for c in r.counts if c[1] == 0 and c[3] == 0) for r in reports],
        "web_lost": sum(c[0] - c[1] for c in counts), "phone_lost": sum(c[2] - c[3] for c in counts),
        "p50_ms": 1000 * percentile(histogram, 0.5), "p99_ms": 1000 * percentile(histogram, 0.99),
        "max_ms": 1000 * percentile(histogram, 1.0),
        "peer_cpu": sum(r.cpu / r.wall for r in reports),
        "pump_cpu": sum(r.errors["pump_cpu_ns"] / 1e9 / r.wall for r in reports), "peer_processes": len(reports), "errors": errors,
        "counters": counters,
        "late": [sum(second) for second in zip(*(r.late for r in reports), strict=True)],
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("calls", nargs="?", default="100,200,300,500", help="comma-separated call counts")
    parser.add_argument("--seconds", type=float, default=6.0, help="media time per round")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds per case (medians printed)")
    parser.add_argument("--boxes", default="ours,rtpengine,floor")
    parser.add_argument(
        "--warmup",
        type=float,
        default=2.0,
        help="seconds of media before the measured ones (the fast lane links)",
    )
    parser.add_argument(
        "--ramp",
        type=float,
        default=0.0,
        help="each call's media starts at random within these first seconds",
    )
    parser.add_argument("--calls-per-process", type=int, default=125, help="calls per peer process")
    parser.add_argument("--modes", default="passthrough", help="passthrough, transcoding or both")
    parser.add_argument(
        "--phase-spread",
        type=float,
        default=1.0,
        help="share of the 20 ms frame the calls' send phases are drawn from (1: random, 0: lock-step)",
    )
    parser.add_argument(
        "--base", help="another checkout of the gateway (its .so built), run as the box 'base'"
    )
    parser.add_argument(
        "--browser-opus",
        choices=("fullband", "chromium"),
        default="fullband",
        help="the browsers' Opus (transcoding): FFmpeg's fullband CELT for every box, or as Chromium encodes "
        "it (VOIP application, no wider than the box's maxplaybackrate)",
    )
    args = parser.parse_args()
    os.environ[BROWSER_OPUS] = args.browser_opus  # the spawned peer processes read it
    boxes = args.boxes.split(",") + (["base"] if args.base else [])
    print(
        f"{args.modes} at scale, peers pumped in C: {os.cpu_count()} CPUs, {args.seconds:g} s of media per "
        f"round after {args.warmup:g} s of warm-up (media starting over {args.ramp:g} s, phases spread over {args.phase_spread:g} of the frame), up to {args.calls_per_process} calls per peer process; load average {loadavg()} at start"
    )
    print(
        f"{'mode':<12}{'calls':>6}{'box':>10}{'CPU s/call-s':>14}{'RSS KiB/call':>14}{'sent':>9}{'lost':>7}{'w>p':>6}{'p>w':>6}"
        f"{'kdrop':>7}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'peers CPU':>10}  loadavg start / end; notes"
    )
    table: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as temp:
        workdir = Path(temp)
        library = build(workdir)
        floor_binary = build_floor(workdir) if any(b.startswith("floor") for b in boxes) else None
        cases = [(m, int(c)) for m in args.modes.split(",") for c in args.calls.split(",")]
        for mode, count in cases:
            for round_index in range(args.rounds):
                for name in boxes if round_index % 2 == 0 else boxes[::-1]:
                    if name.startswith("floor") and mode != "passthrough":
                        continue  # the floor relays; it does not transcode
                    box: Box
                    if name == "ours":
                        box = Ours(mode)
                    elif name == "base":
                        box = Ours(mode, args.base)
                    elif name == "rtpengine":
                        box = RtpEngineBox(workdir)
                    else:
                        assert floor_binary is not None
                        box = Floor(floor_binary, count, name=name)
                    r = run_round(
                        box,
                        count,
                        args.seconds,
                        args.warmup,
                        args.ramp,
                        args.calls_per_process,
                        library,
                        mode,
                        args.phase_spread,
                    )
                    table.setdefault((mode, count, name), []).append(r)
                    e, k = r["errors"], r["counters"]
                    per_process = "/".join(map(str, r["silent_per_process"]))
                    extra = f"silent calls {r['silent_calls']} ({per_process} per peer process); late > 5 ms each second {' '.join(map(str, r['late']))}; "
                    extra += f"setup {r['setup_s']:.0f} s; peers: pump threads {100 * r['pump_cpu']:.0f}%, socket drops {e['phone_drops'] + e['web_drops']}"
                    extra += f", send errors {e['send_errors']}, srtp errors {e['srtp_errors']}, foreign {e['foreign']}"
                    extra += f", to Python {e['back']} (lost {e['back_errors']})"
                    if k:
                        extra += (
                            f"; bridges: received {k.get('received')} forwarded {k.get('forwarded')} lost "
                            f"{k.get('lost')} dropped {k.get('dropped')} web_dropped {k.get('web_dropped')}"
                            f" fast lane {k.get('fast_lane_packets')}; lanes armed each second {k.get('armed')}"
                            f"; lanes disarmed (web>sip + sip>web) {k.get('disarms')}"
                            f"; lanes armed by their first packet {k.get('self_arms')}"
                            f"; engine threads: {k.get('engines')}"
                        )
                    print(
                        f"{mode:<12}{count:>6}{name:>10}{r['cpu']:>14.4f}{r['rss_kib']:>14.0f}{r['sent']:>9}{r['lost']:>7}"
                        f"{r['web_lost']:>6}{r['phone_lost']:>6}{r['box_drops']:>7}{r['p50_ms']:>8.2f}"
                        f"{r['p99_ms']:>8.2f}{r['max_ms']:>8.1f}{100 * r['peer_cpu']:>9.0f}%  [{r['load']}] / "
                        f"[{r['load_end']}] {r['peer_processes']} peer procs; {r['notes']}; {extra}",
                        flush=True,
                    )
    if args.rounds > 1:
        print("\nmedians")
        for (mode, count, name), rows in sorted(table.items()):
            cells = [
                f"{key} {statistics.median(r[key] for r in rows):.4g}"
                for key in ("cpu", "rss_kib", "lost", "p50_ms", "p99_ms", "peer_cpu")
            ]
            print(f"{mode:<12}{count:>6}{name:>10}  " + ", ".join(cells))
    print(f"load average {loadavg()} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
