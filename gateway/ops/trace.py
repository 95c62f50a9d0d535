"""Per-call traces: both legs' messages and the gateway's decisions for one call, kept in memory, bounded.

How it works (sans-I/O: times are passed in, nothing here reads a clock or a socket): the SIP transaction
layer hands every message it sends or receives to `TraceStore.sip` (gateway/ops/trace_wiring.py taps it),
the call runtime each browser event in and signaling event out (`web`), the log handler each log record
that names a call (`decision`). A SIP message is filed under its Call-ID; until that Call-ID is *linked*
to a gateway call id (`link`, learned from log records that carry both ids, and from the call's log
context when it ends) its messages wait in a small pending pool (an INVITE arrives before its call
exists). Linking moves them into the call's trace.

Bounds: each call keeps at most `max_messages` entries and `max_bytes` of text (later ones are counted
in `dropped`, never kept); at most `max_live` calls are traced at once (beyond that a new call is not
traced); a live call that heard nothing for `keep_seconds` counts as ended (a call id that a log line
named but no call followed must not hold a place for ever); `keep_calls` ended calls stay for at most `keep_seconds`; the pending pool holds at most
`max_pending` Call-IDs (oldest out), each for at most `keep_seconds`, each capped like a call.
"""

from __future__ import annotations

import enum
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

Address = tuple[str, int]

_CALL_ID: Final = re.compile(
    rb"^(?:call-id|i)[ \t]*:[ \t]*([^\r\n]+?)[ \t]*\r?$", re.IGNORECASE | re.MULTILINE
)


class Kind(enum.Enum):
    SIP = "sip"  # a SIP message on the wire (either leg)
    WEB = "web"  # the web leg's signaling as the call core sees it (an event in or out, its SDP)
    DECISION = "decision"  # a log record of the gateway about the call


class Leg(enum.Enum):
    SIP = "sip"  # the SIP side: the PBX, a trunk, a phone
    WEB = "web"  # the browser side (SIP over WebSocket, JSON, HTTP, JSON-RPC...)
    GATEWAY = "gateway"  # the gateway itself (decisions)


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """One line of a call's trace: a message (SIP bytes as text, or a web event) or a decision."""

    time: float  # seconds since the epoch
    kind: Kind
    leg: Leg
    direction: str  # "in" (to the gateway), "out" (from it), "" for a decision
    transport: str  # UDP, TCP, TLS, WS, WSS; the web dialect (json, http, jsonrpc...); a level for a decision
    text: str  # the message (SIP, JSON) or the log message
    local: Address | None = None  # the gateway's address (SIP messages)
    remote: Address | None = None  # the peer's address (SIP messages)
    source: str = ""  # the logger (decisions), the event name (web)

    @property
    def size(self) -> int:
        return len(self.text)


@dataclass(frozen=True, slots=True)
class TraceLimits:
    max_messages: int = 500
    max_bytes: int = 512 * 1024
    keep_calls: int = 100
    keep_seconds: float = 3600.0
    max_live: int = 1000
    max_pending: int = 200


@dataclass(slots=True)
class CallTrace:
    """One call's entries, in the order they happened (merged by time when pending ones join)."""

    call_id: str
    started: float
    ended: float | None = None
    last: float = 0.0  # when an entry last came (kept or dropped)
    sip_call_ids: list[str] = field(default_factory=list)
    entries: list[TraceEntry] = field(default_factory=list)
    size: int = 0
    dropped: int = 0  # entries not kept: over max_messages or max_bytes

    def add(self, entry: TraceEntry, limits: TraceLimits) -> bool:
        self.last = max(self.last, entry.time)
        if len(self.entries) >= limits.max_messages or self.size + entry.size > limits.max_bytes:
            self.dropped += 1
            return False
        if self.entries and entry.time < self.entries[-1].time:  # a pending entry joining late
            index = len(self.entries)
            while index > 0 and self.entries[index - 1].time > entry.time:
                index -= 1
            self.entries.insert(index, entry)
        else:
            self.entries.append(entry)
        self.size += entry.size
        return True


@dataclass(slots=True)
class _Pending:
    first: float
    entries: list[TraceEntry] = field(default_factory=list)
    size: int = 0
    dropped: int = 0


def sip_call_id(data: bytes) -> str | None:
    """The Call-ID header (or its compact form ``i``) of a SIP message's bytes; None without one."""
    head = data.split(b"\r\n\r\n", 1)[0]
    match = _CALL_ID.search(head)
    return match.group(1).decode("utf-8", "replace") if match is not None else None


class TraceStore:
    """Live and recently ended calls' traces, by gateway call id; see the module note for the bounds."""

    def __init__(self, limits: TraceLimits = TraceLimits()) -> None:
        self.limits = limits
        self._live: dict[str, CallTrace] = {}
        self._ended: OrderedDict[str, CallTrace] = OrderedDict()
        self._by_sip: dict[str, str] = {}  # SIP Call-ID -> gateway call id, for the calls held
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._gone: OrderedDict[str, None] = OrderedDict()  # calls forgotten: a late log line starts none
        self.untraced = 0  # calls not traced because max_live were

    # --- feeding -----------------------------------------------------------------------------------
    def sip(
        self, data: bytes, direction: str, transport: str, local: Address, remote: Address, now: float
    ) -> None:
        """A SIP message the gateway sent ("out") or received ("in") on either leg."""
        call_id = sip_call_id(data)
        if call_id is None:
            return
        leg = Leg.WEB if transport in ("WS", "WSS") else Leg.SIP
        entry = TraceEntry(
            now, Kind.SIP, leg, direction, transport, data.decode("utf-8", "replace"), local, remote
        )
        owner = self._by_sip.get(call_id)
        trace = self._trace(owner) if owner is not None else None
        if trace is not None:
            trace.add(entry, self.limits)
            return
        self._expire_pending(now)
        pending = self._pending.get(call_id)
        if pending is None:
            pending = self._pending[call_id] = _Pending(now)
            while len(self._pending) > self.limits.max_pending:
                self._pending.popitem(last=False)
        if (
            len(pending.entries) >= self.limits.max_messages
            or pending.size + entry.size > self.limits.max_bytes
        ):
            pending.dropped += 1
            return
        pending.entries.append(entry)
        pending.size += entry.size

    def web(self, call_id: str, direction: str, dialect: str, name: str, text: str, now: float) -> None:
        """The web leg's signaling for the call: an event from the browser ("in") or to it ("out")."""
        trace = self._trace(call_id) or self._start(call_id, now)
        if trace is not None:
            trace.add(TraceEntry(now, Kind.WEB, Leg.WEB, direction, dialect, text, source=name), self.limits)

    def decision(self, call_id: str, level: str, logger: str, message: str, now: float) -> None:
        """A log record about the call (its time is the record's)."""
        trace = self._trace(call_id) or self._start(call_id, now)
        if trace is not None:
            trace.add(
                TraceEntry(now, Kind.DECISION, Leg.GATEWAY, "", level, message, source=logger), self.limits
            )

    def link(self, call_id: str, sip_call_id: str, now: float) -> None:
        """SIP Call-ID `sip_call_id` is (a leg of) call `call_id`: its messages, pending and later, join it."""
        if self._by_sip.get(sip_call_id) == call_id:
            return
        trace = self._trace(call_id) or self._start(call_id, now)
        if trace is None:
            return
        self._by_sip[sip_call_id] = call_id
        if sip_call_id not in trace.sip_call_ids:
            trace.sip_call_ids.append(sip_call_id)
        pending = self._pending.pop(sip_call_id, None)
        if pending is not None:
            for entry in pending.entries:
                trace.add(entry, self.limits)
            trace.dropped += pending.dropped
            trace.started = min(trace.started, pending.first)

    def ended(self, call_id: str, now: float) -> None:
        """The call is over: its trace is kept among the last `keep_calls` for `keep_seconds`."""
        trace = self._live.pop(call_id, None)
        if trace is None:
            return
        trace.ended = now
        self._ended[call_id] = trace
        self.expire(now)

    def expire(self, now: float) -> None:
        """End live calls idle for `keep_seconds`; forget ended calls beyond `keep_calls` or older than
        `keep_seconds`, and stale pending ones."""
        idle = [t for t in self._live.values() if now - max(t.last, t.started) > self.limits.keep_seconds]
        for trace in sorted(idle, key=lambda t: max(t.last, t.started)):
            del self._live[trace.call_id]
            trace.ended = now  # kept as long as a call that ended now
            self._ended[trace.call_id] = trace
        while self._ended:
            oldest = next(iter(self._ended.values()))
            ended = oldest.ended if oldest.ended is not None else now
            if len(self._ended) <= self.limits.keep_calls and now - ended <= self.limits.keep_seconds:
                break
            self._ended.popitem(last=False)
            self._forget_ids(oldest)
            self._gone[oldest.call_id] = None
            while len(self._gone) > max(self.limits.keep_calls, 100):
                self._gone.popitem(last=False)
        self._expire_pending(now)

    # --- reading -----------------------------------------------------------------------------------
    def get(self, call_id: str) -> CallTrace | None:
        return self._trace(call_id)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._live or call_id in self._ended

    def __len__(self) -> int:
        return len(self._live) + len(self._ended)

    def call_of(self, sip_call_id: str) -> str | None:
        """The gateway call id that SIP Call-ID `sip_call_id` is linked to (None: none yet, or forgotten)."""
        return self._by_sip.get(sip_call_id)

    @property
    def pending(self) -> int:
        """SIP Call-IDs whose messages wait for their call (bounded by max_pending)."""
        return len(self._pending)

    # --- internals ---------------------------------------------------------------------------------
    def _trace(self, call_id: str) -> CallTrace | None:
        return self._live.get(call_id) or self._ended.get(call_id)

    def _start(self, call_id: str, now: float) -> CallTrace | None:
        if call_id in self._gone:
            return None
        if len(self._live) >= self.limits.max_live:
            self.expire(now)  # idle ones make room
        if len(self._live) >= self.limits.max_live:
            self.untraced += 1
            return None
        trace = self._live[call_id] = CallTrace(call_id, now, last=now)
        return trace

    def _forget_ids(self, trace: CallTrace) -> None:
        for sip_id in trace.sip_call_ids:
            if self._by_sip.get(sip_id) == trace.call_id:
                del self._by_sip[sip_id]

    def _expire_pending(self, now: float) -> None:
        while self._pending:
            first = next(iter(self._pending.values()))
            if now - first.first <= self.limits.keep_seconds:
                break
            self._pending.popitem(last=False)
