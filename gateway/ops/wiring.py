"""`Operations`: metrics, readiness and call records wired to one gateway's parts (app.py owns one).

It implements what the collector (`GatewayState`) and the readiness checks (`ReadinessSource`) read,
over the driver, the SIP user agent and the RTP port allocator; it hears each call's end from the
driver (`on_call_end`) and the PBX's changes from the readiness task (`driver.sip_inbound.pbx_changed`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from gateway.ops.call_list import dialect_of, live_call
from gateway.ops.cdr import CallRecorder
from gateway.ops.health import Readiness
from gateway.ops.metrics import GatewayMetrics
from gateway.ops.quality_monitor import LiveCall, QualityAlarm, QualityMetrics, QualityMonitor
from gateway.ops.records import CallRecord, record_of
from gateway.ops.trace_wiring import Tracing
from gateway.ops.webhooks import Webhooks
from gateway.signaling.admin_auth import require_admin
from gateway.signaling.call_quality import CallQuality
from gateway.signaling.ops_http import add_ops_routes, ops_app, post_json
from gateway.signaling.trace_http import add_trace_routes
from gateway.signaling.webhook_http import post_webhook
from gateway.sip.useragent.ua import UAState

if TYPE_CHECKING:
    from gateway.app import Gateway
    from gateway.runtime.call_runtime import CallRuntime
    from gateway.signaling.http import HttpServer, WebApp
    from gateway.signaling.service import SessionSink

logger = logging.getLogger(__name__)


async def _tell_quality(session: SessionSink, call_id: str, legs: Mapping[str, object]) -> None:
    await session.send_event(CallQuality(call_id, cast(Mapping[str, Mapping[str, object]], legs)))


class Operations:
    def __init__(self, gateway: Gateway, base_dir: Path = Path(".")) -> None:
        self._gateway = gateway
        config = gateway.config
        self.metrics = GatewayMetrics(self) if config.metrics.enabled else None
        self.readiness = Readiness(self, on_pbx=gateway.driver.sip_inbound.pbx_changed)
        self.recorder = CallRecorder(config.cdr, post_json, base_dir)
        # per-call traces (ops/trace_wiring.py): the SIP layer's tap (at start), each call's web signaling
        self.tracing = Tracing(config.trace) if config.trace.enabled else None
        if self.tracing is not None:
            gateway.driver.web_trace = self.tracing.web_event
        # call events to the `webhooks` (ops/webhooks.py): `emit(event, call_id, data)` from anywhere
        instance = gateway.cluster.node.id if gateway.cluster is not None else None
        self.webhooks = Webhooks(config.webhooks, post_webhook, instance=instance)
        # every live call's legs sampled on one timer: /metrics, `quality` events, alarms (ops/quality.py)
        quality_metrics = QualityMetrics(self.metrics.registry) if self.metrics is not None else None
        self.quality = QualityMonitor(self, config.quality, quality_metrics)
        self.quality.alarm_sinks.append(self._quality_alarm)
        self._server: HttpServer | None = None
        self.record_sinks: list[Callable[[CallRecord], None]] = []  # more places for records (cluster)
        self.draining = False  # /readyz answers 503 while the gateway drains (gateway.app.Gateway.drain)
        gateway.driver.on_call_end = self.call_ended
        gateway.driver.on_call_progress = self.call_progress  # ringing, answered: the webhooks
        gateway.driver.on_media_lost = self.media_lost

    # --- lifecycle --------------------------------------------------------------------------------
    def add_routes(self, app: WebApp) -> None:
        """/readyz and /metrics on the gateway's HTTP listener (unless metrics.listen has its own)."""
        if self._gateway.config.metrics.listen is None:
            add_ops_routes(app, ready=self.ready, registry=self._registry(), token=self._token())
        else:
            add_ops_routes(app, ready=self.ready, registry=None)
        add_trace_routes(app, self.tracing, require_admin)  # the admin's per-call trace downloads

    async def start(self) -> None:
        from gateway.signaling.http import HttpServer

        config = self._gateway.config.metrics
        if self.metrics is not None:
            self.metrics.start(config.loop_lag_interval)
        if self.tracing is not None:
            if self._gateway.sip is not None:
                self.tracing.attach(self._gateway.sip.layer)
            await self.tracing.start()
        self.readiness.start()
        self.quality.start()
        if config.listen is not None:
            app = ops_app()
            add_ops_routes(
                app, ready=self.ready, registry=self._registry(), token=self._token(), healthz=True
            )
            self._server = HttpServer(app, config.listen.host, config.listen.port or 9100)
            await self._server.start()

    @property
    def metrics_url(self) -> str:
        """Where /metrics is served (its own listener, or the gateway's HTTP one)."""
        if self._server is not None:
            return self._server.urls[0] + "/metrics"
        return self._gateway.http_url + "/metrics"

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()
            self._server = None
        await self.quality.close()
        if self.tracing is not None:
            await self.tracing.close()
        await self.readiness.close()
        if self.metrics is not None:
            await self.metrics.close()
        await self.recorder.close()
        await self.webhooks.close()

    def _registry(self) -> Any:
        return self.metrics.registry if self.metrics is not None else None

    def _token(self) -> str | None:
        token = self._gateway.config.metrics.token
        return token.reveal() if token is not None else None

    # --- a call ended -------------------------------------------------------------------------------
    def media_lost(self, cause: str) -> None:
        if self.metrics is not None:
            self.metrics.media_lost.labels("web", cause).inc()

    def call_progress(self, runtime: CallRuntime, progress: str) -> None:
        """The call first rang or was answered: the `ringing` / `answered` webhook, with the call as the
        admin API shows it (gateway/ops/call_list.py)."""
        if not self.webhooks.enabled:
            return
        machine = runtime.machine
        session = self._gateway.driver.session(machine.session_id) if machine and machine.session_id else None
        summary = live_call(runtime, instance=self.webhooks.instance, dialect=dialect_of(session))
        self.webhooks.emit(progress, runtime.call_id, summary or {})

    def call_ended(self, runtime: CallRuntime) -> None:
        if self.tracing is not None:
            self.tracing.call_ended(runtime.call_id, runtime.log_context.sip_call_ids)
        record = record_of(runtime)
        if record is None:
            return
        logger.info(
            "call=%s ended: %s (%s) by %s after %.1f s",
            record.call_id,
            record.end_reason,
            record.sip_status if record.sip_status is not None else "-",
            record.hangup_by,
            record.end_time - record.start_time,
        )
        if self.metrics is not None:
            fast, forwarded = runtime.media_packets
            self.metrics.call_ended(record, fast, forwarded)
        if self.recorder.enabled:
            self.recorder.write(record)
        self.webhooks.emit("ended", record.call_id, record.to_json())
        for sink in self.record_sinks:  # one failing (an embedding program's: Gateway.add_record_sink)
            try:  # costs neither the others nor the call's cleanup
                sink(record)
            except Exception:
                logger.exception("call=%s record sink %r failed", record.call_id, sink)

    def _quality_alarm(self, event: QualityAlarm) -> None:
        """A leg's quality alarm raised or cleared (gateway/ops/quality_monitor.py, logged there)."""
        self.webhooks.emit("quality_alarm", event.call_id, event.to_json())

    def foreign_record(self, record: CallRecord) -> None:
        """The record of another instance's call that this one writes (the instance died: a cluster's
        survivor, gateway/cluster/live_calls.py): to the same places as this instance's own records."""
        if self.recorder.enabled:
            self.recorder.write(record)
        self.webhooks.emit("ended", record.call_id, record.to_json())
        for sink in self.record_sinks:
            try:
                sink(record)
            except Exception:
                logger.exception("call=%s record sink %r failed", record.call_id, sink)

    def ready(self) -> tuple[bool, dict[str, object]]:
        """/readyz: the readiness checks, and not while draining."""
        ready, body = self.readiness.report()
        if self.draining:
            return False, {**body, "status": "draining"}
        return ready, body

    # --- GatewayState and ReadinessSource -------------------------------------------------------------
    def calls(self) -> Iterable[tuple[str, str]]:
        for machine in self._gateway.driver.registry:
            yield machine.state.value, machine.direction.value if machine.direction is not None else "unknown"

    def sessions(self) -> Iterable[str]:
        for session in self._gateway.driver.sessions:
            if not session.closed:
                yield dialect_of(session) or "none"

    def call_dialects(self) -> Iterable[str]:
        driver = self._gateway.driver
        for machine in driver.registry:
            session_id = machine.session_id
            yield dialect_of(driver.session(session_id) if session_id else None) or "none"

    def registrations(self) -> Mapping[str, str]:
        return self._gateway.driver.registrations

    def pbx(self) -> Any:
        ua = self._gateway.sip
        return ua.pbx_state() if ua is not None else None

    def pbxs(self) -> Mapping[str, Any]:
        """Every PBX's keep-alive report by name (`default`: the `pbx:` section; config/pbxs.py)."""
        ua = self._gateway.sip
        names = ua.pbx_names() if ua is not None else ()
        return {name: ua.pbx_state(name) for name in names} if ua is not None else {}

    def sip_stats(self) -> Any:
        ua = self._gateway.sip
        return ua.layer.stats if ua is not None and ua.state is UAState.RUNNING else None

    def sip_listening(self) -> tuple[bool, str]:
        ua = self._gateway.sip
        if ua is None or ua.state is not UAState.RUNNING:
            return False, "the SIP user agent is not running"
        transports = [t for t in ua.layer.transports if ua.layer.running]
        if not transports:
            return False, "no SIP listener"
        return True, ", ".join(str(t) for t in transports)

    def live_media(self) -> Iterable[Mapping[str, Mapping[str, object]]]:
        """Each live call's media quality; a call whose media the gateway does not carry has none."""
        for runtime in self._gateway.driver.runtimes:
            quality = runtime.bridge.quality() if runtime.bridge is not None else None
            if quality is not None:
                yield quality

    def quality_calls(self) -> Iterable[LiveCall]:
        """LiveCalls (quality_monitor.py): each live call with a media bridge, and its carrying session."""
        driver = self._gateway.driver
        for runtime in driver.runtimes:
            quality = runtime.bridge.quality() if runtime.bridge is not None else None
            if quality is None:
                continue
            call_id = runtime.call_id
            machine = driver.registry.get(call_id) if call_id in driver.registry else None
            session = driver.session(machine.session_id) if machine and machine.session_id else None
            notify = None
            if session is not None and not session.closed:
                notify = functools.partial(_tell_quality, session, call_id)
            yield LiveCall(call_id, quality, notify)

    def live_paths(self) -> tuple[int, int, int]:
        """Over the live calls: packets on the fast lane, packets forwarded, calls transcoding."""
        fast = forwarded = transcoding = 0
        for runtime in self._gateway.driver.runtimes:
            stats = runtime.bridge.stats() if runtime.bridge is not None else None
            if stats is not None:
                fast += stats.fast_lane_packets
                forwarded += stats.web_to_sip.forwarded + stats.sip_to_web.forwarded
                transcoding += stats.transcoding
        return fast, forwarded, transcoding

    def cluster(self) -> tuple[bool, str] | None:
        cluster = self._gateway.cluster
        if cluster is None:
            return None
        node = cluster.node
        if node.available:
            return True, f"Redis reachable (instance {node.id})"
        return False, (
            f"Redis unreachable (instance {node.id}): degraded, calls go on and new calls work on this "
            "instance; no login, session or cross-instance routing decision"
        )

    def refusals(self) -> Iterable[tuple[str, str, int]]:
        for server in (self._gateway.http, self._gateway.sip_ws_http):
            for gate in server.gates if server is not None else ():
                for reason, count in gate.refused.items():
                    yield gate.name.lower().replace(" ", "_"), reason, count

    def logins_throttled(self) -> int:
        return self._gateway.identities.throttled

    def login_alarms(self) -> int:
        return self._gateway.identities.throttle.alarms

    def recording(self) -> tuple[Mapping[str, object], Mapping[str, int]] | None:
        """The recording disk (runtime/recordings.py `disk()`) and the starts refused, by reason."""
        recordings = self._gateway.driver.recordings
        disk = recordings.disk()
        return None if disk is None else (disk, recordings.refused)

    def fast_lane(self) -> tuple[int, Mapping[str, int]] | None:
        pool = self._gateway.fast_lane
        return (len(pool.engines), pool.counters()._asdict()) if pool is not None else None

    def rtp_ports(self) -> tuple[int, int]:
        """(free, in use) pairs; with media.web_ports, the fewer free of the two ranges (a call needs
        both) and the pairs in use in both."""
        ports, web = self._gateway.ports, self._gateway.web_ports
        pooled = self._gateway.ice_pool.idle  # bound ahead for calls, in no call: free (ice_pool.py)
        if web is None:
            return ports.available + pooled, len(ports.held) - pooled
        return min(ports.available, web.available + pooled), len(ports.held) + len(web.held) - pooled
