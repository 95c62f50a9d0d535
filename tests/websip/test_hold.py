"""The SIP party's hold relayed to a SIP library (gateway/websip/hold.py): held and resumed by remote
become our re-INVITEs with that direction, one at a time, retried after a 491; the answers to the
library's own re-offers keep the hold."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, cast

from gateway.signaling import events as sig
from gateway.sip.useragent.ua_calls import Call
from gateway.sip.useragent.ua_events import ReinviteResult
from gateway.websip.hold import RemoteHold

OURS = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendrecv\r\n"


class Leg:
    """The library's dialog: answers each re-INVITE with the next of ``statuses`` (then 200)."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.offers: list[str] = []

    async def reinvite(self, sdp: str) -> ReinviteResult:
        self.offers.append(sdp)
        await asyncio.sleep(0)
        status = self.statuses.pop(0) if self.statuses else 200
        return ReinviteResult(status, "", "v=0\r\n" if status == 200 else "")


def _direction(sdp: str) -> str:
    return next(line[2:] for line in sdp.splitlines() if line in ("a=sendrecv", "a=sendonly", "a=inactive"))


async def _relay(*statuses: int, events: list[sig.Event]) -> tuple[Leg, dict[str, str], RemoteHold]:
    tasks: list[asyncio.Task[None]] = []
    answers = {"c": OURS}
    hold = RemoteHold(lambda coro: tasks.append(asyncio.ensure_future(coro)), answers, retry_wait=0.01)
    leg = Leg(*statuses)
    for event in events:  # each one while the re-INVITE of the one before is out
        assert hold.event("c", event, cast(Call, leg))
        await asyncio.sleep(0)
    while not all(t.done() for t in tasks):
        await asyncio.gather(*tasks)
    return leg, answers, hold


async def test_held_and_resumed_by_remote_reinvite_the_library_in_order() -> None:
    leg, answers, _ = await _relay(events=[sig.Held("c", "remote", "inactive")])
    assert [_direction(o) for o in leg.offers] == ["inactive"] and "o=- 1 2 " in leg.offers[0]
    assert answers["c"] == leg.offers[0]  # the next offer's version goes on from it
    leg, _, _ = await _relay(events=[sig.Held("c", "remote"), sig.Resumed("c", "remote")])
    assert [_direction(o) for o in leg.offers] == ["sendonly", "sendrecv"]  # not crossed, not lost


async def test_a_491_is_retried_a_refusal_is_not() -> None:
    leg, _, _ = await _relay(491, events=[sig.Held("c", "remote")])
    assert [_direction(o) for o in leg.offers] == ["sendonly", "sendonly"]
    leg, answers, _ = await _relay(488, events=[sig.Held("c", "remote")])
    assert len(leg.offers) == 1 and answers["c"] == OURS


def test_local_holds_and_unanswered_calls_send_nothing() -> None:
    spawned: list[Coroutine[Any, Any, None]] = []
    hold = RemoteHold(spawned.append, {"c": OURS})
    assert not hold.event("c", sig.Held("c", "local"), cast(Call, Leg()))
    assert hold.event("c", sig.Held("c", "remote"), None) and not spawned


async def test_answers_to_the_librarys_reoffers_keep_the_sip_partys_hold() -> None:
    _, _, hold = await _relay(events=[sig.Held("c", "remote")])
    assert hold.answer_direction("c", "recvonly") == "inactive"  # the library holds too
    assert hold.answer_direction("c", "sendrecv") == "sendonly"
    assert hold.answer_direction("other", "recvonly") == "recvonly"


async def test_a_call_taken_over_while_held_relays_the_resume() -> None:
    """A call taken over from a dead instance whose last SDP to the library said sendonly (the SIP party
    held it there): the survivor's relay knows it, so the SIP party's resume re-INVITEs the library
    sendrecv (before, it looked already sendrecv and sent nothing: the library stayed on hold) and the
    answers to the library's own re-offers keep the hold meanwhile."""
    tasks: list[asyncio.Task[None]] = []
    held = OURS.replace("a=sendrecv", "a=sendonly")
    answers = {"c": held}
    hold = RemoteHold(lambda coro: tasks.append(asyncio.ensure_future(coro)), answers, retry_wait=0.01)
    hold.taken_over("c", "sendonly")
    assert hold.answer_direction("c", "sendrecv") == "sendonly"
    leg = Leg()
    assert hold.event("c", sig.Resumed("c", "remote"), cast(Call, leg))
    await asyncio.gather(*tasks)
    assert [_direction(o) for o in leg.offers] == ["sendrecv"]
