"""In-memory fakes of signaling's own service interfaces, and an app built around them for tests."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway.config import Config
from gateway.config.loader import load_config
from gateway.identity import InMemoryPresence, WebUser
from gateway.identity.lookup import identity_map_from_config
from gateway.signaling.errors import BadRequest, Conflict, NotFound, ServiceError
from gateway.signaling.http import HealthSource, build_app
from gateway.signaling.http_api.progress import SessionProgress
from gateway.signaling.limits import SignalingLimits
from gateway.signaling.routes import add_signaling_routes
from gateway.signaling.service import (
    EarlyAnswerSink,
    JsonValue,
    OfferResult,
    SelectiveEarlyAnswerSink,
    SessionSink,
)
from sdp import IceCandidateInit
from tests.conftest import REPO

ALICE_SECRET = "alice-demo"
BOB_SECRET = "bob-demo"
FAILING_NUMBER = "666"  # the fake call service refuses to dial this
OFFER_SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
ANSWER_SDP = "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"


def demo_config(**env: str) -> Config:
    return load_config(REPO / "gateway.yaml", env)


def _early_answer(session: EarlyAnswerSink, call_id: str) -> None:
    """As ``Driver.early_answer``: a WebSocket session gets it for the calls placed with `early_answer`."""
    if not isinstance(session, SelectiveEarlyAnswerSink) or session.wants_early_answer(call_id):
        session.web_answer(call_id, ANSWER_SDP)


@dataclass
class FakeCallService:
    """Records what signaling asked; `dial` to FAILING_NUMBER raises, as a refusing call layer would."""

    calls: list[tuple[str, Any]] = field(default_factory=list)
    sessions: dict[str, SessionSink] = field(default_factory=dict)
    closed: list[str] = field(default_factory=list)
    next_call: int = 1
    closed_event: asyncio.Event = field(default_factory=asyncio.Event)
    fake_early_answers: bool = True  # dial sends ANSWER_SDP as the early answer (False: the subclass's own)

    async def session_opened(self, session: SessionSink) -> None:
        self.sessions[session.id] = session

    async def session_closed(self, session: SessionSink) -> None:
        self.closed.append(session.id)
        self.closed_event.set()

    async def dial(
        self,
        session: SessionSink,
        to: str,
        sdp: str,
        headers: tuple[tuple[str, str], ...] = (),
        transfer_of: str | None = None,
    ) -> str:
        if to == FAILING_NUMBER:
            raise ServiceError("the number 666 is not in service", code="no_such_number", field="to")
        if to == "boom":
            raise RuntimeError("a bug in the call layer")
        call_id = f"c{self.next_call}"
        self.next_call += 1
        self.calls.append(("dial", (session.id, to, sdp)))
        if self.fake_early_answers and isinstance(session, EarlyAnswerSink):  # as the call runtime
            asyncio.get_running_loop().call_soon(_early_answer, session, call_id)
        return call_id

    def _known(self, call_id: str) -> None:
        if not call_id.startswith("c"):
            raise NotFound(f"no call {call_id!r}", field="call_id")

    async def answer(self, session: SessionSink, call_id: str, sdp: str | None) -> None:
        self._known(call_id)
        self.calls.append(("answer", (call_id, sdp)))

    async def reject(self, session: SessionSink, call_id: str, status: int) -> None:
        self._known(call_id)
        self.calls.append(("reject", (call_id, status)))

    async def request_offer(self, session: SessionSink, call_id: str) -> None:
        self._known(call_id)
        self.calls.append(("request_offer", (call_id,)))

    async def cancel(self, session: SessionSink, call_id: str) -> None:
        self._known(call_id)
        self.calls.append(("cancel", call_id))

    async def hangup(self, session: SessionSink, call_id: str) -> None:
        self._known(call_id)
        self.calls.append(("hangup", call_id))

    async def hold(self, session: SessionSink, call_id: str) -> None:
        self._known(call_id)
        self.calls.append(("hold", call_id))

    async def transfer(
        self, session: SessionSink, call_id: str, to: str | None, replaces: str | None
    ) -> None:
        self._known(call_id)
        self.calls.append(("transfer", (call_id, to, replaces)))

    async def resume(self, session: SessionSink, call_id: str) -> None:
        self._known(call_id)
        self.calls.append(("resume", call_id))

    async def dtmf(self, session: SessionSink, call_id: str, digits: str, duration_ms: int | None) -> None:
        self._known(call_id)
        self.calls.append(("dtmf", (call_id, digits, duration_ms)))

    async def info(self, session: SessionSink, call_id: str, content_type: str, body: str) -> None:
        self._known(call_id)
        self.calls.append(("info", (call_id, content_type, body)))

    async def message(self, session: SessionSink, to: str, body: str) -> int:
        self.calls.append(("message", (to, body)))
        return 200

    async def add_candidate(
        self, session: SessionSink, call_id: str, candidate: IceCandidateInit | None
    ) -> None:
        self._known(call_id)
        self.calls.append(("ice", (call_id, candidate)))


@dataclass
class FakeOfferService:
    sessions: dict[str, str] = field(default_factory=dict)  # session id -> user id
    progresses: dict[str, SessionProgress] = field(default_factory=dict)
    candidates: list[tuple[str, IceCandidateInit | None]] = field(default_factory=list)
    controls: list[tuple[str, str, str]] = field(default_factory=list)  # (session, action, its argument)
    dialled: list[str | None] = field(default_factory=list)
    transfers_of: list[str] = field(default_factory=list)  # the offers' transfer_of
    delay: float = 0.0

    async def offer(
        self,
        user: WebUser,
        sdp: str,
        dial: str | None,
        metadata: Mapping[str, JsonValue],
        session_id: str | None,
        *,
        api_key: str | None = None,
        transfer_of: str | None = None,
        renewable: bool = False,
    ) -> OfferResult:
        await asyncio.sleep(self.delay)
        if transfer_of is not None:
            self._own(user, transfer_of)
            self.transfers_of.append(transfer_of)
            dial = dial or f"refer-target-of-{transfer_of}"  # the REFER's target, as the driver dials
        self.dialled.append(dial)
        if dial is None:
            raise BadRequest("metadata.dial is required", field="metadata.dial")
        if dial == FAILING_NUMBER:
            raise ServiceError(
                "the number 666 is not in service", code="no_such_number", field="metadata.dial"
            )
        if session_id is not None and session_id in self.sessions:
            raise Conflict(f"session {session_id!r} exists already", field="session_id")
        session_id = session_id or f"s{len(self.sessions) + 1}"
        self.sessions[session_id] = user.id
        self.progresses[session_id] = SessionProgress(session_id, dial=dial)
        return OfferResult(session_id, ANSWER_SDP, (), metadata, call_id=f"c-{session_id}")

    def _own(self, user: WebUser, session_id: str) -> None:
        if self.sessions.get(session_id) != user.id:
            raise NotFound(f"no session {session_id!r}", field="session_id")

    async def add_candidate(self, user: WebUser, session_id: str, candidate: IceCandidateInit | None) -> None:
        self._own(user, session_id)
        self.candidates.append((session_id, candidate))

    async def close(self, user: WebUser, session_id: str) -> None:
        self._own(user, session_id)
        del self.sessions[session_id]
        self.progresses.pop(session_id).record("closed")

    async def control(
        self, user: WebUser, session_id: str, action: str, *, digits: str = "", duration_ms: int | None = None,
        to: str = "", body: str = "", replaces: str = "", other: str = "",
    ) -> None:  # fmt: skip
        self._own(user, session_id)
        for named in (replaces, other):
            if named:
                self._own(user, named)
        self.controls.append((session_id, action, digits or to or body or replaces or other))

    async def progress(self, user: WebUser, session_id: str) -> SessionProgress:
        self._own(user, session_id)
        return self.progresses[session_id]


@dataclass
class Harness:
    app: web.Application
    calls: FakeCallService
    offers: FakeOfferService
    presence: InMemoryPresence
    config: Config
    now: list[float]  # the Unix clock the tokens see; tests move it

    @property
    def clock_value(self) -> float:
        return self.now[0]


def make_harness(
    limits: SignalingLimits | None = None,
    config: Config | None = None,
    calls: FakeCallService | None = None,
) -> Harness:
    config = config or demo_config()
    presence = InMemoryPresence()
    identity = identity_map_from_config(config, presence)
    calls, offers = calls or FakeCallService(), FakeOfferService()
    now = [1_800_000_000.0]
    app = build_app(HealthSource(started_at=0.0))
    add_signaling_routes(
        app,
        call_service=calls,
        offer_service=offers,
        identity=identity,
        presence=presence,
        config=config,
        clock=lambda: now[0],
        limits=limits,
    )
    return Harness(app, calls, offers, presence, config, now)
