"""What the admin page and API show of one live call: both parties, dialect, instance, state, times and
each leg's media quality so far, as one JSON-able dict (docs/operations.md "Admin page and REST API").

    {"call_id": "c-...", "instance": "gw-1" | null, "direction": "outbound", "state": "connected",
     "from": "sip:1001@pbx", "to": "2000", "user": "alice", "dialect": "json",
     "started": 1800000000.0, "answered": 1800000002.1 | null, "duration": 12.3,
     "media": "forwarded" | "transcoded" | "passthrough" | null,
     "legs": {"web": {"codec": "opus", "packets_received": ..., "mos": 4.3, ...}, "sip": {...}}}

`duration` counts from the answer (0 before it), as the call records do; the parties are read as the
call record reads them (gateway/ops/records.py), so a live call and its record agree.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from gateway.ops.records import FinishedCall, record_of

if TYPE_CHECKING:
    from gateway.calls.machine import CallMachine
    from gateway.calls.states import CallDirection
    from gateway.ops.logctx import CallContext

# the session classes of the dialects (gateway/signaling, gateway/runtime, gateway/websip)
DIALECTS: Final = {
    "Session": "json",
    "HttpSession": "http",
    "WebSipSession": "sip_ws",
    "PartySession": "room",
    "RpcPeer": "jsonrpc",
}


def dialect_of(session: object | None) -> str | None:
    """The signaling dialect of a session object (None: no session, e.g. a call still ringing)."""
    if session is None:
        return None
    name = type(session).__name__
    return DIALECTS.get(name, name.lower())


@dataclass(frozen=True, slots=True)
class _LiveView:
    """A live call seen as a finished one, with its bridge's figures so far (record_of reads it)."""

    call_id: str
    direction: CallDirection
    machine: CallMachine | None
    sip: object
    media_quality: Mapping[str, Mapping[str, object]] | None
    transcoding: bool
    bridge: object | None
    log_context: CallContext
    web_user: str | None
    recording_files: tuple[str, ...] = ()  # (named once the call ended)


def live_call(
    runtime: FinishedCall,
    *,
    instance: str | None,
    dialect: str | None,
    wall: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
) -> dict[str, object] | None:
    """The summary of a live call (None when its machine is gone)."""
    machine = runtime.machine
    if machine is None:
        return None
    bridge = runtime.bridge
    quality: Mapping[str, Mapping[str, object]] | None = None
    quality_of = getattr(bridge, "quality", None)
    if callable(quality_of):
        try:
            quality = quality_of()
        except Exception:  # a bridge closing under us: no figures this time
            quality = None
    stats_of = getattr(bridge, "stats", None)
    transcoding = bool(getattr(stats_of(), "transcoding", False)) if callable(stats_of) else False
    view = _LiveView(
        runtime.call_id,
        runtime.direction,
        machine,
        runtime.sip,
        quality,
        transcoding,
        bridge,
        runtime.log_context,
        runtime.web_user or (machine.user.id if machine.user is not None else None),
    )
    record = record_of(view, wall=wall, monotonic=monotonic)  # type: ignore[arg-type]
    if record is None:
        return None
    body = record.to_json()
    now = wall()
    return {
        "call_id": record.call_id,
        "instance": instance,
        "direction": record.direction,
        "state": machine.state.value,
        "from": body["from"],
        "to": body["to"],
        "user": record.user,
        "dialect": dialect,
        "started": record.start_time,
        "answered": record.answer_time,
        "duration": round(now - record.answer_time, 1) if record.answer_time is not None else 0.0,
        "media": record.media,
        "legs": {name: dataclasses.asdict(leg) for name, leg in record.legs.items()},
        "sip_call_ids": list(record.sip_call_ids),
    }
