"""`QualityMonitor`: one timer samples every live call's legs, feeds /metrics, tells web users, raises alarms.

Every `quality.interval` seconds (gateway.yaml, gateway/config/ops.py) one asyncio task walks the live
calls (`LiveCalls`, implemented by gateway/ops/wiring.py over the driver): for each it runs the call's
`CallQuality` (gateway/ops/quality.py) on `MediaBridge.quality()`, observes each leg's sample in the
histograms below, sends the carrying session a `quality` event when the report says so (the session's
dialect words it: /ws, HTTP progress, JSON-RPC notifications), and hands each alarm raised or cleared to
the alarm sinks (`Operations` wires the webhooks: `quality_alarm`), logged at WARNING with the call id.
There is no task per call; a call that ended is forgotten at the next tick.

Metrics (label `leg`: web or sip), one observation per leg per sample: `gateway_call_leg_mos`,
`gateway_call_leg_loss_ratio`, `gateway_call_leg_jitter_seconds`, `gateway_call_leg_rtt_seconds`, and the
counter `gateway_call_quality_alarms_total` (raised alarms).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram

from gateway.config.ops import QualitySection
from gateway.ops.quality import LEGS, Alarm, AlarmState, CallQuality, QualityReport

logger = logging.getLogger(__name__)

Notify = Callable[[Mapping[str, object]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class LiveCall:
    """A live call as the monitor sees it: its figures, and how to tell its web user (None: nobody)."""

    call_id: str
    quality: Mapping[str, Mapping[str, object]]
    notify: Notify | None = None


class LiveCalls(Protocol):
    def quality_calls(self) -> Iterable[LiveCall]:
        """The live calls whose media the gateway carries."""
        ...


@dataclass(frozen=True, slots=True)
class QualityAlarm:
    """What the alarm sinks get: the call and the leg's alarm (raised or cleared)."""

    call_id: str
    alarm: Alarm

    def to_json(self) -> dict[str, object]:
        return self.alarm.to_json()


# (attribute, metric name, help, buckets)
_HISTOGRAMS = (
    ("mos", "call_leg_mos", "Estimated MOS per leg of live calls, each sample", (1, 2, 2.5, 3, 3.5, 4, 4.3, 4.5)),
    ("loss", "call_leg_loss_ratio", "Share of packets lost per leg of live calls, each sample",
     (0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)),
    ("jitter", "call_leg_jitter_seconds", "Interarrival jitter per leg of live calls, each sample",
     (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16)),
    ("rtt", "call_leg_rtt_seconds", "RTCP round-trip time per leg of live calls, each sample",
     (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6)),
)  # fmt: skip


class QualityMetrics:
    """The live histograms and the alarm counter, on the gateway's registry; every leg shown from start."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._histograms = {
            name: Histogram(f"gateway_{metric}", text, ["leg"], buckets=buckets, registry=registry)
            for name, metric, text, buckets in _HISTOGRAMS
        }
        self.alarms = Counter(
            "gateway_call_quality_alarms", "Quality alarms raised per leg (quality.alarm_mos)", ["leg"],
            registry=registry,
        )  # fmt: skip
        for leg in LEGS:
            self.alarms.labels(leg)
            for histogram in self._histograms.values():
                histogram.labels(leg)

    def observe(self, report: QualityReport) -> None:
        for leg, sample in report.legs.items():
            self._histograms["mos"].labels(leg).observe(sample.mos)
            self._histograms["loss"].labels(leg).observe(sample.loss)
            if sample.jitter is not None:
                self._histograms["jitter"].labels(leg).observe(sample.jitter)
            if sample.rtt is not None:
                self._histograms["rtt"].labels(leg).observe(sample.rtt)
        for alarm in report.alarms:
            if alarm.state is AlarmState.RAISED:
                self.alarms.labels(alarm.leg).inc()


class QualityMonitor:
    def __init__(
        self, calls: LiveCalls, settings: QualitySection, metrics: QualityMetrics | None = None
    ) -> None:
        self._calls = calls
        self.settings = settings
        self._metrics = metrics
        self._tracked: dict[str, CallQuality] = {}
        self._task: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[None]] = set()
        self.alarm_sinks: list[Callable[[QualityAlarm], None]] = []  # webhooks, an embedding program's

    def start(self) -> None:
        if self.settings.enabled and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="call-quality")

    async def close(self) -> None:
        """Stop the timer and the event sends still under way. Idempotent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for send in list(self._sends):
            send.cancel()
        self._sends.clear()
        self._tracked.clear()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.interval)
            try:
                self.tick()
            except Exception:  # a sample must never stop the timer
                logger.exception("call quality sampling failed")

    def tick(self) -> dict[str, QualityReport]:
        """One sample of every live call (the timer's; tests call it too); the reports by call id."""
        reports: dict[str, QualityReport] = {}
        for call in self._calls.quality_calls():
            tracker = self._tracked.get(call.call_id)
            if tracker is None:
                tracker = self._tracked[call.call_id] = CallQuality(self.settings)
            report = reports[call.call_id] = tracker.sample(call.quality)
            if self._metrics is not None:
                self._metrics.observe(report)
            if report.tell and call.notify is not None:
                self._send(call.notify(report.to_json()))
            for alarm in report.alarms:
                self._alarm(QualityAlarm(call.call_id, alarm))
        for gone in self._tracked.keys() - reports.keys():
            del self._tracked[gone]
        return reports

    def _send(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._sends.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[Any]) -> None:
        self._sends.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("a quality event was not sent: %r", task.exception())

    def _alarm(self, event: QualityAlarm) -> None:
        alarm, sample = event.alarm, event.alarm.sample
        if alarm.state is AlarmState.RAISED:
            logger.warning(
                "call=%s quality_alarm: the %s leg's MOS %.2f is under %.1f for %d samples (loss %.1f %%)",
                event.call_id, alarm.leg, sample.mos, alarm.threshold, alarm.samples, 100 * sample.loss,
            )  # fmt: skip
        else:
            logger.warning(
                "call=%s quality_alarm cleared: the %s leg's MOS %.2f is back at or above %.1f",
                event.call_id, alarm.leg, sample.mos, alarm.threshold,
            )  # fmt: skip
        for sink in self.alarm_sinks:
            try:
                sink(event)
            except Exception:
                logger.exception("call=%s quality alarm sink %r failed", event.call_id, sink)
