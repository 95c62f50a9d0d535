"""An HTTP API session's new offer waiting for its outcome (gateway/runtime/offers.py `_renewal`): a new
web leg's `reattached` or a pass-through far end's `answer` gives the answer; the far end's refusal
(`renegotiation_failed`) and the call's end fail the waiting request; other errors leave it waiting."""

from __future__ import annotations

import asyncio

import pytest

from gateway.identity import SipAddress, WebUser
from gateway.runtime.offers import HttpSession
from gateway.signaling import events as sig
from gateway.signaling.errors import Conflict

ALICE = WebUser("alice", "Alice", SipAddress.parse("sip:1001@pbx.example"))


def waiting() -> tuple[HttpSession, asyncio.Future[str]]:
    session = HttpSession(ALICE, session_id="s1")
    session.call_id = "c1"
    session.renewal = asyncio.get_running_loop().create_future()
    return session, session.renewal


@pytest.mark.parametrize("event", [sig.Reattached("c1", "v=0 new"), sig.Answer("c1", "v=0 new")])
async def test_the_new_offers_answer_reaches_the_waiting_request(event: sig.Event) -> None:
    session, renewal = waiting()
    await session.send_event(event)
    assert renewal.result() == "v=0 new"
    assert [e.name for e in session.progress.events_after(0)] == ["renewed"]


async def test_a_refusal_fails_it_and_other_errors_do_not() -> None:
    session, renewal = waiting()
    await session.send_event(sig.ErrorMessage("hold_failed", "The other side refused the hold"))
    assert not renewal.done()
    await session.send_event(sig.ErrorMessage("renegotiation_failed", "The other side refused it (SIP 488)"))
    with pytest.raises(Conflict, match="SIP 488") as refused:
        renewal.result()
    assert refused.value.code == "renegotiation_failed"


async def test_the_calls_end_fails_it() -> None:
    session, renewal = waiting()
    await session.send_event(sig.Ended("c1", "remote_hangup"))
    with pytest.raises(Conflict, match="the call ended"):
        renewal.result()
    assert session.answer.exception() is not None  # (the first offer's, long answered in a real call)


async def test_a_second_new_offer_while_one_waits_is_refused_and_the_first_keeps_its_answer() -> None:
    from gateway.runtime.http_offers import _outcome

    session, _ = waiting()  # a new offer of the session's waits for its answer
    first = session.renewal
    started: list[str] = []

    async def start() -> None:
        started.append("second")

    with pytest.raises(Conflict, match="under way"):
        await _outcome(session, start(), 1.0, "late")
    assert started == [] and session.renewal is first  # the second never went; the first still waits
    await session.send_event(sig.Answer("c1", "v=0 first's"))
    assert first is not None and first.result() == "v=0 first's"
