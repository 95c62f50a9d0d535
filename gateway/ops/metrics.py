"""`/metrics`: the gateway's figures in the Prometheus text format (prometheus-client, one registry per gateway).

How it works: most figures are read from the gateway's own state when Prometheus scrapes (`StateCollector`):
calls by state and direction (the call registry), sessions by dialect, registrations and the PBX, SIP
messages (the transaction layer's counters, gateway/sip/transactions/stats.py), RTP ports, and media packets (the
figures of the calls that ended plus those of the live bridges). What happens once per call (its setup
time, how it ended, its media quality per leg) is observed when the call ends (`call_ended`); nothing
runs per packet. Two probes run beside: the event loop's lag (how late a periodic sleep wakes up) and
the garbage collector's pauses (`gc.callbacks`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import platform
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, Info, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway import __version__
from gateway.calls.states import CallDirection, CallState
from gateway.ops.records import CallRecord
from sipcore.registration import RegState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LEGS = ("web", "sip")
# The label values a labelled gauge always shows, at 0 when nothing is there (issue 36: a series that
# appears only when non-zero breaks rate() and alerts on absence): a live call's states and directions,
# the web dialects (wiring.py's names), the registrations' states.
_LIVE_STATES: Final = tuple(s.value for s in CallState if s not in (CallState.IDLE, CallState.CLOSED))
_DIRECTIONS: Final = tuple(d.value for d in CallDirection)
DIALECTS: Final = ("json", "http", "sip_ws", "jsonrpc", "room")
_REG_STATES: Final = tuple(s.value for s in RegState)

# (attribute, metric name, help, labels, buckets)
_HISTOGRAMS: Final = (
    ("setup", "call_setup_seconds", "Time from the call's start to connected", ("direction",),
     (0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60)),
    ("jitter", "media_jitter_seconds", "Interarrival jitter per leg, when a call ends", ("leg",),
     (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16)),
    ("rtt", "media_rtt_seconds", "RTCP round-trip time per leg, when a call ends", ("leg",),
     (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6)),
    ("loss", "media_loss_ratio", "Share of RTP packets lost per leg, when a call ends", ("leg",),
     (0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)),
    ("mos", "call_mos", "Estimated MOS per leg (E-model), when a call ends", ("leg",),
     (1, 2, 2.5, 3, 3.5, 4, 4.3, 4.5)),
    ("loop_lag", "event_loop_lag_seconds", "How late the event loop runs a periodic timer", (),
     (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)),
    ("gc_pause", "gc_pause_seconds", "Garbage collector pauses by generation", ("generation",),
     (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5)),
)  # fmt: skip


class GatewayState(Protocol):
    """What the collector reads at scrape time (the app implements it over its parts)."""

    def calls(self) -> Iterable[tuple[str, str]]:
        """(state, direction) of every live call."""
        ...

    def sessions(self) -> Iterable[str]:
        """The dialect of every open web session (json, http, sip_ws, jsonrpc, room)."""
        ...

    def call_dialects(self) -> Iterable[str]:
        """The dialect of the web session of every live call ("none" while it has none: ringing)."""
        ...

    def registrations(self) -> Mapping[str, str]: ...

    def pbx(self) -> Mapping[str, object] | None: ...  # the keep-alive's report (state, target, rtt)

    def sip_stats(self) -> Any:
        """The transaction layer's `SipStats`, or None before it runs."""
        ...

    def live_media(self) -> Iterable[Mapping[str, Mapping[str, object]]]:
        """`MediaBridge.quality()` of each live call with a bridge."""
        ...

    def live_paths(self) -> tuple[int, int, int]:
        """(fast-lane packets, all forwarded packets, transcoding calls) of the live bridges."""
        ...

    def login_alarms(self) -> int:
        """User ids whose failed logins raised the login throttle's alarm (issue 32, item 5)."""
        ...

    def rtp_ports(self) -> tuple[int, int]:
        """(free, in use) RTP port pairs."""
        ...

    def fast_lane(self) -> tuple[int, Mapping[str, int]] | None:
        """The fast lane's engine threads now and their counts since start (EngineCounters' fields), or
        None: the fast lane is off."""
        ...

    def refusals(self) -> Iterable[tuple[str, str, int]]:
        """(listener, reason, count) of the connections each HTTP listener refused or closed early."""
        ...

    def logins_throttled(self) -> int:
        """Logins told to wait by the login throttle (an address that guessed too often)."""
        ...

    def cluster(self) -> tuple[bool, str] | None:
        """(Redis reachable, a sentence) in a cluster; None without one."""
        ...


# the engine threads' counts (gateway/media/fastlane/engine.py EngineCounters): a media engine sharing
# its CPUs shows in late_waits (its gathering then pauses) and long_rounds
_ENGINE_COUNTERS = (
    ("gathering_waits", "Rounds after which a fast-lane thread waited up to media.fast_path_coalesce_ms"),
    ("late_waits", "Gathering waits that ended over 0.5 ms late (the CPUs busy elsewhere)"),
    ("long_rounds", "Fast-lane rounds that held the engine's lock over 2 ms"),
    ("lock_waits", "Times a fast-lane thread waited over 1 ms for the event loop to release its lock"),
    ("queue_drops", "Datagrams a fast-lane thread dropped because the event loop fell behind"),
)


@dataclass(slots=True)
class _Ended:
    """Media figures of the calls that ended (added to the live ones at scrape time)."""

    packets: Tally[tuple[str, str]]  # (leg, sent|received)
    lost: Tally[str]
    fast: int = 0
    forwarded: int = 0


class StateCollector(Collector):
    def __init__(self, state: GatewayState, ended: _Ended) -> None:
        self._state = state
        self._ended = ended

    def collect(self) -> Iterable[Metric]:
        state = self._state
        calls = GaugeMetricFamily(
            "gateway_calls", "Live calls by state and direction", labels=["state", "direction"]
        )
        counts = Tally({(s, d): 0 for s in _LIVE_STATES for d in _DIRECTIONS})
        counts.update(state.calls())
        for (call_state, direction), count in sorted(counts.items()):
            calls.add_metric([call_state, direction], count)
        yield calls
        sessions = GaugeMetricFamily(
            "gateway_web_sessions", "Open web sessions by dialect", labels=["dialect"]
        )
        dialects = Tally(dict.fromkeys(DIALECTS, 0))
        dialects.update(state.sessions())
        for dialect, count in sorted(dialects.items()):
            sessions.add_metric([dialect], count)
        yield sessions
        by_dialect = GaugeMetricFamily(
            "gateway_calls_by_dialect",
            "Live calls by the dialect of their web session (none: not yet attached, e.g. ringing)",
            labels=["dialect"],
        )
        dialects = Tally(dict.fromkeys((*DIALECTS, "none"), 0))
        dialects.update(state.call_dialects())
        for dialect, count in sorted(dialects.items()):
            by_dialect.add_metric([dialect], count)
        yield by_dialect
        registrations = GaugeMetricFamily(
            "gateway_registrations", "Registrations of users at the PBX by state", labels=["state"]
        )
        regs = Tally(dict.fromkeys(_REG_STATES, 0))
        regs.update(state.registrations().values())
        for reg_state, count in sorted(regs.items()):
            registrations.add_metric([reg_state], count)
        yield registrations
        pbx = state.pbx()  # the keep-alive's report (keepalive.py), None without one
        if pbx is not None:
            yield GaugeMetricFamily(
                "gateway_pbx_reachable",
                "1 when the PBX answers the OPTIONS keep-alive, 0 when it does not or has not yet",
                value=1 if pbx.get("state") == "reachable" else 0,
            )
        reports: Mapping[str, Mapping[str, object]] = getattr(state, "pbxs", dict)()
        if reports:  # every PBX by name (several PBXs, config/pbxs.py); the one above is `default`
            by_name = GaugeMetricFamily(
                "gateway_pbxs_reachable",
                "1 when the named PBX answers its OPTIONS keep-alive",
                labels=["pbx"],
            )
            for name, report in sorted(reports.items()):
                by_name.add_metric([name], 1 if report.get("state") == "reachable" else 0)
            yield by_name
        cluster = state.cluster()
        if cluster is not None:  # degraded while 0: calls go on and new ones work here, not across instances
            yield GaugeMetricFamily(
                "gateway_cluster_redis_up",
                "1 when this instance's last Redis command succeeded, 0 while Redis is unreachable",
                value=1 if cluster[0] else 0,
            )
        yield from self._sip(state.sip_stats())
        yield from self._media(state)
        free, used = state.rtp_ports()
        ports = GaugeMetricFamily("gateway_rtp_ports", "RTP port pairs", labels=["state"])
        ports.add_metric(["free"], free)
        ports.add_metric(["in_use"], used)
        yield ports
        refused = CounterMetricFamily(
            "gateway_connections_refused",
            "HTTP/WebSocket connections refused or closed before a request, by listener and reason "
            "(limits.http: per-address and total connections, TLS handshakes, the descriptors kept for "
            "media, too slow to send a header)",
            labels=["listener", "reason"],
        )
        for listener, reason, count in sorted(state.refusals()):
            refused.add_metric([listener, reason], count)
        yield refused
        yield CounterMetricFamily(
            "gateway_logins_throttled",
            "Logins refused with a wait by the login throttle (an address that failed too often)",
            value=state.logins_throttled(),
        )
        yield CounterMetricFamily(
            "gateway_login_alarms",
            "User ids guessed at too often (the login throttle's alarm; the user is not blocked)",
            value=state.login_alarms(),
        )

    def _sip(self, stats: Any) -> Iterable[Metric]:
        if stats is None:
            return
        for name, counts, text in (
            ("gateway_sip_messages_received", stats.received, "SIP messages received"),
            ("gateway_sip_messages_sent", stats.sent, "SIP messages sent"),
        ):
            family = CounterMetricFamily(name, text, labels=["method", "status", "transport"])
            # no label value is empty: a request's status is "none", a method not known "unknown"
            for (method, status, transport), count in sorted(counts.items()):
                family.add_metric([method or "unknown", status or "none", transport], count)
            yield family
        family = CounterMetricFamily(
            "gateway_sip_retransmissions",
            "SIP retransmissions: requests, responses, 2xx until their ACK, ACKs again",
            labels=["kind", "transport"],
        )
        for (kind, transport), count in sorted(stats.retransmissions.items()):
            family.add_metric([kind, transport], count)
        yield family
        for name, counts, text, label in (
            ("gateway_sip_parse_errors", stats.parse_errors, "Unparseable SIP messages", "source"),
            ("gateway_sip_policy_refusals", stats.refusals, "SIP requests refused by policy", "source"),
        ):
            family = CounterMetricFamily(name, text, labels=[label])
            for key, count in sorted(counts.items()):
                family.add_metric([key], count)
            yield family

    def _media(self, state: GatewayState) -> Iterable[Metric]:
        packets = Tally(self._ended.packets)
        lost = Tally(self._ended.lost)
        for quality in state.live_media():
            for leg in _LEGS:
                figures = quality.get(leg, {})
                for way in ("sent", "received"):
                    packets[(leg, way)] += int(figures.get(f"packets_{way}") or 0)  # type: ignore[call-overload]
                lost[leg] += max(0, int(figures.get("packets_lost") or 0))  # type: ignore[call-overload]
        family = CounterMetricFamily(
            "gateway_media_packets", "RTP packets per leg", labels=["leg", "direction"]
        )
        for (leg, way), count in sorted(packets.items()):
            family.add_metric([leg, way], count)
        yield family
        family = CounterMetricFamily("gateway_media_packets_lost", "RTP packets lost per leg", labels=["leg"])
        for leg, count in sorted(lost.items()):
            family.add_metric([leg], count)
        yield family
        fast, forwarded, transcoding = state.live_paths()
        fast += self._ended.fast
        forwarded += self._ended.forwarded
        family = CounterMetricFamily(
            "gateway_media_forwarded_packets", "RTP packets forwarded", labels=["path"]
        )
        family.add_metric(["fast_lane"], fast)
        family.add_metric(["python"], max(0, forwarded - fast))
        yield family
        yield GaugeMetricFamily("gateway_transcoding_calls", "Live calls that transcode", value=transcoding)
        yield from self._fast_lane(state)
        yield from self._recording(state)

    def _recording(self, state: GatewayState) -> Iterable[Metric]:
        """The recording disk's free space (recording.min_free_mb) and the starts refused, when a call
        may be recorded (`recording()`: optional on a state, (disk report, refusals by reason) or None)."""
        report = getattr(state, "recording", lambda: None)()
        if report is None:
            return
        disk, refusals = report
        free = disk.get("free_bytes")
        if isinstance(free, int):
            yield GaugeMetricFamily(
                "gateway_recording_disk_free_bytes",
                "Free bytes on the recording directory's disk (no recording starts under recording.min_free_mb)",
                value=free,
            )
        refused = CounterMetricFamily(
            "gateway_recordings_refused",
            "Recordings not started, by reason (call_cap: recording.max_per_call; user_cap: "
            "recording.max_per_user; disk: under recording.min_free_mb)",
            labels=["reason"],
        )
        for reason, count in sorted(refusals.items()):
            refused.add_metric([reason], count)
        yield refused

    def _fast_lane(self, state: GatewayState) -> Iterable[Metric]:
        engines = state.fast_lane()
        if engines is None:
            return
        threads, counts = engines
        yield GaugeMetricFamily("gateway_fast_lane_threads", "The fast lane's engine threads", value=threads)
        for key, text in _ENGINE_COUNTERS:
            yield CounterMetricFamily(f"gateway_fast_lane_{key}", text, value=counts.get(key, 0))


class GatewayMetrics:
    """The gateway's Prometheus registry: the scrape-time collector plus what is observed per call."""

    def __init__(self, state: GatewayState, clock: Callable[[], float] = time.perf_counter) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._clock = clock
        self._ended = _Ended(Tally(), Tally())
        self.registry.register(StateCollector(state, self._ended))
        registry = self.registry
        # the process's CPU, memory and open files, and Python's version (issue 36: none were exported)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        Info("gateway_build", "The gateway's version", registry=registry).info(
            {"version": __version__, "python": platform.python_version()}
        )
        self.calls = Counter(
            "gateway_calls_ended",
            "Calls ended by direction and outcome",
            ["direction", "outcome"],
            registry=registry,
        )
        self.failures = Counter(
            "gateway_call_failures",
            "Calls that never connected, by reason and SIP status",
            ["direction", "reason", "sip_status"],
            registry=registry,
        )
        self.media_lost = Counter(
            "gateway_media_lost",
            "Times a browser's audio went missing mid-call (silence: no RTP for media.loss_detect "
            "seconds; detached: its leg closed to wait for a reconnect; unanswered: on hold, no answer to "
            "ICE consent checks)",
            ["leg", "cause"],
            registry=registry,
        )
        for cause in ("silence", "detached", "unanswered"):  # shown at 0 before the first loss
            self.media_lost.labels("web", cause)
        histogram = {
            name: Histogram(f"gateway_{metric}", text, labels, buckets=buckets, registry=registry)
            for name, metric, text, labels, buckets in _HISTOGRAMS
        }
        self.setup, self.jitter, self.rtt = histogram["setup"], histogram["jitter"], histogram["rtt"]
        self.loss, self.mos = histogram["loss"], histogram["mos"]
        self.loop_lag, self.gc_pause = histogram["loop_lag"], histogram["gc_pause"]
        # the per-call series are shown at 0 before the first call too: rate() and increase() see no
        # increase in a series' first sample, so a series born with the first call never counted it
        for direction in _DIRECTIONS:
            self.setup.labels(direction)
            for outcome in ("answered", "failed"):
                self.calls.labels(direction, outcome)
        for leg in _LEGS:
            for per_leg in (self.jitter, self.rtt, self.loss, self.mos):
                per_leg.labels(leg)
        self._gc_started: float | None = None
        self._lag_task: asyncio.Task[None] | None = None

    # --- per call -------------------------------------------------------------------------------
    def call_ended(self, record: CallRecord, fast_packets: int = 0, forwarded: int = 0) -> None:
        direction = record.direction
        connected = record.answer_time is not None
        self.calls.labels(direction, "answered" if connected else "failed").inc()
        if connected and record.setup_seconds is not None:
            self.setup.labels(direction).observe(record.setup_seconds)
        if not connected:
            status = str(record.sip_status) if record.sip_status is not None else "none"
            self.failures.labels(direction, record.end_reason, status).inc()
        for leg, figures in record.legs.items():
            for way in ("sent", "received"):
                self._ended.packets[(leg, way)] += (
                    figures.packets_sent if way == "sent" else figures.packets_received
                )
            self._ended.lost[leg] += max(0, figures.packets_lost)
            if figures.jitter is not None:
                self.jitter.labels(leg).observe(figures.jitter)
            if figures.rtt is not None:
                self.rtt.labels(leg).observe(figures.rtt)
            expected = figures.packets_received + max(0, figures.packets_lost)
            if expected:
                self.loss.labels(leg).observe(max(0, figures.packets_lost) / expected)
            if figures.mos is not None:
                self.mos.labels(leg).observe(figures.mos)
        self._ended.fast += fast_packets
        self._ended.forwarded += forwarded

    # --- probes -----------------------------------------------------------------------------------
    def start(self, lag_interval: float = 0.5) -> None:
        gc.callbacks.append(self._gc)
        self._lag_task = asyncio.get_running_loop().create_task(self._lag(lag_interval), name="loop-lag")

    async def close(self) -> None:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._gc)
        if self._lag_task is not None:
            self._lag_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lag_task
            self._lag_task = None

    async def _lag(self, interval: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            planned = loop.time() + interval
            await asyncio.sleep(interval)
            self.loop_lag.observe(max(0.0, loop.time() - planned))

    def _gc(self, phase: str, info: Mapping[str, int]) -> None:
        if phase == "start":
            self._gc_started = self._clock()
        elif self._gc_started is not None:
            self.gc_pause.labels(str(info.get("generation", ""))).observe(self._clock() - self._gc_started)
            self._gc_started = None
