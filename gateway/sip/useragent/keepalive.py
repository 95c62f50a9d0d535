"""OPTIONS keep-alive to the PBX (issue 13, item 4): is it there, and how fast does it answer?

Every ``interval`` seconds an OPTIONS goes to the UA's outbound hop. Any final response, even 404 or
405, says the PBX is reachable; no answer within ``timeout`` (or a transport error, the layer's
synthetic 503) says it is not. The state goes to /healthz; each change is logged (WARNING when the PBX
is lost, INFO when it is back).

An outage is confirmed, not guessed (issue 36: the demo showed every user "phone system unreachable"
for 35 s because the PBX was probed once before the demo phone was up, then only every 30 s): until the
PBX first answers, and after each failure, the next probe goes after ``RETRY`` seconds (at most the
interval); the state becomes "unreachable" only after ``CONFIRM`` failures in a row, and not in the
first ``STARTUP_GRACE`` seconds unless the PBX had answered. While it is unreachable it is probed every
``DOWN_INTERVAL`` seconds (at most the interval), so that its return is seen soon.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING

from gateway.tasks import stop_task
from sipcore.errors import Unreachable
from sipcore.syntax.message import Response

if TYPE_CHECKING:
    from gateway.sip.useragent.ua_settings import UASettings
    from sipcore.location.routing import Target

logger = logging.getLogger(__name__)

RETRY = 1.0  # s to the next probe after a failure, and before the PBX first answered
CONFIRM = 2  # failures in a row that make an outage (one OPTIONS lost over UDP is not one)
STARTUP_GRACE = 10.0  # s from start in which a PBX that never answered stays "unknown"
DOWN_INTERVAL = 5.0  # s between probes of an unreachable PBX


class PbxKeepalive:
    def __init__(self, probe: Callable[[], Awaitable[Response]], interval: float, target: str) -> None:
        self._probe = probe
        self.interval = interval
        self.timeout = max(0.5, min(5.0, interval))
        self.target = target
        self.state = "unknown"
        self.rtt_ms: float | None = None
        self.last_status: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._failures = 0  # in a row
        self._answered = False  # ever
        self._started = time.monotonic()

    def start(self) -> None:
        self._started = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="pbx-keepalive")

    async def stop(self) -> None:
        self._stopping = True  # a cancellation lost in wait_for still ends the loop (gateway/tasks.py)
        if self._task is not None:
            await stop_task(self._task)
            self._task = None

    def report(self) -> dict[str, object]:
        return {
            "target": self.target,
            "state": self.state,
            "rtt_ms": self.rtt_ms,
            "last_status": self.last_status,
        }

    async def _run(self) -> None:
        while not self._stopping:
            await self.check()
            await asyncio.sleep(self.next_delay())

    def next_delay(self) -> float:
        """Seconds to the next probe (see the module note)."""
        if self.state == "unreachable":
            return min(self.interval, DOWN_INTERVAL)
        if self._failures or not self._answered:
            return min(self.interval, RETRY)
        return self.interval

    async def check(self) -> None:
        started = time.monotonic()
        try:
            response = await asyncio.wait_for(self._probe(), self.timeout)
        except (TimeoutError, OSError, RuntimeError) as exc:
            self._failed(None, f"no answer to OPTIONS within {self.timeout:g} s ({exc or 'timeout'})")
            return
        # the UA's own failures: Timer F, a transport error, ICMP unreachable / connection refused
        synthetic = response.reason in (
            "Request Timeout",
            "Service Unavailable",
        ) or response.reason.startswith(Unreachable.phrase)
        if response.status in (408, 503) and synthetic:
            self._failed(response.status, f"OPTIONS failed: {response.status} {response.reason}")
            return
        rtt = round((time.monotonic() - started) * 1000, 1)
        self._failures, self._answered = 0, True
        self._set("reachable", rtt, response.status, f"answered {response.status} in {rtt:g} ms")

    def _failed(self, status: int | None, detail: str) -> None:
        self._failures += 1
        settled = self._answered or time.monotonic() - self._started >= STARTUP_GRACE
        if self._failures >= CONFIRM and settled:
            self._set("unreachable", None, status, detail)
        else:
            logger.debug("PBX %s: %s (%d in a row, not yet an outage)", self.target, detail, self._failures)

    def _set(self, state: str, rtt: float | None, status: int | None, detail: str) -> None:
        self.rtt_ms, self.last_status = rtt, status
        if state != self.state:
            level = logging.WARNING if state == "unreachable" else logging.INFO
            logger.log(level, "PBX %s %s -> %s: %s", self.target, self.state, state, detail)
            self.state = state


def start_keepalives(
    probe: Callable[[str, Target | None], Awaitable[Response]], settings: UASettings
) -> dict[str, PbxKeepalive]:
    """A started keep-alive per PBX by name: ``default`` (the `pbx:` section, to the UA's outbound hop)
    and each of `pbxs:` that has one (several PBXs, gateway/config/pbxs.py)."""
    wanted: list[tuple[str, Target, float, bool]] = []
    if settings.outbound is not None and settings.keepalive_interval > 0:
        wanted.append(("default", settings.outbound, settings.keepalive_interval, False))
    wanted.extend((name, hop, interval, True) for name, hop, interval in settings.keepalives)
    started: dict[str, PbxKeepalive] = {}
    for name, hop, interval, own_hop in wanted:
        host_part = f"[{hop.host}]" if ":" in hop.host else hop.host
        uri = f"sip:{host_part}:{hop.port}" + (";transport=tcp" if hop.transport == "TCP" else "")
        keepalive = PbxKeepalive(partial(probe, uri, hop if own_hop else None), interval, uri)
        keepalive.start()
        started[name] = keepalive
    return started
