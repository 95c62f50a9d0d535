"""A three-way conference made again by the instance that took its two calls over
(gateway/runtime/merge/three_way.py `taken_over`), with stand-in bridges that record what the conference
asks of them (the bridges themselves are tested in tests/media; the whole path with real processes and
phones in tests/e2e/cluster/test_cluster_takeover_three_way.py): made once both calls are here, the web
user put in the mix when the page reattaches the carrier (before or after the other call came), a call
ended meanwhile leaving nothing behind, a drain's hand-off leaving quietly."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from gateway.media.errors import MediaError
from gateway.media.events import Leg
from gateway.runtime.merge.three_way import WEB, ThreeWayCalls
from gateway.signaling.conference import Merged

MERGE = {"conference_id": "conf-x-3", "call_ids": ["b", "a"]}  # b carries the web user


class Bridge:
    passes_through = False

    def __init__(self, web_up: bool = False) -> None:
        self.web_up = web_up
        self.lent: tuple[Any, Any] | None = None
        self.renewed: Any = None
        self.ended = 0

    def mix_codec(self, leg: Leg) -> str:
        if leg is Leg.WEB and not self.web_up:
            raise MediaError("the web leg's media is not up")
        return "pcmu"

    def lend_to_mix(self, *, web: Any, sip: Any, web_renewed: Any = None) -> None:
        self.lent, self.renewed = (web, sip), web_renewed

    def end_mix(self) -> None:
        self.lent, self.ended = None, self.ended + 1

    def send_mixed(self, leg: Leg, payload: bytes, timestamp: int) -> None:
        pass


class Sink:
    id = "s1"
    closed = False

    def __init__(self) -> None:
        self.events: list[Any] = []

    async def send_event(self, event: Any) -> None:
        self.events.append(event)


def driver(bridges: dict[str, Bridge], sink: Sink) -> Any:
    runtimes = [SimpleNamespace(call_id=c, bridge=b, finished=False) for c, b in bridges.items()]
    registry = {c: SimpleNamespace(session_id="s1") for c in bridges}
    return SimpleNamespace(runtimes=runtimes, registry=registry, session=lambda _id: sink)


async def test_made_again_once_both_calls_are_here_and_the_page_joins_on_reattach() -> None:
    bridges, sink = {"a": Bridge(), "b": Bridge()}, Sink()
    calls = ThreeWayCalls(driver(bridges, sink))
    calls.taken_over("a", MERGE)
    assert bridges["a"].lent is None and calls.merge_of("a") is None  # b not here yet
    calls.taken_over("b", MERGE)
    conference = calls._conferences["b"]
    try:
        assert calls.merge_of("a") == MERGE  # its next handovers name it again, the same id
        assert bridges["b"].lent is not None and bridges["b"].renewed is not None
        assert bridges["a"].lent is not None and bridges["a"].lent[0] is None  # a's web leg idle
        assert set(conference.mixer.participants) == {"a", "b"}  # the two phones, the page not back
        bridges["b"].web_up = True
        bridges["b"].renewed()  # the page reattached the carrier
        await asyncio.sleep(0)
        assert WEB in conference.mixer.participants
        assert sink.events == [Merged("conf-x-3", ("b", "a"))]
    finally:
        conference.stop()


async def test_a_carrier_reattached_before_the_other_call_came_is_mixed_at_once() -> None:
    bridges, sink = {"a": Bridge(), "b": Bridge(web_up=True)}, Sink()
    calls = ThreeWayCalls(driver(bridges, sink))
    calls.taken_over("b", MERGE)  # (the page reattached b meanwhile: its renewal found no mix)
    calls.taken_over("a", MERGE)
    conference = calls._conferences["b"]
    try:
        await asyncio.sleep(0)
        assert WEB in conference.mixer.participants
        assert sink.events == [Merged("conf-x-3", ("b", "a"))]
    finally:
        conference.stop()


async def test_a_call_ended_meanwhile_leaves_nothing_and_a_hand_off_leaves_quietly() -> None:
    bridges, sink = {"a": Bridge(), "b": Bridge()}, Sink()
    state = driver(bridges, sink)
    calls = ThreeWayCalls(state)
    state.runtimes[0].finished = True  # a ended before its takeover was done
    calls.taken_over("a", MERGE)
    calls.taken_over("b", MERGE)
    assert calls._taken == {"b": ("conf-x-3", ("b", "a"))} and not calls._conferences
    calls.call_gone("b")
    assert not calls._taken

    state.runtimes[0].finished = False
    calls.taken_over("a", MERGE)
    calls.taken_over("b", MERGE)
    assert calls._conferences
    calls.release("b")  # a drain handed b (and a) to another instance
    calls.release("a")
    assert not calls._conferences and bridges["a"].ended == 1
    await asyncio.sleep(0)
    assert sink.events == []  # the page is told nothing here
