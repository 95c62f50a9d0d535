"""Our media bridge, rtpengine and a bare C relay under the same calls and traffic (issue 14 goals 1, 2, 5).

The same peers (bench/peer_pool.py: aiortc "browsers" and plain RTP "phones" with pre-encoded payloads, in
a pool of processes) talk through one middle box at a time:

* ``ours``: N ``MediaBridge``s with the native fast lane in one process (as bench/media_bench.py runs them,
  GC tuned as the gateway's ``media.gc_tuning`` default);
* ``rtpengine``: Debian's rtpengine in user space (``table = -1``, its own config in a temp dir, interfaces
  on 127.0.0.1, ports 46000-47999) driven over its ng protocol (peers/rtpengine.py) with the flags that
  make it work with aiortc; transcoding adds ``codec: {mask: [opus], transcode: [PCMU]}`` (``[G722]`` in
  mode ``transcoding-g722``);
* ``floor`` (pass-through only): bench/floor_relay.c --srtp-gcm256, built with ``cc`` into a temp dir,
  with pylibsrtp's bundled libsrtp (the one our engine runs; VS_RTPENGINE_FLOOR_LIBSRTP=path takes
  another, e.g. Debian's libsrtp2.so.1), relaying between an SRTP phone (AEAD_AES_256_GCM, the profile
  aiortc negotiates with our bridge and rtpengine in these calls; fixed keys: the "browser") and a plain
  RTP phone per call, unprotecting and protecting on the SRTP leg (2 x 50 packets/s of 172 bytes: the
  same packets as a pass-through call, without DTLS, ICE or RTCP): the least a relay can cost on this
  machine, the floor issue 14 defines (epoll + recvmmsg + libsrtp + sendmmsg), for the same cipher;
* ``floor-gather`` (pass-through only): the same relay gathering as our engine does (FLOOR_GATHER_MS=1,
  gateway.yaml's ``media.fast_path_coalesce_ms``: after a busy round it waits up to 1 ms so that the next
  round reads several packets; floor_relay.c says when): the floor of a relay that trades up to a
  millisecond of latency for CPU, as ours does;
* ``floor-cm``, ``floor-gcm128`` (pass-through only): the same with AES_CM_128_HMAC_SHA1_80 (the default
  floor before issue 38) or AEAD_AES_128_GCM;
* ``floor-plain`` (pass-through only): the same relay between two plain RTP phones (no SRTP), the floor
  of the figures before the SRTP one.

Every floor runs at nice 0 (VS_RTPENGINE_FLOOR_NICE=-10 gives it our engine thread's priority, the
default before issue 38).

Modes: ``passthrough`` (browser and phone speak PCMU), ``transcoding`` (the browser Opus, the phone PCMU) and
``transcoding-g722`` (the browser Opus, the phone G.722: 16 kHz audio both ways, issue 66 item 5; ours
transcodes it in Python with the G.722 concealment on the path, as the gateway does).

Rounds are interleaved (ours, rtpengine, floor, then the reverse order) so that the machine's minute-to-
minute drift hits all of them. CPU is the middle box's time on a CPU over the media period, per
call-second: the sum of its threads' /proc/<pid>/task/*/schedstat in nanoseconds (BoxCpu; utime + stime
from /proc/<pid>/stat, in clock ticks, when a thread ended meanwhile); RSS per call is its RSS during
media minus before the calls, per call; "lost" is end to end (sent by one peer, never heard by the
other); latency is end to end through the box, peers included (peer_pool.py says how it is matched).
/proc/loadavg is printed beside each round: the machine is shared.

Run: python bench/vs_rtpengine.py [1,10,50,100,200] [--seconds 6] [--rounds 1] [--modes passthrough,transcoding,transcoding-g722]
     [--boxes ours,rtpengine,floor,floor-gather,floor-cm,floor-gcm128,floor-plain]   (VS_RTPENGINE_PROFILE="cmd {pid}": see profile())
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from peer_pool import PHONE_CODECS, floor_keys, peer_main, summary, transcodes  # noqa: E402

# VS_RTPENGINE_PORT_BASE moves all three ranges (ours, rtpengine, floor: 2000 ports each from the base), so
# that two runs can share the machine (default 40000: ours 40000-41999, rtpengine 46000-47999, floor 48000+).
_BASE = int(os.environ.get("VS_RTPENGINE_PORT_BASE", "40000"))
OUR_PORTS = (_BASE, _BASE + 1999)
RTPENGINE_PORTS = (_BASE + 6000, _BASE + 7999) if _BASE == 40000 else (_BASE + 2000, _BASE + 3999)
FLOOR_FIRST_PORT = _BASE + 8000 if _BASE == 40000 else _BASE + 4000
# The floors' nice value: 0 (a plain process's); VS_RTPENGINE_FLOOR_NICE=-10 gives them our engine thread's
# (gateway/media/fastlane/_fastlane_thread.c run()), which preempts the peers as soon as a datagram arrives
# and so reads one per wake-up (floor_relay.c says what that costs).
FLOOR_NICE = os.environ.get("VS_RTPENGINE_FLOOR_NICE", "")
# name -> (floor_relay.c's mode, what the peers' browser side speaks (peer_pool), FLOOR_GATHER_MS)
FLOORS: dict[str, tuple[list[str], str, str]] = {
    "floor": (["--srtp-gcm256"], "srtp-gcm256", ""),
    "floor-gather": (["--srtp-gcm256"], "srtp-gcm256", "1"),
    "floor-cm": (["--srtp"], "srtp", ""),
    "floor-gcm128": (["--srtp-gcm"], "srtp-gcm", ""),
    "floor-plain": ([], "rtp", ""),
}
# media.loss_detect of the box ours (VS_RTPENGINE_LOSS_DETECT: seconds, or "off"): the gateway's 2 s by
# default. scale_bench.py's browsers send nothing until every call of the round is set up (8-9 s for 500 at
# once): every call's browser audio is then "lost" first, as a browser gone silent (see README.md).
_LOSS = os.environ.get("VS_RTPENGINE_LOSS_DETECT", "2.0")
# our engine threads' gathering wait (gateway.yaml's media.fast_path_coalesce_ms; its default 1 ms)
COALESCE_MS = float(os.environ.get("VS_RTPENGINE_COALESCE_MS", "1.0"))
LOSS_DETECT = None if _LOSS == "off" else float(_LOSS)
# ours' bridges measure their own latency (LatencyMeter: a clock read and a sample per forwarded packet, the
# "bridge-internal p99" of the notes) only with VS_RTPENGINE_BRIDGE_LATENCY=1: the gateway never turns the
# meter on, so by default ours runs as shipped (the end-to-end p50/p99, measured by the peers, is kept)
BRIDGE_LATENCY = os.environ.get("VS_RTPENGINE_BRIDGE_LATENCY", "") == "1"
CALLS_PER_PEER_PROCESS = 25
MAX_PEER_PROCESSES = 8  # more processes than cores still helps: each event loop's backlog is smaller
TICKS = os.sysconf("SC_CLK_TCK")
# the name of ours' fast-lane engine threads (gateway/media/fastlane/_fastlane.h ENGINE_THREAD_NAME)
ENGINE_THREAD = "fastlane"


def proc_cpu(pid: int) -> float:
    """utime + stime of every thread of ``pid`` (and its reaped ones), in seconds: /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def threads_cpu(pid: int) -> dict[int, int]:
    """Nanoseconds on a CPU of each live thread of ``pid``: /proc/<pid>/task/*/schedstat (first field)."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):  # a thread that just ended
            found[int(task.name)] = int((task / "schedstat").read_text().split()[0])
    return found


class BoxCpu:
    """The CPU seconds a box takes from this object's making to ``seconds()``: in nanoseconds from the threads'
    schedstat (at 1 call a 10 s round is about 7 clock ticks of /proc/<pid>/stat, so ticks alone read +-15
    %), or in ticks when a thread ended meanwhile (its time is only in /proc/<pid>/stat) or the two disagree
    by more than two ticks (a thread that came and went)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.ticks, self.threads = proc_cpu(pid), threads_cpu(pid)

    def seconds(self) -> float:
        ticks, threads = proc_cpu(self.pid) - self.ticks, threads_cpu(self.pid)
        if any(tid not in threads for tid in self.threads):
            return ticks
        precise = sum(ns - self.threads.get(tid, 0) for tid, ns in threads.items()) / 1e9
        return precise if abs(precise - ticks) <= 2 / TICKS else ticks

    def named(self, name: str) -> float:
        """CPU seconds since the making of the live threads called ``name`` (their comm), e.g. our engine
        threads (``_fastlane.ENGINE_THREAD_NAME``): the rest of the box's CPU is its event loop's."""
        total = 0
        for tid, ns in threads_cpu(self.pid).items():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{self.pid}/task/{tid}/comm").read_text().strip() == name:
                    total += ns - self.threads.get(tid, 0)
        return total / 1e9


def proc_rss(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# ----------------------------------------------------------------------------------- our bridge


async def _ours(conn: Connection, mode: str, opus_complexity: int | None = None) -> None:
    import sdp
    from gateway.media import fastlane
    from gateway.media.bridge import MediaBridge
    from gateway.media.bridge_settings import BridgeSettings
    from gateway.media.fastlane import EnginePool
    from gateway.media.rtp.dtls_srtp import DtlsCertificates
    from gateway.media.rtp.ports import PortRange, RtpPortAllocator
    from gateway.ops.gc_tuning import GcTuning

    allocator = RtpPortAllocator(PortRange(*OUR_PORTS))
    certificates = DtlsCertificates()  # one DTLS certificate per process, as the gateway's
    from gateway.media.webrtc import ice_consent

    ice_consent.set_consent_expiry(5.0)  # consent checks as the gateway's (media.inactivity_timeout 5 s)
    if opus_complexity is not None:  # as the gateway's media.opus_complexity (this tree's default otherwise)
        from gateway.media.codecs import opus_settings

        opus_settings.configure(opus_settings.OpusEncoderSettings(opus_complexity))
    pool = EnginePool(coalesce=COALESCE_MS / 1000) if fastlane.available() else None
    bridges: list[MediaBridge] = []
    tuning = GcTuning(lambda: len(bridges))  # as the gateway does by default (media.gc_tuning)
    tuning.start()
    ticker = asyncio.ensure_future(tuning.run())
    loop = asyncio.get_running_loop()
    conn.send("ready")
    offers = await loop.run_in_executor(None, conn.recv)
    answers = []
    for index, (offer, phone_port) in enumerate(offers):
        settings = BridgeSettings(
            allocator, host_addresses=("127.0.0.1",), call_id=f"b{index}", measure_latency=BRIDGE_LATENCY,
            inactivity_timeout=None, fast_lane=pool, dtls_certificates=certificates, loss_detect=LOSS_DETECT,
        )  # fmt: skip
        bridge = MediaBridge(settings, lambda event: None)
        plain = sdp.parse(await bridge.offer_to_sip(offer))
        phone = sdp.PlainTransport("127.0.0.1", phone_port)
        answer = sdp.answer(plain, codecs=[PHONE_CODECS[mode][0]], transport=phone)
        answers.append(
            (
                await bridge.answer_from_sip(sdp.write(answer)),
                (plain.connection.address if plain.connection else "127.0.0.1", plain.media[0].port),
            )
        )
        bridges.append(bridge)
    conn.send(answers)
    armed: list[int] = []  # the fast lane's armed lanes (2 per call), once a second

    async def count_armed() -> None:
        from gateway.media import coarse_timers  # the box's own ticks: no wakeup of the sampler's own

        while True:
            await coarse_timers.sleep(1.0, grid=coarse_timers.PERIODIC_GRID)
            links = [b.fast_lane.link for b in bridges if b.fast_lane is not None]
            armed.append(sum(int(k.native.armed(w)) for k in links if k is not None for w in (0, 1)))

    sampler = asyncio.ensure_future(count_armed())
    await loop.run_in_executor(None, conn.recv)  # stop
    sampler.cancel()
    stats = [b.stats() for b in bridges]
    linked = sum(1 for b in bridges if b.fast_lane is not None and b.fast_lane.link is not None)
    dump = os.environ.get("VS_RTPENGINE_OURS_DUMP")
    if dump:  # a JSON line per call, in the offers' order (scale_bench.py writes the peers' counts beside)
        with open(dump, "w") as out:
            for bridge, stat in zip(bridges, stats, strict=True):
                link = bridge.fast_lane.link if bridge.fast_lane is not None else None
                directions = {"web_to_sip": stat.web_to_sip, "sip_to_web": stat.sip_to_web}
                out.write(json.dumps({
                    "linked": link is not None,
                    "armed": [bool(link.native.armed(w)) for w in (0, 1)] if link is not None else None,
                    **{name: [p.received, p.forwarded, p.lost, p.dropped] for name, p in directions.items()},
                    "fast_lane_packets": stat.fast_lane_packets, "web_dropped": stat.web_dropped,
                    # the engine's own: SRTP drops, forwarded per lane, send errors per lane, SIP-side drops
                    "engine": list(link.native.counters()) if link is not None else None,
                    # disarms per lane (web->sip, sip->web): at a timestamp jump, another source/SSRC/PT, by Python
                    "disarms": list(link.native.disarms())
                    if link is not None and hasattr(link.native, "disarms") else None,
                    "browser": list(bridge.fast_lane.remote) if bridge.fast_lane is not None else None,
                }) + "\n")  # fmt: skip
    ticker.cancel()
    tuning.close()
    # the lanes' disarms, summed over the calls: at a timestamp jump, for another source/SSRC/PT, by Python
    links = [b.fast_lane.link for b in bridges if b.fast_lane is not None and b.fast_lane.link is not None]
    links = [k for k in links if hasattr(k.native, "disarms")]  # (not on an older build: --base)
    sums = [sum(v) for v in zip(*(k.native.disarms() for k in links), strict=True)] if links else [0] * 6
    disarms = "jump {} + {}, stranger {} + {}, Python {} + {}".format(*(sums[i] for i in (0, 3, 1, 4, 2, 5)))
    armed_first = [k.native.self_arms() for k in links if hasattr(k.native, "self_arms")]  # (Link.self_arms)
    # lanes the engine armed on their direction's first packet
    self_arms = "{} + {}".format(*(sum(v) for v in zip(*armed_first, strict=True))) if armed_first else None
    engines = pool.engines if pool is not None else []
    timings = [  # the engine threads' lock waits and long rounds (Engine.timing; None on an older build)
        getattr(engine.native, "timing", None) for engine in engines
    ]
    # their gathering waits, and those that ended late (Engine.overslept: gathering paused; not on older builds)
    waits = [(getattr(e.native, "coalesced", None), getattr(e.native, "overslept", None)) for e in engines]
    drops = [getattr(e.native, "queue_drops", None) for e in engines]  # RTP dropped for a Python behind
    for bridge in bridges:
        await bridge.close()
    if pool is not None:
        pool.close()
    internal = [s.latency.p99_ms for s in stats if s.latency is not None]
    paths = [path for s in stats for path in (s.web_to_sip, s.sip_to_web)]
    counters = {  # the bridges' own counters, both directions summed (bench/scale_bench.py prints them)
        key: sum(getattr(path, key) for path in paths) for key in ("received", "forwarded", "lost", "dropped")
    }
    counters["web_dropped"] = sum(s.web_dropped for s in stats)
    counters["fast_lane_packets"] = sum(s.fast_lane_packets for s in stats)
    counters["disarms"] = disarms
    counters["self_arms"] = self_arms
    counters["armed"] = " ".join(map(str, armed))
    counters["engines"] = "; ".join(
        f"lock waits > 1 ms {t[0]} (longest {1000 * t[1]:.1f} ms), rounds > 2 ms {t[2]} (longest {1000 * t[3]:.1f} ms), "
        f"gathering waits {w[0]} (late {w[1]}), queue drops {d}"
        for t, w, d in zip(timings, waits, drops, strict=True)
        if t is not None
    )
    conn.send({"linked": linked, "internal_p99_ms": max(internal, default=float("nan")), **counters})


def ours_main(
    conn: Connection, mode: str, tree: str | None = None, opus_complexity: int | None = None
) -> None:
    if tree is not None:  # another checkout of the gateway (A/B): found before the installed one
        sys.path.insert(0, tree)
    log = os.environ.get("VS_RTPENGINE_OURS_LOG")
    if log:  # the box's own lines (links made, lost, late), as the gateway logs them at INFO
        from gateway.logs import configure_logging

        configure_logging("INFO", "text", stream=open(log, "a"))  # noqa: SIM115  # open until the process ends
    asyncio.run(_ours(conn, mode, opus_complexity))


# ------------------------------------------------------------------------------------- the boxes


class Box:
    """One middle box for one round: ``pid``, ``calls(offers) -> answers``, ``close() -> notes``."""

    name = ""
    pid = 0
    engine_cpu = 0.0  # CPU seconds of its threads named ENGINE_THREAD over the last media_period

    def calls(self, offers: list[tuple[Any, int]], mode: str) -> list[tuple[Any, Any]]:
        raise NotImplementedError

    def close(self) -> str:
        return ""


class Ours(Box):
    name = "ours"

    def __init__(self, mode: str, tree: str | None = None, opus_complexity: int | None = None) -> None:
        self.counters: dict[str, Any] = {}
        context = multiprocessing.get_context("spawn")
        self.conn, theirs = context.Pipe()
        if tree is not None:
            self.name = "base"
        self.process = context.Process(target=ours_main, args=(theirs, mode, tree, opus_complexity))
        self.process.start()
        assert self.process.pid is not None
        self.pid = self.process.pid
        self.conn.recv()  # ready (imports done: the RSS baseline is taken after)

    def calls(self, offers: list[tuple[Any, int]], mode: str) -> list[tuple[Any, Any]]:
        self.conn.send(offers)
        answers: list[tuple[Any, Any]] = self.conn.recv()
        return answers

    def close(self) -> str:
        self.conn.send("stop")
        notes = self.conn.recv() if self.conn.poll(60) else {}
        self.counters = notes
        self.process.join(timeout=20)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        internal = notes.get("internal_p99_ms", math.nan)
        measured = f"{internal:.2f} ms" if not math.isnan(internal) else "not measured (as shipped)"
        return f"fast lane {notes.get('linked')}, bridge-internal p99 {measured}"


class RtpEngineBox(Box):
    name = "rtpengine"

    def __init__(self, workdir: Path) -> None:
        from peers.rtpengine import running_rtpengine

        self._stack = contextlib.ExitStack()
        self.engine = self._stack.enter_context(running_rtpengine(workdir, ports=RTPENGINE_PORTS))
        self.pid = self.engine.pid
        self.tags: list[tuple[str, str]] = []

    def calls(self, offers: list[tuple[Any, int]], mode: str) -> list[tuple[Any, Any]]:
        return asyncio.run(self._calls(offers, mode))

    async def _calls(self, offers: list[tuple[Any, int]], mode: str) -> list[tuple[Any, Any]]:
        import sdp
        from peers.rtpengine import NgClient, sip_answer_to_web, web_offer_to_sip

        answers = []
        codec = PHONE_CODECS[mode][0]  # the phone's: rtpengine transcodes Opus to it (transcoding modes)
        async with NgClient(self.engine.control) as ng:
            for index, (offer, phone_port) in enumerate(offers):
                call_id, from_tag, to_tag = f"call-{index}-{time.monotonic_ns()}", f"f{index}", f"t{index}"
                sip_offer = await ng.request(
                    web_offer_to_sip(call_id, from_tag, offer, transcode=transcodes(mode), to=codec)
                )
                plain = sdp.parse(sip_offer["sdp"])  # type: ignore[arg-type]
                phone = sdp.answer(
                    plain, codecs=[codec], transport=sdp.PlainTransport("127.0.0.1", phone_port)
                )
                web = await ng.request(sip_answer_to_web(call_id, from_tag, to_tag, sdp.write(phone)))
                web_sdp = web["sdp"]
                assert isinstance(web_sdp, bytes)
                address = plain.connection.address if plain.connection else "127.0.0.1"
                answers.append((web_sdp.decode(), (address, plain.media[0].port)))
                self.tags.append((call_id, from_tag))
        return answers

    def close(self) -> str:
        from peers.rtpengine import NgClient, NgError, delete

        async def bye() -> None:
            async with NgClient(self.engine.control) as ng:
                for call_id, from_tag in self.tags:
                    with contextlib.suppress(NgError):
                        await ng.request(delete(call_id, from_tag))

        asyncio.run(bye())
        self._stack.close()
        return ""


class Floor(Box):
    name = "floor"

    def __init__(self, binary: Path, calls: int, name: str = "floor") -> None:
        import importlib.util

        self.name = name  # a key of FLOORS
        srtp, self._legs, gather = FLOORS[name]
        command = [str(binary), str(calls), str(FLOOR_FIRST_PORT), *srtp]
        spec = importlib.util.find_spec("pylibsrtp._binding")  # libsrtp 2 with OpenSSL, as our engine's
        library = os.environ.get("VS_RTPENGINE_FLOOR_LIBSRTP") or (spec.origin if spec else None)
        environment = {
            **os.environ, "FLOOR_LIBSRTP": library or "", "FLOOR_NICE": FLOOR_NICE, "FLOOR_GATHER_MS": gather,
        }  # fmt: skip
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=environment
        )
        self.pid = self.process.pid
        assert self.process.stdout is not None
        self.ports = [int(p) for p in self.process.stdout.readline().split()[1:]]

    def calls(self, offers: list[tuple[Any, int]], mode: str) -> list[tuple[Any, Any]]:
        assert self.process.stdin is not None and self.process.stdout is not None
        remotes = [port for pair in offers for port in pair]  # socket 2c: the "web" phone's, 2c+1 the phone's
        if self.legs != "rtp":  # the keys the browser side protects with, then unprotects with
            self.process.stdin.write(" ".join(key.hex() for key in floor_keys(self.legs)) + "\n")
        self.process.stdin.write("\n".join(map(str, remotes)) + "\n")
        self.process.stdin.flush()
        self.process.stdout.readline()  # ready
        return [
            (("127.0.0.1", self.ports[2 * c]), ("127.0.0.1", self.ports[2 * c + 1]))
            for c in range(len(offers))
        ]

    @property
    def legs(self) -> str:  # the peers' (peer_pool): what the floor's browser side speaks
        return self._legs

    def close(self) -> str:
        self.process.terminate()
        out, _ = self.process.communicate(timeout=10)
        return out.strip()


def build_floor(workdir: Path) -> Path:
    binary = workdir / "floor_relay"
    source = str(ROOT / "bench" / "floor_relay.c")
    subprocess.run(["cc", "-O2", "-rdynamic", "-o", str(binary), source, "-ldl"], check=True)
    return binary


# ---------------------------------------------------------------------------------------- rounds


@contextlib.contextmanager
def peer_processes(target: Callable[..., None], args: list[tuple[Any, ...]]) -> Iterator[list[Connection]]:
    """One spawned process per ``args``, ``target(conn, *args)``: the orchestrator's ends of the pipes."""
    context = multiprocessing.get_context("spawn")
    conns, workers = [], []
    for arguments in args:
        mine, theirs = context.Pipe()
        worker = context.Process(target=target, args=(theirs, *arguments))
        worker.start()
        conns.append(mine)
        workers.append(worker)
    try:
        yield conns
    finally:
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.send("bye")
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
                worker.join()


def profile(box: Box) -> subprocess.Popen[bytes] | None:
    """VS_RTPENGINE_PROFILE: a shell command run during the media period ({pid}, {box} replaced), e.g.
    ``perf stat --per-thread -p {pid} -- sleep 3``; it should end before the media do (its output goes to
    stderr, after it the round waits for it)."""
    command = os.environ.get("VS_RTPENGINE_PROFILE")
    if not command:
        return None
    return subprocess.Popen(command.format(pid=box.pid, box=box.name), shell=True, stdout=sys.stderr)


def shares(count: int, processes: int) -> list[int]:
    """``count`` calls spread over ``processes`` as evenly as can be."""
    return [count // processes + (1 if i < count % processes else 0) for i in range(processes)]


@contextlib.contextmanager
def peer_pool(count: int, mode: str, legs: str, seconds: float) -> Iterator[list[Connection]]:
    processes = max(1, min(MAX_PEER_PROCESSES, math.ceil(count / CALLS_PER_PEER_PROCESS)))
    with peer_processes(
        peer_main, [(share, mode, legs, seconds) for share in shares(count, processes)]
    ) as conns:
        yield conns


def connect(box: Box, conns: list[Connection], mode: str, timeout: float) -> None:
    """The peers' offers to the box, its answers back, until every peer process says "ready"."""
    offers = [conn.recv() for conn in conns]
    answers = box.calls([offer for batch in offers for offer in batch], mode)
    at = 0
    for conn, batch in zip(conns, offers, strict=True):
        conn.send(answers[at : at + len(batch)])
        at += len(batch)
    for conn in conns:
        if not conn.poll(timeout):
            raise TimeoutError(f"{box.name} x{len(answers)}: the peers did not connect")
        conn.recv()  # ready


def media_period(
    box: Box, conns: list[Connection], warmup: float = 0.0
) -> tuple[float, float, int, list[Any]]:
    """From "go" to the peers until they all "sent": the box's CPU seconds, wall seconds, RSS and the peers'
    reports, measured from ``warmup`` seconds after the "go"."""
    for conn in conns:
        conn.send("go")
    time.sleep(warmup)
    meter, wall_start = BoxCpu(box.pid), time.monotonic()
    profiler = profile(box)
    for conn in conns:
        conn.recv()  # sent
    cpu, wall = meter.seconds(), time.monotonic() - wall_start
    box.engine_cpu = meter.named(ENGINE_THREAD)
    if profiler is not None:
        profiler.wait()
    rss = proc_rss(box.pid)
    for conn in conns:
        conn.send("report")
    return cpu, wall, rss, [conn.recv() for conn in conns]


def run_round(box: Box, count: int, mode: str, seconds: float) -> dict[str, Any]:
    legs = box.legs if isinstance(box, Floor) else "web"
    rss_before = proc_rss(box.pid)
    with peer_pool(count, mode, legs, seconds) as conns:
        connect(box, conns, mode, 120)
        time.sleep(0.5)
        load = loadavg()
        cpu, wall, rss, reports = media_period(box, conns)
    notes = box.close() + engine_note(box, count, wall)
    results = [call for batch, _ in reports for call in batch]
    delays = [d for call in results for d in call[4]]
    sent = sum(c[0] + c[2] for c in results)
    received = sum(c[1] + c[3] for c in results)
    return {
        "box": box.name, "mode": mode, "calls": count, "load": load, "notes": notes,
        "cpu": cpu / (count * wall), "rss_kib": (rss - rss_before) / count / 1024,
        # CPU per packet the box delivered: a box that drops packets (a saturated machine) does less work
        # and reads cheaper per call-second; per delivered packet it does not
        "us_per_packet": 1e6 * cpu / max(1, received),
        "sent": sent, "lost": sent - received,
        "p50_ms": 1000 * summary(delays, 0.5), "p99_ms": 1000 * summary(delays, 0.99),
        "peer_cpu": sum(cpu for _, cpu in reports) / wall, "peer_processes": len(reports),
    }  # fmt: skip


def engine_note(box: Box, count: int, wall: float) -> str:
    """Ours' engine threads' share of its CPU (the rest is the event loop's: RTCP, consent, syncs)."""
    if box.engine_cpu <= 0:
        return ""
    return f", engine threads {box.engine_cpu / (count * wall):.4f} s/call-s"


def saturated(r: dict[str, Any]) -> bool:
    """The box and its peers took most of the machine: latency and loss then measure the machine (the
    peers' event loops fall behind), and per call-second a box that drops packets reads cheaper."""
    return bool(r["peer_cpu"] + r["cpu"] * r["calls"] > 0.85 * (os.cpu_count() or 1))


def ratio(ours: float, theirs: float) -> float:
    return ours / theirs if theirs > 0 else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("calls", nargs="?", default="1,10,50,100,200", help="comma-separated call counts")
    parser.add_argument("--seconds", type=float, default=6.0, help="media time per round")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds per case (medians printed)")
    parser.add_argument(
        "--modes", default="passthrough,transcoding", help="of passthrough, transcoding, transcoding-g722"
    )
    parser.add_argument("--boxes", default="ours,rtpengine,floor,floor-gather")
    parser.add_argument(
        "--base", help="another checkout of the gateway (its .so built), run as the box 'base'"
    )
    parser.add_argument(
        "--opus-complexity", type=int, help="the box ours's media.opus_complexity (default: the tree's)"
    )
    args = parser.parse_args()
    boxes = args.boxes.split(",") + (["base"] if args.base else [])
    print(
        f"ours vs rtpengine vs a bare C relay: {os.cpu_count()} CPUs, {args.seconds:g} s of media per round, "
        f"peers in processes of up to {CALLS_PER_PEER_PROCESS} calls (at most {MAX_PEER_PROCESSES}); load average {loadavg()} at start"
    )
    print(
        f"{'mode':<17}{'calls':>6}{'box':>10}{'CPU s/call-s':>14}{'RSS KiB/call':>14}{'sent':>8}{'lost':>7}"
        f"{'p50 ms':>8}{'p99 ms':>8}{'us/pkt':>8}{'peers CPU':>10}  loadavg / notes"
    )
    table: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="vs-rtpengine-") as temp:
        workdir = Path(temp)
        floor_binary = build_floor(workdir) if any(b.startswith("floor") for b in boxes) else None
        for mode in args.modes.split(","):
            for count in (int(c) for c in args.calls.split(",")):
                for round_index in range(args.rounds):
                    order = boxes if round_index % 2 == 0 else boxes[::-1]
                    for name in order:
                        if name.startswith("floor") and (mode != "passthrough" or floor_binary is None):
                            continue
                        box: Box
                        if name == "ours":
                            box = Ours(mode, opus_complexity=args.opus_complexity)
                        elif name == "base":
                            box = Ours(mode, args.base)
                        elif name == "rtpengine":
                            box = RtpEngineBox(workdir)
                        else:
                            assert floor_binary is not None
                            box = Floor(floor_binary, count, name)
                        r = run_round(box, count, mode, args.seconds)
                        table.setdefault((mode, count, name), []).append(r)
                        print(
                            f"{mode:<17}{count:>6}{name:>10}{r['cpu']:>14.4f}{r['rss_kib']:>14.0f}{r['sent']:>8}"
                            f"{r['lost']:>7}{r['p50_ms']:>8.2f}{r['p99_ms']:>8.2f}{r['us_per_packet']:>8.1f}"
                            f"{100 * r['peer_cpu']:>8.0f}%  [{r['load']}] {r['peer_processes']} peer procs"
                            + (f"; {r['notes']}" if r["notes"] else "")
                            + ("; SATURATED" if saturated(r) else ""),
                            flush=True,
                        )

    def median(mode: str, count: int, box: str, key: str) -> float:
        rows = table.get((mode, count, box))
        return statistics.median(r[key] for r in rows) if rows else float("nan")

    if args.base:
        print("\nours / base (CPU, RSS per call, end-to-end latency p50 and p99: medians)")
        for mode, count in sorted({(m, c) for m, c, b in table if b == "base"}):
            cpu = (median(mode, count, "ours", "cpu"), median(mode, count, "base", "cpu"))
            rss = (median(mode, count, "ours", "rss_kib"), median(mode, count, "base", "rss_kib"))
            p50 = (median(mode, count, "ours", "p50_ms"), median(mode, count, "base", "p50_ms"))
            p99 = (median(mode, count, "ours", "p99_ms"), median(mode, count, "base", "p99_ms"))
            print(
                f"{mode:<17}{count:>6}  CPU {cpu[0]:.4f} / {cpu[1]:.4f} = {ratio(*cpu):.2f}"
                f"  RSS {rss[0]:.0f} / {rss[1]:.0f} KiB = {ratio(*rss):.2f}"
                f"  p50 {p50[0]:.2f} / {p50[1]:.2f} ms ({p50[0] - p50[1]:+.2f})"
                f"  p99 {p99[0]:.2f} / {p99[1]:.2f} ms ({p99[0] - p99[1]:+.2f})"
            )
    print(
        "\nmedians and ratios (ours / rtpengine, ours / floor, ours / gathering floor: below 1 is better for us)"
    )
    print(
        "(floor: the SRTP floor with the calls' AEAD_AES_256_GCM, nice 0; gather: the same waiting up to 1 ms "
        "to read several packets per round, as our engine; cm: AES_CM_128_HMAC_SHA1_80; gcm128: "
        "AEAD_AES_128_GCM; plain: no SRTP)"
    )
    print(f"{'mode':<17}{'calls':>6}{'CPU ours':>10}{'rtpengine':>11}{'floor':>9}{'gather':>8}{'cm':>8}{'gcm128':>8}{'plain':>8}"
          f"{'vs rtpe':>9}{'vs floor':>10}{'vs gather':>10}"
          f"{'RSS ours':>10}{'rtpe':>7}{'lost ours':>10}{'rtpe':>7}{'p99 ours':>10}{'rtpe':>9}{'us/pkt ours':>12}{'rtpe':>7}{'ratio':>7}")  # fmt: skip

    for mode, count in sorted({(m, c) for m, c, _ in table}, key=lambda k: (k[0] != "passthrough", k[1])):
        ours, rtpe, floor, gather = (
            median(mode, count, b, "cpu") for b in ("ours", "rtpengine", "floor", "floor-gather")
        )
        packet = (
            median(mode, count, "ours", "us_per_packet"),
            median(mode, count, "rtpengine", "us_per_packet"),
        )
        others = "".join(
            f"{median(mode, count, b, 'cpu'):>8.4f}" for b in ("floor-cm", "floor-gcm128", "floor-plain")
        )
        print(
            f"{mode:<17}{count:>6}{ours:>10.4f}{rtpe:>11.4f}{floor:>9.4f}{gather:>8.4f}{others}"
            f"{ratio(ours, rtpe):>9.2f}{ratio(ours, floor):>10.2f}{ratio(ours, gather):>10.2f}"
            f"{median(mode, count, 'ours', 'rss_kib'):>10.0f}{median(mode, count, 'rtpengine', 'rss_kib'):>7.0f}"
            f"{median(mode, count, 'ours', 'lost'):>10.0f}{median(mode, count, 'rtpengine', 'lost'):>7.0f}"
            f"{median(mode, count, 'ours', 'p99_ms'):>10.1f}{median(mode, count, 'rtpengine', 'p99_ms'):>9.2f}"
            f"{packet[0]:>12.1f}{packet[1]:>7.1f}{ratio(*packet):>7.2f}"
        )
    print(f"load average {loadavg()} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
