"""The progress of one HTTP API session, for polling (`GET /webrtc/sessions/{id}`) and server-sent events
(`GET /webrtc/sessions/{id}/events`).

The HTTP offer is answered as soon as the gateway's WebRTC answer exists, before the far end picks up;
what happens afterwards is recorded here as numbered progress events (`ringing`, `early_media`,
`answered`, `failed` with a reason, `ended`, `dtmf`, `held`, `resumed`, `message` and `message_result`:
chat on the call's data channel, SIP MESSAGE in its dialog; `transfer`, `transfer_requested`: the SIP
party's REFER, which a new offer with `transfer_of` carries out) and as the session's state:

    calling -> ringing -> early_media -> answered -> ended
        \\________\\___________\\-> failed (never answered)        any -> closed (POST /webrtc/close)

`SessionProgress.record` is called by the call layer (gateway/runtime/offers.py); readers take
`snapshot()` or wait with `wait(after)` for events numbered above `after` (the SSE `id:` and
`Last-Event-ID`, WHATWG HTML §9.2). The log keeps the last `MAX_EVENTS`; nothing here does I/O.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from gateway.signaling.service import JsonValue

logger = logging.getLogger(__name__)

MAX_EVENTS: Final = 200


class SessionState(enum.StrEnum):
    CALLING = "calling"
    RINGING = "ringing"
    EARLY_MEDIA = "early_media"
    ANSWERED = "answered"
    FAILED = "failed"
    ENDED = "ended"
    CLOSED = "closed"


_FINAL: Final = frozenset({SessionState.FAILED, SessionState.ENDED, SessionState.CLOSED})
_ORDER: Final = (SessionState.CALLING, SessionState.RINGING, SessionState.EARLY_MEDIA, SessionState.ANSWERED)
# (state, progress event) -> the new state; events not listed leave the state as it is.
TRANSITIONS: Final[Mapping[tuple[SessionState, str], SessionState]] = {
    **{(s, "ringing"): SessionState.RINGING for s in _ORDER[:1]},
    **{(s, "early_media"): SessionState.EARLY_MEDIA for s in _ORDER[:2]},
    **{(s, "answered"): SessionState.ANSWERED for s in _ORDER[:3]},
    **{(s, "failed"): SessionState.FAILED for s in _ORDER[:3]},
    (SessionState.ANSWERED, "ended"): SessionState.ENDED,
    **{(s, "closed"): SessionState.CLOSED for s in SessionState if s is not SessionState.CLOSED},
}
# every progress event, in the order the OpenAPI document lists them
EVENT_ORDER: Final = (
    "ringing", "early_media", "answered", "failed", "ended", "dtmf", "held", "resumed", "web_lost",
    "renewed", "message", "message_result", "transfer", "transfer_requested", "error", "quality", "merged", "split",
    "recording", "closed",
)  # fmt: skip
EVENT_NAMES: Final = frozenset(EVENT_ORDER)


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    seq: int  # 1, 2, ... within the session
    name: str  # one of EVENT_NAMES
    data: Mapping[str, JsonValue] = field(default_factory=dict)
    at: float = 0.0  # Unix time

    def __post_init__(self) -> None:
        if self.name not in EVENT_NAMES:
            raise ValueError(f"unknown progress event {self.name!r}")
        if self.seq < 1:
            raise ValueError(f"progress event number {self.seq!r} below 1")

    def to_json(self) -> dict[str, JsonValue]:
        return {"id": self.seq, "event": self.name, "at": round(self.at, 3), **self.data}


class SessionProgress:
    """One session's state and numbered progress events (see the module note)."""

    def __init__(
        self,
        session_id: str,
        *,
        dial: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.session_id = session_id
        self.dial = dial
        self.call_id: str | None = None
        self._clock = clock
        self.created = clock()
        self._state = SessionState.CALLING
        self._events: deque[ProgressEvent] = deque(maxlen=MAX_EVENTS)
        self._seq = 0
        self._changed = asyncio.Event()
        self.reason: str | None = None
        self.sip_status: int | None = None
        self.message: str | None = None

    @property
    def state(self) -> SessionState:
        return self._state

    @property
    def finished(self) -> bool:
        return self._state in _FINAL

    @property
    def last_id(self) -> int:
        return self._seq

    def _set_state(self, state: SessionState) -> None:
        logger.info("HTTP session %s %s -> %s", self.session_id, self._state.value, state.value)
        self._state = state

    def record(self, name: str, **data: JsonValue) -> ProgressEvent | None:
        """Add event `name` (with its fields) and move the state; None once the session is finished
        (the end is told once)."""
        if self.finished:
            return None
        if name == "ended" and self._state is not SessionState.ANSWERED:
            name = "failed"  # a call that never connected failed (with the reason it ended with)
        new_state = TRANSITIONS.get((self._state, name))
        if name in ("failed", "ended"):
            reason, status, message = data.get("reason"), data.get("sip_status"), data.get("message")
            self.reason = reason if isinstance(reason, str) else None
            self.sip_status = status if isinstance(status, int) else None
            self.message = message if isinstance(message, str) else None
        if new_state is not None:
            self._set_state(new_state)
        self._seq += 1
        event = ProgressEvent(self._seq, name, dict(data), self._clock())
        self._events.append(event)
        self._changed.set()
        self._changed = asyncio.Event()
        return event

    def events_after(self, after: int) -> list[ProgressEvent]:
        return [e for e in self._events if e.seq > after]

    async def wait(self, after: int, timeout: float) -> list[ProgressEvent]:
        """Events numbered above `after`, waiting up to `timeout` s for one (an empty list: none came)."""
        events = self.events_after(after)
        if events or self.finished:
            return events
        changed = self._changed
        try:
            async with asyncio.timeout(timeout):
                await changed.wait()
        except TimeoutError:
            return []
        return self.events_after(after)

    def snapshot(self) -> dict[str, JsonValue]:
        """The body of `GET /webrtc/sessions/{id}`."""
        return {
            "session_id": self.session_id,
            "state": self._state.value,
            "call_id": self.call_id,
            "dial": self.dial,
            "created": round(self.created, 3),
            "reason": self.reason,
            "sip_status": self.sip_status,
            "message": self.message,
            "last_event_id": self._seq,
            "events": [e.to_json() for e in self._events],
        }
