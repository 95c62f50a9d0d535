"""A SIP library's call taken over by a survivor (gateway/websip/takeover.py): what its handover holds,
and the library's re-INVITE taken as the call's new web media only while the call waits for it."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, cast

import pytest

from gateway.identity import WebUser
from gateway.signaling import events as sig
from gateway.signaling.errors import SignalingError
from gateway.sip.useragent.incoming import IncomingCall
from gateway.sip.useragent.ua_calls import CallState
from gateway.websip.registrar import Flow
from gateway.websip.service import WebSipService
from gateway.websip.sessions import WebSipSession
from gateway.websip.takeover import Renewals, handover


class Calls:
    """The call core as the renewal sees it: whether the call waits for new web media, and `reattach`."""

    def __init__(self, lost: bool) -> None:
        self.lost = lost
        self.reattached: list[tuple[str, str]] = []

    def web_media_lost(self, session: object, call_id: str) -> bool:
        return self.lost

    async def reattach(self, session: object, call_id: str, sdp: str) -> None:
        self.reattached.append((call_id, sdp))


class Service:
    def __init__(self, calls: Calls) -> None:
        self.calls = calls
        self.tasks: list[asyncio.Task[None]] = []

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self.tasks.append(asyncio.ensure_future(coro))


class Leg:
    call_id = "sip-call-id"

    def __init__(self, state: CallState) -> None:
        self.state = state

    def handover(self) -> dict[str, Any]:
        return {"call_id": self.call_id}


def session(lost: bool = True) -> tuple[WebSipSession, Any]:
    calls = Calls(lost)
    made = WebSipSession(
        cast(WebSipService, Service(calls)), cast(WebUser, object()), cast(Flow, object()), "sipws-9"
    )
    return made, calls


async def test_an_answered_dialog_of_a_recognisable_browser_is_handed_over() -> None:
    s, _ = session()
    s.identities = frozenset({"instance <urn:uuid:1>"})
    confirmed = cast(IncomingCall, Leg(CallState.CONFIRMED))
    assert handover(s, "c", confirmed, "v=0 answer") == {
        "session_id": "sipws-9",
        "dialog": {"call_id": "sip-call-id"},
        "answer": "v=0 answer",
        "identities": ["instance <urn:uuid:1>"],
    }
    assert handover(s, "c", cast(IncomingCall, Leg(CallState.EARLY)), "v=0") is None  # not answered
    assert handover(s, "c", confirmed, None) is None  # nothing of ours said to it yet
    s.identities = frozenset()
    assert handover(s, "c", confirmed, "v=0") is None  # never registered: not known on a new flow


async def test_a_re_invite_renews_the_media_only_while_the_call_waits_for_it() -> None:
    s, calls = session(lost=False)
    assert await Renewals().renewed(calls, s, "c", "v=0 offer") is None  # hold, resume, a refresh
    assert calls.reattached == []

    calls.lost = True
    renewals = Renewals()
    waiting = asyncio.ensure_future(renewals.renewed(calls, s, "c", "v=0 offer"))
    await asyncio.sleep(0)
    assert calls.reattached == [("c", "v=0 offer")]
    with pytest.raises(SignalingError, match="under way"):
        await renewals.renewed(calls, s, "c", "v=0 again")
    assert not renewals.answered("other", "v=0")  # another call's answer is not this one's
    assert renewals.answered("c", "v=0 new leg")
    assert await waiting == "v=0 new leg"
    assert not renewals.answered("c", "v=0 late")  # nothing waits any more


async def test_a_call_ending_refuses_its_waiting_renewal() -> None:
    s, calls = session()
    renewals = Renewals()
    waiting = asyncio.ensure_future(renewals.renewed(calls, s, "c", "v=0 offer"))
    await asyncio.sleep(0)
    renewals.ended("c")
    with pytest.raises(SignalingError, match="ended"):
        await waiting


async def test_the_session_passes_the_reattached_answer_to_the_waiting_re_invite() -> None:
    s, calls = session()

    class Library:
        def __init__(self) -> None:
            self.answered: list[str] = []

        def answer_reinvite(self, sdp: str) -> None:
            self.answered.append(sdp)

    library = Library()
    s._answers["c"] = "v=0 before"  # (the answer it last gave the library)
    reinvite = asyncio.ensure_future(s._reinvite("c", cast(Any, library), "v=0 restart"))
    await asyncio.sleep(0)
    await s.send_event(sig.Reattached("c", "v=0 from the new web leg"))
    await reinvite
    assert calls.reattached == [("c", "v=0 restart")]
    assert library.answered == ["v=0 from the new web leg"]
