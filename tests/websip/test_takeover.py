"""A SIP library's call taken over by a survivor (gateway/websip/takeover.py): what its handover holds,
and the library's re-INVITE taken as the call's new web media only while the call waits for it."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Coroutine
from typing import Any, cast

import pytest

from gateway.identity import SipAddress, WebUser
from gateway.signaling import events as sig
from gateway.signaling.errors import SignalingError
from gateway.sip.useragent.incoming import IncomingCall
from gateway.sip.useragent.ua_calls import CallState
from gateway.websip.flows import identities
from gateway.websip.registrar import Flow
from gateway.websip.service import WebSipService
from gateway.websip.sessions import WebSipSession
from gateway.websip.takeover import Renewals, handover
from tests.websip.test_registrar import outbound as register_outbound

ALICE = WebUser("alice", "Alice", SipAddress.parse("sip:1001@pbx.example"))


class Calls:
    """The call core as the renewal sees it: whether the call waits for new web media, and `reattach`."""

    def __init__(self, lost: bool) -> None:
        self.lost = lost
        self.reattached: list[tuple[str, str]] = []
        self.resumed: list[str] = []
        self.held: list[str] = []

    def web_media_lost(self, session: object, call_id: str) -> bool:
        return self.lost

    async def reattach(self, session: object, call_id: str, sdp: str) -> None:
        self.reattached.append((call_id, sdp))

    async def resume(self, session: object, call_id: str) -> None:
        self.resumed.append(call_id)

    async def hold(self, session: object, call_id: str) -> None:
        self.held.append(call_id)


class Service:
    def __init__(self, calls: Calls) -> None:
        self.calls = calls
        self.tasks: list[asyncio.Task[None]] = []

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self.tasks.append(asyncio.ensure_future(coro))


class Leg:
    call_id = "sip-call-id"
    remote_sdp = "v=0\r\na=ice-ufrag:lib1\r\n"

    def __init__(self, state: CallState) -> None:
        self.state = state

    def handover(self) -> dict[str, Any]:
        return {"call_id": self.call_id}

    async def events(self) -> Any:  # the library's requests in the dialog: none here
        await asyncio.Event().wait()
        yield None


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
    assert await Renewals().renewed(calls, s, "c", "v=0 offer", True) is None  # media not lost
    calls.lost = True
    # a hold, a session refresh: its offer keeps the browser's old ICE session, no new leg can answer it
    assert await Renewals().renewed(calls, s, "c", "v=0 offer", False) is None
    assert calls.reattached == []

    renewals = Renewals()
    waiting = asyncio.ensure_future(renewals.renewed(calls, s, "c", "v=0 offer", True))
    await asyncio.sleep(0)
    assert calls.reattached == [("c", "v=0 offer")]
    with pytest.raises(SignalingError, match="under way"):
        await renewals.renewed(calls, s, "c", "v=0 again", True)
    assert not renewals.answered("other", "v=0")  # another call's answer is not this one's
    assert renewals.answered("c", "v=0 new leg")
    assert await waiting == "v=0 new leg"
    assert not renewals.answered("c", "v=0 late")  # nothing waits any more


async def test_a_call_ending_refuses_its_waiting_renewal() -> None:
    s, calls = session()
    renewals = Renewals()
    waiting = asyncio.ensure_future(renewals.renewed(calls, s, "c", "v=0 offer", True))
    await asyncio.sleep(0)
    renewals.heard(sig.Ended("c", "remote_hangup", "the other side hung up"))
    with pytest.raises(SignalingError, match="hung up"):
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
    s._video.library_said("c", "v=0\r\na=ice-ufrag:old\r\n")  # the library's description before
    restart = "v=0\r\na=ice-ufrag:new\r\na=sendrecv\r\n"
    reinvite = asyncio.ensure_future(s._reinvite("c", cast(Any, library), restart))
    await asyncio.sleep(0)
    await s.send_event(sig.Reattached("c", "v=0 from the new web leg\r\n"))
    await reinvite
    assert calls.reattached == [("c", restart)]
    assert library.answered == ["v=0 from the new web leg\r\na=sendrecv\r\n"]  # the direction mirrored
    assert calls.resumed == ["c"]


async def test_an_offer_asked_for_is_answered_mirrored_and_with_our_last_answer_when_not_renewed() -> None:
    """Our re-INVITE asking the library for an offer: the new web leg's answer, or our last one when no
    new leg could be made (the library keeps its call: an ACK without an answer would end it), in
    either case with the direction mirrored and the library's hold told to the call core."""
    s, calls = session()
    s._answers["c"] = "v=0 last\r\na=sendrecv\r\n"  # (our last answer to the library)
    held = "v=0 library\r\na=ice-ufrag:lib\r\na=sendonly\r\n"
    assert await s.renewal_answer("c", held, None) == "v=0 last\r\na=recvonly\r\n"
    assert calls.held == ["c"]
    resumed = held.replace("sendonly", "sendrecv")
    assert (
        await s.renewal_answer("c", resumed, "v=0 new leg\r\na=sendrecv\r\n")
        == "v=0 new leg\r\na=sendrecv\r\n"
    )
    assert calls.resumed == ["c"] and s._answers["c"] == "v=0 new leg\r\na=sendrecv\r\n"
    assert await s.renewal_answer("other", resumed, None) is None  # no answer of ours to fall back on


class Presence:
    def __init__(self) -> None:
        self.online: list[tuple[str, str]] = []

    async def add(self, user_id: str, session_id: str) -> None:
        self.online.append((user_id, session_id))

    async def remove(self, user_id: str, session_id: str) -> None:
        self.online.remove((user_id, session_id))


class Opened:
    def __init__(self) -> None:
        self.opened: list[str] = []
        self.closed: list[str] = []

    async def session_opened(self, session: WebSipSession) -> None:
        self.opened.append(session.id)

    async def session_closed(self, session: WebSipSession) -> None:
        self.closed.append(session.id)


def service() -> tuple[WebSipService, Opened, Presence]:
    from gateway.config.schema import SipWebSocket
    from gateway.sip.transport_ws import WsTransport
    from tests.e2e.harness import gateway_config

    config = gateway_config(None)
    config = dataclasses.replace(config, sip=dataclasses.replace(config.sip, websocket=SipWebSocket()))
    calls, presence = Opened(), Presence()
    made = WebSipService(
        config, cast(Any, None), cast(Any, calls), cast(Any, None), WsTransport(False, ("127.0.0.1", 8080)),
        cast(Any, presence),
    )  # fmt: skip
    return made, calls, presence


async def test_a_librarys_calls_taken_over_share_the_session_made_again() -> None:
    """Two calls of one library carry the same session id: the second finds the session the first made
    again, which waits once for the library's flow (and its id is told to the cluster once)."""
    web_sip, calls, _ = service()
    held: list[frozenset[str]] = []
    web_sip.on_held = held.append
    alice = ALICE
    known = frozenset({"instance <urn:uuid:1>"})
    first = await web_sip.session_again(alice, "sipws-7-dead", known)
    first.take_back("c1", cast(Any, Leg(CallState.CONFIRMED)), "v=0 a")
    assert web_sip.hold(first)
    second = await web_sip.session_again(alice, "sipws-7-dead", known)
    assert second is first and calls.opened == ["sipws-7-dead"]
    second.take_back("c2", cast(Any, Leg(CallState.CONFIRMED)), "v=0 b")
    assert web_sip.hold(second)
    assert held == [known] and len(web_sip.lost) == 1
    assert sorted(first.answered_calls()) == ["c1", "c2"]
    web_sip.lost.drain()


async def test_a_library_registered_here_before_the_takeover_ended_gets_its_session_at_once() -> None:
    """The library's REGISTER reached the survivor before the takeover had made its session again: the
    session moves to that flow at once (nothing would bring the library back otherwise)."""
    web_sip, calls, presence = service()
    flow = Flow("WS", ("192.0.2.5", 40000))
    request = register_outbound("<sip:a@x.invalid;transport=ws>")
    assert web_sip.registrar.register(request, "alice", flow).status == 200
    known = identities(web_sip.registrar.on_flow(flow))
    alice = ALICE
    made = await web_sip.session_again(alice, "sipws-3-dead", known)
    made.take_back("c1", cast(Any, Leg(CallState.CONFIRMED)), "v=0 a")
    assert web_sip.hold(made)
    assert made.flow == flow and len(web_sip.lost) == 0
    await asyncio.sleep(0)
    assert presence.online == [("alice", "sipws-3-dead")]
    assert web_sip.hold(made)  # a further call of it: nothing moves again, nothing is closed
    assert calls.closed == []


async def test_a_call_a_drain_handed_over_is_forgotten_without_a_word_to_the_library() -> None:
    """A drain handed the call, the library's dialog with it, to another instance (`forget_call`): the
    dialog is released, not ended with BYE (it is the other instance's now), and the session neither
    holds nor hands the call over any more, so that its flow, idle, closes with 1012."""

    class Handed(Leg):
        def __init__(self) -> None:
            super().__init__(CallState.CONFIRMED)
            self.ended = False
            self.released = 0

        def release(self) -> None:
            self.released += 1
            self.ended = True

        async def bye(self) -> None:
            raise AssertionError("a BYE to the library")

    s, _ = session()
    s.identities = frozenset({"instance <urn:uuid:1>"})
    leg = Handed()
    s.take_back("c", cast(Any, leg), "v=0 a")
    assert s.answered_calls() == ["c"] and s.handover("c") is not None
    s.forget_call("c")
    assert leg.released == 1
    assert s.answered_calls() == [] and s.handover("c") is None and not s.legs
    s.forget_call("c")  # (again: nothing left to forget)
    assert leg.released == 1
