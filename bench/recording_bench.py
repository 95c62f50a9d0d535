"""Benchmark of call recording (issue 37 item 3): CPU seconds per call-second of N bridged calls,
unrecorded and recorded (WAV, Ogg/Opus), measured in one run, with their ratios.

Each case is bench/media_bench.py's (the gateway side's N MediaBridges in one process, the peers in
another, CPU over the media period only, every thread of the gateway process counted: the recordings'
writer threads too); a recorded case sets MEDIA_BENCH_RECORD, so that each call is recorded from its
answer on as `recording.mode: always` records it (gateway/runtime/recordings.py): the fast lane unlinked
(both legs through Python), both legs decoded to 8 kHz PCM, the file written by a thread. The files go to
a temporary directory, removed afterwards; the table says how many were written and their seconds.

Run: python bench/recording_bench.py [1,10,50] [--seconds 10] [--modes passthrough,transcoding]
     [--formats wav,ogg]
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from media_bench import run_case  # (bench/ is not a package: its folder on the path)


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("calls", nargs="?", default="1,10,50", help="comma-separated call counts")
    parser.add_argument("--seconds", type=float, default=10.0, help="media time per case")
    parser.add_argument("--modes", default="passthrough,transcoding")
    parser.add_argument("--formats", default="wav,ogg", help="recorded formats compared with no recording")
    args = parser.parse_args()
    formats = [f for f in args.formats.split(",") if f]
    print(f"recording bench: {os.cpu_count()} CPUs, {args.seconds:g} s of media per case, loadavg {_load()}")
    print(f"{'mode':<12}{'calls':>6}{'recording':>10}{'CPU s/call-s':>14}{'x unrecorded':>14}"
          f"{'on fast lane':>14}{'files':>7}{'audio s':>9}{'e2e lost':>9}{'loadavg':>18}")  # fmt: skip
    for mode, count in itertools.product(args.modes.split(","), (int(c) for c in args.calls.split(","))):
        base = None
        for fmt in ["", *formats]:
            os.environ["MEDIA_BENCH_RECORD"] = fmt  # read by the spawned gateway process
            r = run_case(count, mode, args.seconds, False, False)
            cpu = r["cpu_per_call_second"]
            base = cpu if not fmt else base
            ratio = f"{cpu / base:.2f}" if base else "-"
            recorded = r.get("recorded") or {"files": 0, "seconds": 0.0}
            lost = r["browser_sent"] + r["phone_sent"] - r["browser_received"] - r["phone_received"]
            print(f"{mode:<12}{count:>6}{fmt or 'off':>10}{cpu:>14.4f}{ratio:>14}{r['linked']:>10}/{count:<3}"
                  f"{recorded['files']:>7}{recorded['seconds']:>9.1f}{lost:>9}{_load():>18}")  # fmt: skip
    os.environ.pop("MEDIA_BENCH_RECORD", None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
