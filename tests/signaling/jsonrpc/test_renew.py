"""gateway.signaling.jsonrpc.renew: a pass-through call's `offer {call_id, sdp}` goes to the call layer as
the browser's own re-offer, and the result is the answer the call layer sends back for that call (or its
refusal), whatever comes for other calls meanwhile. Driven with a call service of the test's own: the
end-to-end path (a SIP WebRTC peer's re-INVITE) is tests/e2e/media/test_webrtc_passthrough.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.signaling import events as sig
from gateway.signaling.errors import BadRequest, Conflict
from gateway.signaling.jsonrpc import renew
from gateway.signaling.jsonrpc.renew import Renewals


class PassthroughCalls:
    """Pass-through calls "p1" and "p2" ("p2" waiting for its browser: its peer's socket went, or it was
    taken over); what ``reoffer`` and ``reattach`` got, in order."""

    def __init__(self) -> None:
        self.reoffers: list[tuple[str, str]] = []
        self.reattached: list[tuple[str, str]] = []

    def passthrough(self, call_id: str) -> bool:
        return call_id in ("p1", "p2")

    def web_media_lost(self, session: Any, call_id: str) -> bool:
        return call_id == "p2"

    async def reoffer(self, session: Any, call_id: str, sdp: str) -> None:
        self.reoffers.append((call_id, sdp))

    async def reattach(self, session: Any, call_id: str, sdp: str) -> None:
        self.reattached.append((call_id, sdp))


async def test_the_far_ends_answer_for_that_call_is_the_result() -> None:
    renewals, calls = Renewals(), PassthroughCalls()
    task = asyncio.ensure_future(renewals.offer(calls, object(), "p1", "v=0 offer"))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert calls.reoffers == [("p1", "v=0 offer")]
    renewals.answered("p2", "another call's")  # not waited for: ignored
    renewals.answered("p1", "v=0 answer")
    assert await task == "v=0 answer"


async def test_the_far_ends_refusal_is_a_conflict_with_its_reason() -> None:
    renewals, calls = Renewals(), PassthroughCalls()
    task = asyncio.ensure_future(renewals.offer(calls, object(), "p1", "v=0 offer"))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    renewals.refused("p1", "renegotiation_failed", "The other side refused it (SIP 488)")
    with pytest.raises(Conflict, match="SIP 488") as refused:
        await task
    assert refused.value.code == "renegotiation_failed" and refused.value.field == "sdp"


async def test_no_answer_in_time_is_a_conflict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(renew, "RELAY_TIMEOUT", 0.05)
    with pytest.raises(Conflict, match="in time"):
        await Renewals().offer(PassthroughCalls(), object(), "p1", "v=0 offer")  # type: ignore[arg-type]


async def test_a_call_that_does_not_pass_through_is_not_reoffered() -> None:
    calls = PassthroughCalls()
    with pytest.raises(BadRequest, match="restarts no ICE session"):
        await Renewals().offer(calls, object(), "bridged", "v=0 offer")  # type: ignore[arg-type]
    assert calls.reoffers == []


async def test_only_the_calls_refusal_or_end_fails_the_waiting_offer() -> None:
    renewals, calls = Renewals(), PassthroughCalls()
    task = asyncio.ensure_future(renewals.offer(calls, object(), "p1", "v=0 offer"))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    renewals.heard(sig.ErrorMessage("hold_failed", "not now", call_id="p1"))  # another request's error
    renewals.heard(sig.Ended("p2", "hangup", "", None))  # another call
    assert not task.done()
    renewals.heard(sig.Ended("p1", "remote_hangup", "", 481))
    with pytest.raises(Conflict, match="the call ended"):
        await task


async def test_the_answer_event_is_the_result() -> None:
    renewals = Renewals()
    task = asyncio.ensure_future(renewals.offer(PassthroughCalls(), object(), "p1", "v=0 offer"))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    renewals.heard(sig.Answer("p1", "v=0 answer"))
    assert await task == "v=0 answer"


async def test_a_call_waiting_for_its_peer_is_taken_back_through_the_far_end() -> None:
    """Issue 34: the peer's socket went (or its instance died and a survivor took the call over): its
    offer takes the call back (`reattach`: the call layer relays it to the far end in a re-INVITE), not as
    a re-offer of an attached browser, and the `reattached` answer is the result."""
    renewals, calls = Renewals(), PassthroughCalls()
    task = asyncio.ensure_future(renewals.offer(calls, object(), "p2", "v=0 new"))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert calls.reattached == [("p2", "v=0 new")] and calls.reoffers == []
    renewals.heard(sig.Reattached("p2", "v=0 far end's", False, False))
    assert await task == "v=0 far end's"
