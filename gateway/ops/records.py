"""`CallRecord`: what is known of one call when it ends, built from its runtime, machine and bridge.

Times are Unix seconds (the machine's monotonic times moved onto the wall clock at the end); `legs` has
the media figures of the web and SIP legs (`MediaBridge.quality()`) with an estimated MOS each
(gateway/ops/mos.py). `hangup_by` says who ended the call: the web user, the SIP side, or the gateway
(timeouts, failures, policy).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Final, Protocol

from gateway.calls.reasons import EndReason
from gateway.ops.mos import estimate_mos

if TYPE_CHECKING:
    from gateway.calls.machine import CallMachine
    from gateway.calls.states import CallDirection
    from gateway.ops.logctx import CallContext

# Who ended the call, by end reason; inbound calls turned down by the web user are hers.
_BY_WEB: Final = frozenset({EndReason.HANGUP, EndReason.DISCONNECTED, EndReason.TRANSFERRED})
_BY_SIP: Final = frozenset(
    {
        EndReason.REMOTE_HANGUP, EndReason.CALLER_CANCELLED, EndReason.NO_SUCH_NUMBER, EndReason.BUSY,
        EndReason.CANCELLED, EndReason.UNAVAILABLE, EndReason.DECLINED, EndReason.FORBIDDEN,
        EndReason.AUTH_FAILED, EndReason.REDIRECTED, EndReason.REJECTED, EndReason.SERVER_ERROR,
        EndReason.GLOBAL_FAILURE, EndReason.INCOMPATIBLE_MEDIA, EndReason.ANSWERED_ELSEWHERE,
    }
)  # fmt: skip
_INBOUND_WEB: Final = frozenset({EndReason.BUSY, EndReason.DECLINED, EndReason.UNAVAILABLE})
# an inbound call's refusals the gateway makes itself before any web user rings (404, 480 nobody online,
# 486 everyone at their cap, 488 an offer it cannot bridge)
_REFUSED_HERE: Final = _INBOUND_WEB | {EndReason.NO_SUCH_NUMBER, EndReason.INCOMPATIBLE_MEDIA}


@dataclass(frozen=True, slots=True)
class LegRecord:
    codec: str | None = None
    packets_sent: int = 0
    packets_received: int = 0
    packets_lost: int = 0
    jitter: float | None = None  # seconds
    rtt: float | None = None  # seconds (RTCP)
    mos: float | None = None  # estimated, of what this leg received
    packets_recovered: int = 0  # lost packets restored from the peer's RFC 2198 redundancy (RED)


@dataclass(frozen=True, slots=True)
class CallRecord:
    call_id: str
    direction: str
    start_time: float
    end_time: float
    end_reason: str
    hangup_by: str  # web | sip | gateway
    sip_call_ids: tuple[str, ...] = ()
    user: str | None = None
    from_uri: str | None = None
    to_uri: str | None = None
    answer_time: float | None = None
    sip_status: int | None = None
    media: str | None = None  # transcoded | forwarded (same codec both legs) | passthrough | None (none)
    legs: Mapping[str, LegRecord] = field(default_factory=dict)
    # another instance that wrote this record for a call of an instance that died (gateway/cluster/
    # live_calls.py); absent from the JSON of the records an instance writes of its own calls
    recorded_by: str | None = None
    # the call's recordings (gateway/runtime/recordings.py): each file, its JSON sidecar beside it with
    # the suffix .json; absent from the JSON when the call was not recorded
    recording: tuple[str, ...] = ()

    @property
    def setup_seconds(self) -> float | None:
        return None if self.answer_time is None else self.answer_time - self.start_time

    def to_json(self) -> dict[str, object]:
        body = asdict(self)
        body["from"], body["to"] = body.pop("from_uri"), body.pop("to_uri")
        body["duration"] = round(self.end_time - self.answer_time, 3) if self.answer_time is not None else 0.0
        if self.recorded_by is None:
            del body["recorded_by"]
        if self.recording:
            body["recording"] = {
                "files": list(self.recording),
                "sidecars": [_sidecar(p) for p in self.recording],
            }
        else:
            del body["recording"]
        return body


def _sidecar(path: str) -> str:
    """A recording's JSON sidecar: the file's path with the suffix .json."""
    stem, dot, _ = path.rpartition(".")
    return f"{stem if dot else path}.json"


def hangup_by(
    direction: str, reason: EndReason | None, sip_status: int | None = None, rang: bool = True
) -> str:
    """Who ended the call; ``rang``: whether it rang anyone (an inbound call refused before any web user
    rang, 404 or 480 for nobody online, was the gateway's refusal, not a user's)."""
    if reason is None:
        return "gateway"
    if reason is EndReason.CANCELLED and sip_status is None:
        return "web"  # the web user's own cancel (a 487 from the far end carries its status)
    if direction == "inbound" and not rang and reason in _REFUSED_HERE:
        return "gateway"
    if reason in _BY_WEB or (direction == "inbound" and reason in _INBOUND_WEB):
        return "web"
    if reason in _BY_SIP:
        return "sip"
    return "gateway"


def _leg(figures: Mapping[str, object]) -> LegRecord:
    def number(key: str) -> int:
        value = figures.get(key)
        return int(value) if isinstance(value, int | float) else 0

    def seconds(key: str) -> float | None:
        value = figures.get(key)
        return round(float(value), 6) if isinstance(value, int | float) else None

    codec = figures.get("codec")
    recovered = number("packets_recovered")
    leg = LegRecord(
        codec if isinstance(codec, str) else None,
        number("packets_sent"),
        number("packets_received"),
        number("packets_lost"),
        seconds("jitter"),
        seconds("rtt"),
    )
    jitter, rtt = leg.jitter, leg.rtt
    mos = estimate_mos(
        leg.codec,
        received=leg.packets_received,
        lost=max(0, leg.packets_lost - recovered),  # restored from RED: they cost the listener nothing
        jitter_ms=jitter * 1000 if jitter is not None else None,
        rtt_ms=rtt * 1000 if rtt is not None else None,
    )
    return LegRecord(
        leg.codec, leg.packets_sent, leg.packets_received, leg.packets_lost, jitter, rtt, mos, recovered,
    )  # fmt: skip


class _SipLeg(Protocol):
    @property
    def call(self) -> object | None: ...


class FinishedCall(Protocol):
    """What a call's record is read from: gateway/runtime's `CallRuntime` once the call ended. A Protocol,
    so that gateway/ops (reached from gateway/signaling through ops_http) names no runtime type."""

    @property
    def call_id(self) -> str: ...
    @property
    def direction(self) -> CallDirection: ...
    @property
    def machine(self) -> CallMachine | None: ...
    @property
    def sip(self) -> _SipLeg: ...
    @property
    def media_quality(self) -> Mapping[str, Mapping[str, object]] | None: ...
    @property
    def transcoding(self) -> bool: ...
    @property
    def bridge(self) -> object | None: ...
    @property
    def log_context(self) -> CallContext: ...
    @property
    def web_user(self) -> str | None: ...
    @property
    def recording_files(self) -> tuple[str, ...]: ...


def record_of(
    runtime: FinishedCall,
    *,
    wall: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
) -> CallRecord | None:
    """The record of a call whose runtime finished (None when the driver never saw its machine)."""
    machine = runtime.machine
    if machine is None:
        return None
    offset = wall() - monotonic()
    ended = machine.ended_at if machine.ended_at is not None else monotonic()
    reason = machine.end_reason
    direction = runtime.direction.value
    sip = runtime.sip.call
    from_uri: str | None
    if direction == "outbound":
        from_uri = machine.user.aor.aor if machine.user is not None else None
        to_uri = machine.target
    else:
        from_uri = machine.remote_uri
        # the To header: whom the caller dialled; a redirected call's Request-URI names the instance it
        # was sent to inside a cluster (sip:1001@10.0.0.12:5060), not the callee (issue 36)
        callee = getattr(sip, "callee", None)
        request_uri = getattr(sip, "request_uri", None)
        dialled = getattr(callee, "uri", None) or request_uri
        to_uri = str(dialled) if dialled is not None else None
    legs: dict[str, LegRecord] = {}
    media: str | None = None
    quality = runtime.media_quality
    if quality is not None:
        legs = {name: _leg(figures) for name, figures in quality.items()}
        web, sip_leg = legs.get("web"), legs.get("sip")
        if web is not None and sip_leg is not None and web.codec and sip_leg.codec:
            media = "transcoded" if runtime.transcoding else "forwarded"
    elif runtime.bridge is not None:
        media = "passthrough"
    return CallRecord(
        call_id=runtime.call_id,
        direction=direction,
        start_time=round(machine.created_at + offset, 3),
        end_time=round(ended + offset, 3),
        end_reason=reason.code.value if reason is not None else "unknown",
        hangup_by=hangup_by(
            direction,
            reason.code if reason is not None else None,
            reason.sip_status if reason else None,
            machine.rang,
        ),
        sip_call_ids=tuple(runtime.log_context.sip_call_ids),
        user=runtime.web_user,
        from_uri=from_uri,
        to_uri=to_uri,
        answer_time=round(machine.connected_at + offset, 3) if machine.connected_at is not None else None,
        sip_status=reason.sip_status if reason is not None else None,
        media=media,
        legs=legs,
        recording=tuple(runtime.recording_files),
    )
