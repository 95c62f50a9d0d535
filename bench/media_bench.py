"""Benchmark of the media bridge: N concurrent bridged calls, pass-through and transcoding.

Each case runs the gateway side (N MediaBridges) in one process and the peers (N aiortc "browsers" sending
pre-encoded payloads, N plain RTP "phones") in another, so the numbers are the bridge's own: CPU seconds
per call-second, RSS per call, packets forwarded and lost, and the added latency per packet through the
bridge (arrival at the tap or socket -> departure at the socket or aiortc's sender, p50/p99).

Run: python bench/media_bench.py [1,10,50] [--seconds 5] [--modes passthrough,transcoding] [--profile] [--lag]
     [--no-fast-path] [--sip-srtp] [--red auto|on] [--sip-codec PCMU|G729]
(``--red``: transcoding calls whose browsers negotiate RFC 2198 ``audio/red`` over Opus and send every frame
in RED with the previous one, as Chrome does; ``on`` also has the gateway send RED to them, media.opus_red:
on, as auto does while a browser reports loss.)
(``--sip-codec G729``: the phones speak only G.729, payload type 18, encoded once with libbcg729; a
G.729 call is transcoded on the Python path, gateway/media/codecs/g729.py, where PCMU's is on the fast lane:
compare with ``--no-fast-path`` for the same path.)
(``--sip-srtp``: the SIP leg is SDES-SRTP, RFC 4568 keys in the SDP, as to a phone that wants SRTP; the
phones protect and check their RTP in the peer process.)
(``MEDIA_BENCH_MEMORY=1``: where RSS per call goes after the media period: glibc's heap in use and free
(mallinfo2), Rss/Anonymous from /proc/self/smaps_rollup.)
(``MEDIA_BENCH_UVLOOP=1`` runs the gateway side on uvloop, where uvloop is importable: an experiment.)
(``MEDIA_BENCH_PORTS=40000-41999``: the gateway side's RTP ports, 42000-43999 by default. ICE consent is
checked as the gateway checks it: ``set_consent_expiry(5.0)``, media.inactivity_timeout's default.)

Where the CPU goes (2-core VM, Nov 2026): steady media is forwarded or transcoded by the native fast lane
(gateway/media/fastlane/), so the gateway wakes about once per packet in its forwarding thread
(~40-60 us per wake-up on this VM, mostly the kernel's) and its event loop only a few times per second
(snapshots of the engine's own per-packet accounting once a second, RTCP, STUN). At one call those fixed costs and the
wake-ups are the whole figure, and they vary with what else the VM runs: bench/floor_bench.py measures a
do-nothing asyncio UDP forwarder under the same traffic (0.013-0.021 CPU s per call-second at one call on
this VM, depending on the minute). CPU is measured over the media period only (from the first packet sent
to the last), divided by calls x that time. ``--profile`` uses CPU time (cProfile with
time.process_time, which counts every thread of the process), not wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import itertools
import multiprocessing
import os
import pstats
import random
import statistics
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

TARGETS = {"passthrough": 0.01, "transcoding": 0.04}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _memory_breakdown() -> dict[str, int]:
    """glibc's heap (mallinfo2: in use, free inside the arenas, mmapped) and the process's Rss, Anonymous and
    Private_Dirty (/proc/self/smaps_rollup), in bytes: where RSS per call goes (``MEDIA_BENCH_MEMORY=1``)."""
    import ctypes

    class Mallinfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
            "keepcost")]  # fmt: skip

    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = Mallinfo2
    info = libc.mallinfo2()
    values = {"heap_used": info.uordblks, "heap_free": info.fordblks, "mmapped": info.hblkhd}
    with open("/proc/self/smaps_rollup") as smaps:
        for line in smaps:
            name, _, rest = line.partition(":")
            if name in ("Rss", "Anonymous", "Private_Dirty"):
                values[name] = int(rest.split()[0]) * 1024
    return values


def _thread_cpu() -> tuple[float, float]:
    """CPU seconds (utime + stime) of this process's main thread (the event loop) and of its other threads
    (the fast lane's engines, asyncio's executor)."""
    tick = os.sysconf("SC_CLK_TCK")
    main = other = 0.0
    pid = os.getpid()
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        seconds = (int(fields[11]) + int(fields[12])) / tick
        if int(tid) == pid:
            main += seconds
        else:
            other += seconds
    return main, other


async def _recv(conn: Connection) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, conn.recv)


# ------------------------------------------------------------------------------------- peer process


async def _peers(conn: Connection, count: int, mode: str, seconds: float, red: str) -> None:
    import sdp
    from gateway.media.rtp.srtp import SdesSrtp
    from gateway.media.webrtc import aiortc_hooks
    from peers.audio import RtpTonePeer, encode_tone
    from peers.webpeer import WebPeer

    codecs: tuple[str, ...] = (
        ("opus", "telephone-event") if mode == "transcoding" else ("PCMU", "telephone-event")
    )
    if red != "off":  # RFC 2198 over Opus, offered as Chrome offers it (aiortc writes no red fmtp)
        aiortc_hooks.register_red()
        codecs = ("opus", "red", "telephone-event")
    browsers = [WebPeer(1000, codecs=codecs, raw=True) for _ in range(count)]
    g729 = _sip_codec() == "G729"
    phones = [RtpTonePeer(18 if g729 else 0, record=False) for _ in range(count)]
    phone_tone = _g729_tone(600) if g729 else encode_tone(600, "pcmu")
    ports = [(await phone.start())[1] for phone in phones]
    offers = [await browser.offer() for browser in browsers]
    if red != "off":
        offers = [
            sdp.write(o.with_media([sdp.with_opus_red(m) for m in o.media])) for o in map(sdp.parse, offers)
        ]
    conn.send(list(zip(offers, ports, strict=True)))
    answers = await _recv(conn)
    red_pts: list[int | None] = []
    for browser, phone, (answer, address, keys) in zip(browsers, phones, answers, strict=True):
        red_pts.append(sdp.red_for_opus(sdp.parse(answer).media[0]) if red != "off" else None)
        phone.remote = tuple(address)
        if keys is not None:  # the phone's a=crypto (ours) and the gateway's
            ours, theirs = (sdp.Crypto.parse(key) for key in keys)
            assert ours is not None and theirs is not None
            phone.srtp = SdesSrtp(ours, theirs)
        await browser.accept(answer)
    await asyncio.gather(*(b.connected(timeout=30) for b in browsers))
    conn.send("ready")
    await _recv(conn)  # go
    cpu_start = time.process_time()

    async def later(start: Any) -> None:  # real calls are not in phase: spread them over a 20 ms frame
        await asyncio.sleep(random.uniform(0, 0.02))
        await start()

    await asyncio.gather(
        *(later(lambda p=p: p.send_encoded(phone_tone, seconds)) for p in phones),
        *(
            later(lambda b=b, pt=pt: b.play_raw(seconds, red_payload_type=pt))
            for b, pt in zip(browsers, red_pts, strict=True)
        ),
    )
    conn.send("sent")
    await _recv(conn)  # the gateway has drained its backlog
    previous = -1
    for _ in range(12):  # until nothing more arrives (late is not lost)
        await asyncio.sleep(0.25)
        total = sum(b.received for b in browsers) + sum(p.received for p in phones)
        if total == previous:
            break
        previous = total
    peer_cpu = time.process_time() - cpu_start
    drops = sum(b.queue_drops for b in browsers)
    conn.send(
        (
            [(b.sent, b.received, p.sent, p.received) for b, p in zip(browsers, phones, strict=True)],
            peer_cpu,
            drops,
        )
    )
    await _recv(conn)  # bye
    for browser, phone in zip(browsers, phones, strict=True):
        await browser.close()
        phone.close()


def _sip_codec() -> str:
    """The phones' codec (``--sip-codec``), read by both spawned processes."""
    return os.environ.get("MEDIA_BENCH_SIP_CODEC", "PCMU")


def _g729_tone(freq: float) -> list[bytes]:
    """One second of a tone as 50 G.729 payloads of 20 ms (two 10-byte frames each), to loop over."""
    from gateway.media.codecs.g729 import G729Encoder
    from peers.audio import sine

    pcm, encoder = sine(freq, seconds=1.0).tobytes(), G729Encoder()
    return [encoder.encode(pcm[i : i + 320]) for i in range(0, len(pcm), 320)]


def peer_main(conn: Connection, count: int, mode: str, seconds: float, red: str) -> None:
    asyncio.run(_peers(conn, count, mode, seconds, red))


# ---------------------------------------------------------------------------------- gateway process


class _Recording:
    """``MEDIA_BENCH_RECORD=wav|ogg``: each call recorded as the gateway's `always` mode does
    (gateway/runtime/recordings.py), into a temporary directory removed afterwards (bench/recording_bench.py)."""

    def __init__(self, fmt: str) -> None:
        import tempfile

        self.fmt = fmt
        self.directory = Path(tempfile.mkdtemp(prefix="media-bench-recordings-"))

    @classmethod
    def of_environment(cls) -> _Recording | None:
        fmt = os.environ.get("MEDIA_BENCH_RECORD", "")
        return cls(fmt) if fmt else None

    def record(self, bridge: Any, call_id: str) -> Any:
        from gateway.media.recording.recorder import CallFacts, CallRecorder, RecorderSettings
        from gateway.media.recording.timeline import RecordingAction
        from gateway.runtime.recordings import attach

        recorder = CallRecorder(
            RecorderSettings(self.directory, self.fmt), CallFacts(call_id, "outbound", "always")
        )
        recorder.apply(RecordingAction.START)
        attach(bridge, recorder)
        return recorder

    def finish(self, recorders: list[Any]) -> dict[str, float]:
        """Every file written (the writer threads joined): how many, and their seconds of audio."""
        import json
        import shutil

        for recorder in recorders:
            recorder.close()
            recorder.join(10)
        sidecars = [json.loads(p.read_text()) for p in self.directory.rglob("*.json")]
        shutil.rmtree(self.directory, ignore_errors=True)
        return {"files": len(sidecars), "seconds": sum(float(s["duration"]) for s in sidecars)}


async def _gateway(
    peer: Connection,
    report: Connection,
    count: int,
    mode: str,
    seconds: float,
    profile: bool,
    lag: bool,
    fast_path: bool,
    sip_srtp: bool,
    red: str,
) -> None:
    import sdp
    from gateway.media import fastlane
    from gateway.media.bridge import MediaBridge
    from gateway.media.bridge_settings import BridgeSettings
    from gateway.media.fastlane import EnginePool
    from gateway.media.rtp.dtls_srtp import DtlsCertificates
    from gateway.media.rtp.ports import PortRange, RtpPortAllocator
    from gateway.ops.gc_tuning import GcTuning

    first, last = (int(port) for port in os.environ.get("MEDIA_BENCH_PORTS", "42000-43999").split("-"))
    allocator = RtpPortAllocator(PortRange(first, last))
    certificates = DtlsCertificates()  # one DTLS certificate per process, as the gateway's
    from gateway.media.webrtc import ice_consent

    ice_consent.set_consent_expiry(5.0)  # as the gateway does (media.inactivity_timeout's default)
    pool = EnginePool() if fast_path and fastlane.available() else None
    rss_before = _rss_bytes()
    memory = os.environ.get("MEDIA_BENCH_MEMORY") == "1"
    memory_before = _memory_breakdown() if memory else {}
    offers = await _recv(peer)
    bridges: list[MediaBridge] = []
    tuning = GcTuning(lambda: len(bridges)) if os.environ.get("MEDIA_BENCH_GC") == "tuned" else None
    if tuning is not None:  # as the gateway does (media.gc_tuning): start-up frozen, then each second
        tuning.start()
        ticker = asyncio.ensure_future(tuning.run())
    answers = []
    recording = _Recording.of_environment()
    recorders: list[Any] = []
    traced = os.environ.get("MEDIA_BENCH_TRACEMALLOC") == "1"  # what the calls' Python objects weigh
    if traced:
        import tracemalloc

        tracemalloc.start(int(os.environ.get("MEDIA_BENCH_TRACEMALLOC_FRAMES", "1")))
        traced_before = tracemalloc.take_snapshot()
    for index, (offer, phone_port) in enumerate(offers):
        settings = BridgeSettings(
            allocator, host_addresses=("127.0.0.1",), call_id=f"b{index}", measure_latency=True,
            inactivity_timeout=None, fast_lane=pool, dtls_certificates=certificates,
            sip_srtp="required" if sip_srtp else "off", offer_sdes=sip_srtp,
            opus_red="on" if red == "on" else "auto", sip_codecs=("PCMU", "PCMA", "G722", "G729", "opus"),
        )  # fmt: skip
        bridge = MediaBridge(settings, lambda event: None)
        plain = sdp.parse(await bridge.offer_to_sip(offer))
        cryptos = plain.media[0].cryptos
        phone_key = sdp.Crypto.new(cryptos[0].tag) if cryptos else None
        transport = sdp.PlainTransport("127.0.0.1", phone_port, crypto=phone_key)
        answer = sdp.answer(plain, codecs=[_sip_codec()], transport=transport)
        web_answer = await bridge.answer_from_sip(sdp.write(answer))
        address = (plain.connection.address if plain.connection else "127.0.0.1", plain.media[0].port)
        keys = (phone_key.to_sdp(), cryptos[0].to_sdp()) if phone_key is not None else None
        bridges.append(bridge)
        answers.append((web_answer, address, keys))
        if recording is not None:  # MEDIA_BENCH_RECORD: each call recorded from its answer on
            recorders.append(recording.record(bridge, f"b{index}"))
    peer.send(answers)
    await _recv(peer)  # ready
    await asyncio.sleep(0.3)
    if os.environ.get("MEDIA_BENCH_TYPES") == "1":  # the calls' objects by type, per call (the most numerous)
        import collections as _c

        gc.collect()
        kinds = _c.Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.get_objects())
        tasks = _c.Counter(t.get_coro().__qualname__ for t in asyncio.all_tasks())  # type: ignore[union-attr]
        print("tasks per call: " + ", ".join(f"{k} {n / len(offers):.2f}" for k, n in tasks.most_common(20)))
        print(
            "objects per call: " + ", ".join(f"{k} {n / len(offers):.1f}" for k, n in kinds.most_common(40))
        )
    if traced:
        key = os.environ.get("MEDIA_BENCH_TRACEMALLOC_BY", "lineno")
        growth = tracemalloc.take_snapshot().compare_to(traced_before, key)
        tracemalloc.stop()
        total = sum(stat.size_diff for stat in growth)
        print(f"tracemalloc: {total / len(offers) / 1024:.1f} KiB of Python allocations per call; the top:")
        for stat in growth[: int(os.environ.get("MEDIA_BENCH_TRACEMALLOC_TOP", "25"))]:
            print(
                f"  {stat.size_diff / len(offers) / 1024:8.2f} KiB/call {stat.count_diff / len(offers):6.1f} blocks  {stat.traceback}"
            )
            if key == "traceback":  # MEDIA_BENCH_TRACEMALLOC_FRAMES > 1: who allocated it
                print(
                    "\n".join(
                        f"        {line}" for line in stat.traceback.format()[-2 * len(stat.traceback) :]
                    )
                )
    gc_pauses: list[float] = []
    gc_started = [0.0]

    gc_counts = [0, 0, 0]
    gc_seconds = [0.0]
    gc_longest = [0.0]  # the longest pause of any generation

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_started[0] = time.perf_counter()
            return
        pause = time.perf_counter() - gc_started[0]
        gc_counts[info["generation"]] += 1
        gc_seconds[0] += pause
        gc_longest[0] = max(gc_longest[0], pause)
        if info["generation"] == 2:
            gc_pauses.append(pause)

    gc.callbacks.append(on_gc)
    lags: list[float] = []

    async def watch_loop() -> None:  # how late the event loop wakes a 5 ms timer: stalls show up here
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + 0.005
            await asyncio.sleep(0.005)
            lags.append(loop.time() - due)

    watcher = asyncio.ensure_future(watch_loop() if lag else asyncio.sleep(0))
    profiler = cProfile.Profile(time.process_time) if profile else None  # CPU time, not wall
    threads_start = _thread_cpu()
    times_start, cpu_start, wall_start = os.times(), time.process_time(), time.monotonic()
    if profiler is not None:
        profiler.enable()
    peer.send("go")
    await _recv(peer)  # the peers sent everything: the media period ends (the drain below is not measured)
    if profiler is not None:
        profiler.disable()
    cpu = time.process_time() - cpu_start
    times_end = os.times()
    threads_end = _thread_cpu()
    wall = time.monotonic() - wall_start
    previous = -1
    for _ in range(50):  # a starved loop may still hold a backlog in the socket buffers: late is not lost
        total = sum(b.stats().web_to_sip.received + b.stats().sip_to_web.received for b in bridges)
        if total == previous:
            break
        previous = total
        await asyncio.sleep(0.1)
    peer.send("report")
    counts, peer_cpu, peer_drops = await _recv(peer)
    user, system = times_end.user - times_start.user, times_end.system - times_start.system
    rss_during = _rss_bytes()
    if memory:  # after the media period, as the RSS figure
        after = _memory_breakdown()
        print("memory per call (KiB): " + ", ".join(
            f"{name} {(after[name] - memory_before[name]) / len(offers) / 1024:.1f}" for name in after))  # fmt: skip
    watcher.cancel()
    if tuning is not None:
        ticker.cancel()
        tuning.close()
    stats = [b.stats() for b in bridges]
    linked = sum(1 for b in bridges if b.fast_lane is not None and b.fast_lane.link is not None)
    engine_packets = sum(b.fast_lane.packets for b in bridges if b.fast_lane is not None)
    for bridge in bridges:
        await bridge.close()
    if recording is not None:
        result_files = recording.finish(recorders)
    if pool is not None:
        pool.close()
    peer.send("bye")
    latencies = [s.latency for s in stats if s.latency is not None]
    result = {
        "mode": mode,
        "calls": count,
        "seconds": seconds,
        "wall": wall,
        "cpu": cpu,
        "cpu_per_call_second": cpu / (count * wall),
        "user_per_call_second": user / (count * wall),
        "loop_per_call_second": (threads_end[0] - threads_start[0]) / (count * wall),
        "threads_per_call_second": (threads_end[1] - threads_start[1]) / (count * wall),
        "sys_per_call_second": system / (count * wall),
        "rss_per_call_kib": (rss_during - rss_before) / count / 1024,
        "transcoding": all(s.transcoding for s in stats),
        "forwarded": sum(s.web_to_sip.forwarded + s.sip_to_web.forwarded for s in stats),
        "lost_in": sum(s.web_to_sip.lost + s.sip_to_web.lost for s in stats),
        "web_dropped": sum(s.web_dropped for s in stats),
        "browser_sent": sum(c[0] for c in counts),
        "browser_received": sum(c[1] for c in counts),
        "phone_sent": sum(c[2] for c in counts),
        "phone_received": sum(c[3] for c in counts),
        "p50_ms": statistics.median(lat.p50_ms for lat in latencies) if latencies else float("nan"),
        "p99_ms": max((lat.p99_ms for lat in latencies), default=float("nan")),
        "profile": "",
        "gc2_pauses_ms": [round(1000 * p, 1) for p in gc_pauses],
        "gc_counts": tuple(gc_counts),
        "gc_ms": 1000 * gc_seconds[0],
        "gc_longest_ms": 1000 * gc_longest[0],
        "loop_lag_max_ms": 1000 * max(lags, default=0.0),
        "loop_lag_p99_ms": 1000 * sorted(lags)[int(0.99 * len(lags))] if lags else 0.0,
        "peer_cpu_share": peer_cpu / (time.monotonic() - wall_start),
        "peer_queue_drops": peer_drops,
        "linked": linked,
        "engine_packets": engine_packets,  # packets the native lanes took (the rest: the Python path)
        "received": sum(s.web_to_sip.received + s.sip_to_web.received for s in stats),
        "red_recovered": sum(s.web_to_sip.recovered for s in stats),
        "recorded": result_files if recording is not None else None,
    }
    if profiler is not None:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(60)
        if os.environ.get("MEDIA_BENCH_PROFILE_OUT"):  # the raw profile, for pstats by other keys
            profiler.dump_stats(f"{os.environ['MEDIA_BENCH_PROFILE_OUT']}.{mode}.{count}")
        result["profile"] = text.getvalue()
    report.send(result)


def gateway_main(
    peer: Connection,
    report: Connection,
    count: int,
    mode: str,
    seconds: float,
    profile: bool,
    lag: bool,
    fast_path: bool,
    sip_srtp: bool,
    red: str = "off",
) -> None:
    coroutine = _gateway(peer, report, count, mode, seconds, profile, lag, fast_path, sip_srtp, red)
    if os.environ.get("MEDIA_BENCH_UVLOOP"):  # an experiment only: uvloop is no dependency of the gateway
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(coroutine)
        return
    asyncio.run(coroutine)


# ------------------------------------------------------------------------------------ orchestration


def run_case(
    count: int,
    mode: str,
    seconds: float,
    profile: bool,
    lag: bool,
    fast_path: bool = True,
    sip_srtp: bool = False,
    red: str = "off",
) -> dict[str, Any]:
    red = red if mode == "transcoding" else "off"  # RFC 2198 here is over Opus: the browsers of transcoding
    context = multiprocessing.get_context("spawn")
    gateway_end, peer_end = context.Pipe()
    report_out, report_in = context.Pipe()
    peers = context.Process(target=peer_main, args=(peer_end, count, mode, seconds, red))
    gateway = context.Process(
        target=gateway_main,
        args=(gateway_end, report_in, count, mode, seconds, profile, lag, fast_path, sip_srtp, red),
    )
    peers.start()
    gateway.start()
    try:
        if not report_out.poll(60 + 3 * seconds + count):
            raise TimeoutError(f"{mode} x{count}: no result")
        result: dict[str, Any] = report_out.recv()
        return result
    finally:
        for process in (gateway, peers):
            process.join(timeout=20)
            if process.is_alive():
                process.kill()
                process.join()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("calls", nargs="?", default="1,10,50", help="comma-separated call counts")
    parser.add_argument("--seconds", type=float, default=5.0, help="media time per case")
    parser.add_argument("--modes", default="passthrough,transcoding")
    parser.add_argument("--profile", action="store_true", help="cProfile the gateway side, print the top")
    parser.add_argument(
        "--lag", action="store_true", help="measure event-loop lag with a 5 ms timer (adds wakeups: CPU)"
    )
    parser.add_argument(
        "--no-fast-path",
        action="store_true",
        help="everything on the Python path (no EnginePool in BridgeSettings)",
    )
    parser.add_argument(
        "--sip-codec",
        choices=("PCMU", "G729"),
        default="PCMU",
        help="the phones' only codec: G729 is transcoded to and from Opus on the Python path (libbcg729)",
    )
    parser.add_argument(
        "--sip-srtp", action="store_true", help="SDES-SRTP on the SIP leg (media.sip_srtp: required)"
    )
    parser.add_argument(
        "--red",
        choices=("off", "auto", "on"),
        default="off",
        help="transcoding browsers send RFC 2198 RED over Opus as Chrome does (auto); on: the gateway sends "
        "RED to them too (media.opus_red: on)",
    )
    parser.add_argument(
        "--gc",
        default="tuned",
        help="the gateway side's GC: tuned (media.gc_tuning, gateway/ops/gc_tuning.py), default (CPython's),"
        " or both (each case run twice, interleaved)",
    )
    args = parser.parse_args()
    os.environ["MEDIA_BENCH_SIP_CODEC"] = args.sip_codec  # read by the spawned processes
    counts = [int(c) for c in args.calls.split(",")]
    load = Path("/proc/loadavg").read_text().split()[0]
    print(
        f"media bridge bench: {os.cpu_count()} CPUs (load average {load} before start: other processes on the "
        f"machine skew the numbers), {args.seconds:g} s of media per case, peers in another process, "
        f"fast lane {'off' if args.no_fast_path else 'on'}, SIP leg {'SDES-SRTP' if args.sip_srtp else 'plain RTP'} "
        f"{args.sip_codec}, "
        f"RFC 2198 RED {args.red}"
    )
    header = (
        f"{'mode':<12}{'calls':>6}{'CPU s/call-s':>14}{'(user':>7}{'sys)':>7}{'target':>8}{'RSS KiB/call':>14}"
        f"{'forwarded':>11}{'lost':>6}{'e2e lost':>9}{'p50 ms':>8}{'p99 ms':>8}"
    )
    print(header)
    ok = True
    variants = ["tuned", "default"] if args.gc == "both" else [args.gc]
    for mode, count, variant in itertools.product(args.modes.split(","), counts, variants):
        os.environ["MEDIA_BENCH_GC"] = variant  # read by the spawned gateway process
        r = run_case(
            count, mode, args.seconds, args.profile, args.lag, not args.no_fast_path, args.sip_srtp, args.red
        )
        sent = r["browser_sent"] + r["phone_sent"]
        received = r["browser_received"] + r["phone_received"]
        e2e_lost = sent - received
        meets = r["cpu_per_call_second"] <= TARGETS[mode] and r["p99_ms"] < 20 and r["lost_in"] == 0
        ok &= meets
        print(
            f"{mode:<12}{count:>6}{r['cpu_per_call_second']:>14.4f}{r['user_per_call_second']:>7.4f}"
            f"{r['sys_per_call_second']:>7.4f}{TARGETS[mode]:>8.2f}"
            f"{r['rss_per_call_kib']:>14.0f}{r['forwarded']:>11}{r['lost_in']:>6}{e2e_lost:>9}"
            f"{r['p50_ms']:>8.2f}{r['p99_ms']:>8.2f}{'' if meets else '  (target missed)'}"
        )
        print(
            f"{'':18}CPU s/call-s of the event loop's thread {r['loop_per_call_second']:.5f}, of the other "
            f"threads (engines) {r['threads_per_call_second']:.5f}; GC {variant}; calls on the fast lane {r['linked']}/{count}, "
            f"packets through its engine {r['engine_packets']} of {r['received']}; RED restored {r['red_recovered']}; "
            f"browsers sent {r['browser_sent']} got {r['browser_received']}; phones sent "
            f"{r['phone_sent']} got {r['phone_received']}; peer process CPU {100 * r['peer_cpu_share']:.0f}% "
            f"of a core, its queue drops {r['peer_queue_drops']}; browser packets dropped by the bridge {r['web_dropped']}; "
            f"full GC pauses (ms) {r['gc2_pauses_ms']}; "
            f"GC runs per generation {r['gc_counts']} taking {r['gc_ms']:.0f} ms, the longest "
            f"{r['gc_longest_ms']:.1f} ms"
            + (
                f"; loop lag p99 {r['loop_lag_p99_ms']:.1f} ms, max {r['loop_lag_max_ms']:.1f} ms"
                if args.lag
                else ""
            )
        )
        if r["profile"]:
            print(r["profile"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
