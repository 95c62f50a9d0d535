"""Readiness (`/readyz`): can this instance serve web users now? One check per dependency, each with a
state and the time it has been in it.

Checks: `sip_listeners` (the UA runs, its transports are open), `rtp_ports` (a free port pair is left),
`cluster` (in a cluster: the last Redis command succeeded; without Redis no login, session or routing
decision can be made, so a load balancer should send web users to an instance that reaches it), and two that concern the PBX, which never make an instance unready: `pbx` (the OPTIONS keep-alive of
gateway/sip/useragent/keepalive.py hears the PBX; "disabled" without a PBX or keep-alive) and
`registrations` (the users the gateway registers). A PBX outage is every instance's at once: were it a
readiness failure, the load balancer (deploy/haproxy.cfg checks /readyz) would take every instance out
and no web user could log in, reconnect or take a phone's call (issue 36). It shows as "degraded" here,
in /healthz, in `gateway_pbx_reachable` and on the page instead. The gateway is ready when no check is
"failing" (or "pending"). A task re-evaluates the checks every `interval` seconds so that `since` is the
moment a state began and a PBX change reaches the web users at once (`on_pbx`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol


class CheckState(enum.StrEnum):
    OK = "ok"
    DEGRADED = "degraded"  # works, with something to look at (ready)
    PENDING = "pending"  # not known yet (not ready)
    FAILING = "failing"  # not ready
    DISABLED = "disabled"  # not configured (ready)


READY_STATES = frozenset({CheckState.OK, CheckState.DEGRADED, CheckState.DISABLED})


@dataclass(frozen=True, slots=True)
class CheckResult:
    state: CheckState
    detail: str = ""


class ReadinessSource(Protocol):
    """What the checks read (the app implements it over its parts)."""

    def sip_listening(self) -> tuple[bool, str]: ...

    def pbx(self) -> Mapping[str, object] | None: ...

    def registrations(self) -> Mapping[str, str]: ...

    def rtp_ports(self) -> tuple[int, int]: ...

    def cluster(self) -> tuple[bool, str] | None: ...


def check_sip(source: ReadinessSource) -> CheckResult:
    up, detail = source.sip_listening()
    return CheckResult(CheckState.OK if up else CheckState.FAILING, detail)


def check_pbx(source: ReadinessSource) -> CheckResult:
    report = source.pbx()
    if report is None:
        return CheckResult(CheckState.DISABLED, "no PBX keep-alive (pbx.address, pbx.keepalive_interval)")
    state = report.get("state")
    target = report.get("target")
    if state == "reachable":
        return CheckResult(
            CheckState.OK, f"{target} answered {report.get('last_status')} in {report.get('rtt_ms')} ms"
        )
    if state == "unreachable":  # degraded, not failing: see the module note
        return CheckResult(
            CheckState.DEGRADED, f"{target} does not answer OPTIONS: calls to and from the PBX fail"
        )
    return CheckResult(CheckState.DEGRADED, f"waiting for {target} to answer OPTIONS")


def check_registrations(source: ReadinessSource) -> CheckResult:
    states = source.registrations()
    if not states:
        return CheckResult(CheckState.DISABLED, "the gateway registers no user")
    good = [aor for aor, state in states.items() if state in ("registered", "refreshing")]
    bad = sorted(aor for aor in states if aor not in good)
    if not bad:
        return CheckResult(CheckState.OK, f"{len(good)} registered")
    # degraded, never failing: registrations are the PBX's (see the module note)
    return CheckResult(
        CheckState.DEGRADED, f"{len(good)} of {len(states)} registered; not: {', '.join(bad[:5])}"
    )


def check_rtp_ports(source: ReadinessSource) -> CheckResult:
    free, used = source.rtp_ports()
    state = CheckState.OK if free > 0 else CheckState.FAILING
    return CheckResult(state, f"{free} free, {used} in use")


def check_cluster(source: ReadinessSource) -> CheckResult:
    report = source.cluster()
    if report is None:
        return CheckResult(CheckState.DISABLED, "no cluster section: this instance keeps its own state")
    reachable, detail = report
    return CheckResult(CheckState.OK if reachable else CheckState.FAILING, detail)


def check_pbxs(source: ReadinessSource) -> CheckResult:
    """The named PBXs of `pbxs:` (config/pbxs.py) with a keep-alive, each by name; `pbx` is the default."""
    reports: Mapping[str, Mapping[str, object]] = getattr(source, "pbxs", dict)()
    named = {name: report for name, report in reports.items() if name != "default"}
    if not named:
        return CheckResult(CheckState.DISABLED, "no named PBX with a keep-alive (pbxs:)")
    states = {name: str(report.get("state")) for name, report in sorted(named.items())}
    detail = ", ".join(f"{name}: {state}" for name, state in states.items())
    ok = all(state == "reachable" for state in states.values())
    return CheckResult(CheckState.OK if ok else CheckState.DEGRADED, detail)


CHECKS: Mapping[str, Callable[[ReadinessSource], CheckResult]] = {
    "sip_listeners": check_sip,
    "pbx": check_pbx,
    "pbxs": check_pbxs,
    "registrations": check_registrations,
    "rtp_ports": check_rtp_ports,
    "cluster": check_cluster,
}


class Readiness:
    def __init__(
        self,
        source: ReadinessSource,
        *,
        on_pbx: Callable[..., None] | None = None,  # (state) for `pbx:`, (state, name) for a named PBX
        interval: float = 0.25,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._source = source
        self._on_pbx = on_pbx
        self.interval = interval
        self._wall = wall
        self._states: dict[str, tuple[CheckResult, float]] = {}
        self._pbx: str | None = None
        self._named: dict[str, str] = {}  # each named PBX's last state told (pbxs:, config/pbxs.py)
        self._task: asyncio.Task[None] | None = None

    def evaluate(self) -> dict[str, tuple[CheckResult, float]]:
        now = self._wall()
        for name, check in CHECKS.items():
            result = check(self._source)
            old = self._states.get(name)
            since = old[1] if old is not None and old[0].state is result.state else now
            self._states[name] = (result, since)
        report = self._source.pbx()
        pbx = report.get("state") if report is not None else None
        if isinstance(pbx, str) and pbx in ("reachable", "unreachable") and pbx != self._pbx:
            self._pbx = pbx
            if self._on_pbx is not None:
                self._on_pbx(pbx)
        reports: Mapping[str, Mapping[str, object]] = getattr(self._source, "pbxs", dict)()
        for name, named in reports.items():
            state = named.get("state")
            if (
                name == "default"
                or state not in ("reachable", "unreachable")
                or self._named.get(name) == state
            ):
                continue
            self._named[name] = str(state)
            if self._on_pbx is not None:
                self._on_pbx(state, name)  # that PBX's users' pages hear it
        return dict(self._states)

    def report(self) -> tuple[bool, dict[str, object]]:
        """(ready, the JSON body of /readyz)."""
        states = self.evaluate()
        ready = all(result.state in READY_STATES for result, _ in states.values())
        checks = {
            name: {
                "state": result.state.value,
                "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since)),
                "detail": result.detail,
            }
            for name, (result, since) in states.items()
        }
        return ready, {"status": "ready" if ready else "not ready", "checks": checks}

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="readiness")

    async def _run(self) -> None:
        while True:
            self.evaluate()
            await asyncio.sleep(self.interval)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
