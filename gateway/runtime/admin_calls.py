"""`AdminCalls`: this instance's live calls for the admin page and API (gateway/signaling/admin/api.py):
list them, show one, hang one up, transfer one.

A hang-up ends the call as the gateway ends its calls at shutdown (`GatewayStopping`, with the reason
`admin_hangup`): the browser is told `ended` (`admin_hangup`), the SIP side gets BYE (connected),
CANCEL (our INVITE out) or 480 (ringing web users). A transfer is the web user's blind transfer done
for her (`WebTransfer` of the call's own session and user): REFER to the SIP party with the target as
Refer-To (RFC 3515), her outbound policy applied to the target, progress told to her page as usual.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from gateway.calls import CallError
from gateway.calls.boundary import events as ev
from gateway.calls.reasons import EndReason
from gateway.calls.setup.outbound import allowed_target
from gateway.calls.states import CallState
from gateway.ops.call_list import dialect_of, live_call
from gateway.runtime.call_runtime import CallRuntime
from gateway.runtime.driver_core import DriverCore
from gateway.runtime.recordings import parse_action
from gateway.signaling.errors import BadRequest, Conflict, Forbidden, NotFound

logger = logging.getLogger(__name__)

MAX_TARGET_CHARS = 256


class AdminCalls:
    def __init__(
        self, driver: DriverCore, instance: str | None = None, wall: Callable[[], float] = time.time
    ) -> None:
        self._driver = driver
        self.instance = instance  # the cluster instance id (None alone)
        self._wall = wall

    def summary(self, runtime: CallRuntime) -> dict[str, object] | None:
        machine = runtime.machine
        session = (
            self._driver.session(machine.session_id) if machine is not None and machine.session_id else None
        )
        return live_call(runtime, instance=self.instance, dialect=dialect_of(session), wall=self._wall)

    def calls(self) -> list[dict[str, object]]:
        """Every live call of this instance, the oldest first."""
        found = [self.summary(r) for r in self._driver.runtimes if not r.finished]
        calls = [c for c in found if c is not None]
        calls.sort(key=lambda c: float(c["started"]) if isinstance(c["started"], int | float) else 0.0)
        return calls

    def call(self, call_id: str) -> dict[str, object]:
        summary = self.summary(self._runtime(call_id))
        if summary is None:
            raise NotFound(f"no live call {call_id!r}", field="call_id")
        return summary

    def has(self, call_id: str) -> bool:
        return any(r.call_id == call_id and not r.finished for r in self._driver.runtimes)

    async def hangup(self, call_id: str, by: str) -> None:
        runtime = self._runtime(call_id)
        logger.info("call=%s hung up by admin %s", call_id, by)
        try:
            await runtime.feed(ev.GatewayStopping(EndReason.ADMIN_HANGUP))
        except CallError as exc:  # over already
            raise NotFound(f"no live call {call_id!r}: {exc}", field="call_id") from None

    async def transfer(self, call_id: str, target: str, by: str) -> None:
        if not isinstance(target, str) or not target.strip() or len(target) > MAX_TARGET_CHARS:
            raise BadRequest(
                f"target must be a number or SIP URI of at most {MAX_TARGET_CHARS} characters", field="target"
            )
        runtime = self._runtime(call_id)
        machine = runtime.machine
        if machine is None or machine.state not in (CallState.CONNECTED, CallState.HOLDING):
            raise Conflict(
                f"call {call_id!r} is not connected: only a connected call transfers", field="call_id"
            )
        if machine.session_id is None or machine.user is None:
            raise Conflict(f"call {call_id!r} has no web user to transfer for", field="call_id")
        refused = allowed_target(machine.user, target.strip(), machine.settings.pbx_domain)
        if isinstance(refused, tuple):  # the web user's outbound policy, or not a number or SIP URI
            code, text = refused
            if code is EndReason.DESTINATION_NOT_ALLOWED:
                raise Forbidden(f"{text} (user {machine.user.id!r})", field="target")
            raise BadRequest(text, field="target")
        logger.info("call=%s transferred to %s by admin %s", call_id, target.strip(), by)
        try:
            await runtime.feed(ev.WebTransfer(machine.session_id, machine.user, target.strip()))
        except CallError as exc:  # a refused target (policy, syntax) or a transfer already going on
            raise Conflict(str(exc), field="target") from None

    def recording(self, call_id: str, action: object, by: str) -> dict[str, object]:
        """Start, pause, resume or stop the call's recording (runtime/recordings.py), for any live call."""
        self._runtime(call_id)
        info = self._driver.recordings.control(call_id, parse_action(action))
        logger.info("call=%s recording %s by admin %s", call_id, info["state"], by)
        return info

    def _runtime(self, call_id: str) -> CallRuntime:
        for runtime in self._driver.runtimes:
            if runtime.call_id == call_id and not runtime.finished:
                return runtime
        raise NotFound(f"no live call {call_id!r}", field="call_id")
