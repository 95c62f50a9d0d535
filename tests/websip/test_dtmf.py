"""The SIP party's DTMF relayed to a SIP library (gateway/websip/sessions.py): each `dtmf` event is an
INFO application/dtmf-relay in the call's answered dialog, one after the other in order; a refusal
leaves the call as it is, a 481 or no answer (408) hangs it up; no answered dialog, no INFO."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, cast

from gateway.identity import WebUser
from gateway.signaling import events as sig
from gateway.sip.useragent.incoming import IncomingCall
from gateway.sip.useragent.ua_calls import CallState
from gateway.websip.registrar import Flow
from gateway.websip.service import WebSipService
from gateway.websip.sessions import WebSipSession


class Response:
    def __init__(self, status: int) -> None:
        self.status = status


class Leg:
    """The library's dialog: answers each INFO with the next of ``statuses`` (then 200)."""

    call_id = "sip-call-id"

    def __init__(self, *statuses: int, state: CallState = CallState.CONFIRMED) -> None:
        self.statuses = list(statuses)
        self.state = state
        self.infos: list[tuple[str, str]] = []
        self.out = 0  # INFOs under way: never more than one

    async def info(self, content_type: str, body: str) -> Response:
        self.out += 1
        assert self.out == 1, "an INFO before the answer to the one before"
        self.infos.append((content_type, body))
        await asyncio.sleep(0.001)
        self.out -= 1
        return Response(self.statuses.pop(0) if self.statuses else 200)


class Calls:
    def __init__(self) -> None:
        self.hung_up: list[str] = []

    async def hangup(self, session: object, call_id: str) -> None:
        self.hung_up.append(call_id)


class Service:
    def __init__(self) -> None:
        self.calls = Calls()
        self.tasks: list[asyncio.Task[None]] = []

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self.tasks.append(asyncio.ensure_future(coro))


async def _relayed(leg: Leg, digits: str) -> Service:
    service = Service()
    session = WebSipSession(cast(WebSipService, service), cast(WebUser, object()), cast(Flow, object()))
    session.legs["c"] = cast(IncomingCall, leg)
    for digit in digits:  # each while the INFO of the one before is out
        await session.send_event(sig.DtmfReceived("c", digit, 160))
        await asyncio.sleep(0)
    while not all(t.done() for t in service.tasks):
        await asyncio.gather(*service.tasks)
    return service


async def test_each_digit_is_an_info_after_the_answer_to_the_one_before() -> None:
    leg = Leg()
    service = await _relayed(leg, "1#9")
    assert leg.infos == [("application/dtmf-relay", f"Signal={d}\r\nDuration=160\r\n") for d in "1#9"]
    assert len(service.tasks) == 1 and not service.calls.hung_up


async def test_a_refusal_leaves_the_call_a_481_or_a_timeout_hangs_it_up() -> None:
    leg = Leg(415)
    service = await _relayed(leg, "12")
    assert len(leg.infos) == 2 and not service.calls.hung_up
    for status in (481, 408):
        leg = Leg(status)
        service = await _relayed(leg, "12")
        assert len(leg.infos) == 1 and service.calls.hung_up == ["c"]


async def test_no_answered_dialog_no_info() -> None:
    leg = Leg(state=CallState.EARLY)
    service = await _relayed(leg, "5")
    assert not leg.infos and not service.tasks
