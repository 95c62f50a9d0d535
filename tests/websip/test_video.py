"""Video mid-call on a SIP WebSocket session (gateway/websip/video.py): which re-offers change the video,
the library's re-INVITE answered or refused from the call core's events, the gateway's offer sent as a
re-INVITE and its answer given to the call core."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, cast

import pytest

from gateway.signaling import events as sig
from gateway.signaling.errors import BadRequest, Conflict, NotFound, SignalingError
from gateway.signaling.service import CallService, SessionSink
from gateway.sip.useragent.ua_calls import Call
from gateway.sip.useragent.ua_events import ReinviteResult
from gateway.websip.video import MidcallVideo, live_video

AUDIO = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=setup:actpass\r\n"
VIDEO = AUDIO + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
DROPPED = AUDIO + "m=video 0 UDP/TLS/RTP/SAVPF 96\r\n"
ANSWER = (
    "v=0\r\nm=audio 40000 UDP/TLS/RTP/SAVPF 111\r\na=setup:active\r\nm=video 40000 UDP/TLS/RTP/SAVPF 96\r\n"
)


class Calls:
    """The call core as the session sees it: its re-offer refused with ``refusal`` or taken."""

    def __init__(self, refusal: SignalingError | None = None) -> None:
        self.refusal = refusal
        self.reoffers: list[str] = []
        self.answers: list[str | None] = []

    async def reoffer(self, session: SessionSink, call_id: str, sdp: str) -> None:
        if self.refusal is not None:
            raise self.refusal
        self.reoffers.append(sdp)

    async def answer(self, session: SessionSink, call_id: str, sdp: str | None) -> None:
        self.answers.append(sdp)


class Leg:
    """What the session does to the library's dialog: its re-INVITE answered or refused, ours sent."""

    call_id = "sip-1"

    def __init__(self, result: ReinviteResult | None = None) -> None:
        self.result = result
        self.done: list[tuple[str, object]] = []

    def answer_reinvite(self, sdp: str) -> None:
        self.done.append(("200", sdp))

    def reject_reinvite(self, status: int = 488, reason: str | None = None) -> None:
        self.done.append(("reject", status))

    async def reinvite(self, sdp: str) -> ReinviteResult:
        self.done.append(("reinvite", sdp))
        assert self.result is not None
        return self.result


def video(calls: Calls) -> tuple[MidcallVideo, dict[str, str], list[asyncio.Task[None]]]:
    tasks: list[asyncio.Task[None]] = []

    def spawn(coro: Coroutine[Any, Any, None]) -> None:
        tasks.append(asyncio.ensure_future(coro))

    answers: dict[str, str] = {"c1": AUDIO}
    midcall = MidcallVideo(cast(SessionSink, object()), cast(CallService, calls), spawn, answers)
    midcall.settled("c1", AUDIO)
    return midcall, answers, tasks


def test_live_video_is_an_m_line_with_a_port() -> None:
    assert not live_video(AUDIO) and live_video(VIDEO) and not live_video(DROPPED)


def test_only_a_video_change_goes_to_the_sip_side() -> None:
    midcall, _, _ = video(Calls())
    assert midcall.changes("c1", VIDEO)  # video added
    assert not midcall.changes("c1", AUDIO.replace("a=setup", "a=sendonly\r\na=setup"))  # a hold
    assert not midcall.changes("c2", VIDEO)  # a call it knows nothing of
    midcall.settled("c1", ANSWER)
    assert midcall.changes("c1", DROPPED) and not midcall.changes("c1", VIDEO)


async def test_the_library_gets_the_answer_once_the_sip_side_took_it() -> None:
    calls = Calls()
    midcall, answers, _ = video(calls)
    leg = Leg()
    await midcall.from_library("c1", cast(Call, leg), VIDEO)
    assert calls.reoffers == [VIDEO] and leg.done == []  # waiting for the SIP side
    assert midcall.event("c1", sig.Answer("c1", ANSWER), None)
    assert leg.done == [("200", ANSWER)] and answers["c1"] == ANSWER
    assert midcall.changes("c1", DROPPED)  # the video is live now
    assert not midcall.event("c1", sig.Answer("c1", ANSWER), None)  # nothing waits any more


@pytest.mark.parametrize(("sip_status", "expected"), [(603, 603), (491, 491), (None, 488)])
async def test_the_sip_side_refusal_goes_to_the_library(sip_status: int | None, expected: int) -> None:
    midcall, answers, _ = video(Calls())
    leg = Leg()
    await midcall.from_library("c1", cast(Call, leg), VIDEO)
    refused = sig.ErrorMessage("renegotiation_failed", "no", call_id="c1", sip_status=sip_status)
    assert midcall.event("c1", refused, None)
    assert leg.done == [("reject", expected)] and answers["c1"] == AUDIO
    assert midcall.changes("c1", VIDEO)  # as it was: the library may offer again


@pytest.mark.parametrize(
    ("refusal", "status"),
    [(Conflict("busy"), 491), (NotFound("gone"), 481), (BadRequest("bad"), 488)],
)
async def test_a_reoffer_the_call_core_refuses_is_refused_at_once(
    refusal: SignalingError, status: int
) -> None:
    midcall, _, _ = video(Calls(refusal))
    leg = Leg()
    await midcall.from_library("c1", cast(Call, leg), VIDEO)
    assert leg.done == [("reject", status)]
    assert not midcall.event("c1", sig.Answer("c1", ANSWER), None)


async def test_a_second_reoffer_meanwhile_gets_491() -> None:
    midcall, _, _ = video(Calls())
    first, second = Leg(), Leg()
    await midcall.from_library("c1", cast(Call, first), VIDEO)
    await midcall.from_library("c1", cast(Call, second), VIDEO)
    assert first.done == [] and second.done == [("reject", 491)]


async def test_the_gateway_offer_goes_to_the_library_and_its_answer_to_the_call_core() -> None:
    calls = Calls()
    midcall, answers, tasks = video(calls)
    leg = Leg(ReinviteResult(200, "OK", ANSWER))
    assert not midcall.event("c1", sig.Offer("c1", VIDEO), None)  # ringing: not ours
    assert midcall.event("c1", sig.Offer("c1", VIDEO), cast(Call, leg))
    await asyncio.gather(*tasks)
    assert leg.done == [("reinvite", VIDEO)] and calls.answers == [ANSWER]
    assert "a=setup:passive" in answers["c1"] and live_video(answers["c1"])  # hold answers from now on


async def test_a_library_refusing_the_gateway_offer_answers_nothing() -> None:
    calls = Calls()
    midcall, answers, tasks = video(calls)
    leg = Leg(ReinviteResult(488, "Not Acceptable Here"))
    assert midcall.event("c1", sig.Offer("c1", VIDEO), cast(Call, leg))
    await asyncio.gather(*tasks)
    assert calls.answers == [] and answers["c1"] == AUDIO  # the call core's timer refuses the SIP side
