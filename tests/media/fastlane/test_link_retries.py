"""A call whose legs can be linked only late still gets the fast lane (issue 38 item 3).

A burst of 500 set-ups at once (bench/scale_bench.py --ramp 0) backs the event loop up by seconds: a
call's legs could become ready after the controller's quick tries (20 x 50 ms after the media changed),
and nothing asked again, so every call stayed on the Python path, which cannot carry 500 calls. The
controller now keeps trying every LINK_BACKOFF while the link is wanted, and stops when it is linked,
no longer wanted, or unlinked (the call ended)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from gateway.media.fastlane import controller as fastlane_controller
from gateway.media.fastlane.controller import FastLaneController


class Pool:
    """The engine pool as the controller's constructor reads it (its codecs only)."""

    transcoding: frozenset[Any] = frozenset()


def controller(ready_after: int, calls: list[float]) -> FastLaneController:
    """A controller whose legs can be linked from the ``ready_after``-th try on (the link itself is a
    marker: the tries are what is tested)."""
    made = FastLaneController(
        Pool(),  # type: ignore[arg-type]
        call_id="c1", web=None, sip=None, to_sip=None, to_web=None,  # type: ignore[arg-type]
        web_watchdog=None, latency=None, active=lambda: True,  # type: ignore[arg-type]
    )  # fmt: skip

    def try_link() -> None:
        calls.append(asyncio.get_running_loop().time())
        if len(calls) >= ready_after:
            made._pending = False
            made.link = object()  # type: ignore[assignment]

    made._try_link = try_link  # type: ignore[method-assign]
    return made


async def test_a_call_ready_after_the_quick_tries_is_linked_all_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fastlane_controller, "LINK_RETRY", 0.001)
    monkeypatch.setattr(fastlane_controller, "LINK_BACKOFF", 0.02)
    calls: list[float] = []
    late = controller(fastlane_controller.LINK_ATTEMPTS + 3, calls)
    late._pending = True
    late._retry_link(fastlane_controller.LINK_ATTEMPTS)
    async with asyncio.timeout(5):
        while late.link is None:
            await asyncio.sleep(0.005)
    assert len(calls) == fastlane_controller.LINK_ATTEMPTS + 3
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert min(gaps[fastlane_controller.LINK_ATTEMPTS - 1 :]) >= 0.015  # the slow tries
    await asyncio.sleep(0.1)
    assert len(calls) == fastlane_controller.LINK_ATTEMPTS + 3 and late._retry is None  # linked: no more


def trying(monkeypatch: pytest.MonkeyPatch, backoff: float, calls: list[float]) -> FastLaneController:
    """A controller whose legs are never ready, its tries started: quick ones 1 ms apart, then slow."""
    monkeypatch.setattr(fastlane_controller, "LINK_RETRY", 0.001)
    monkeypatch.setattr(fastlane_controller, "LINK_BACKOFF", backoff)
    made = controller(10**6, calls)
    made._pending = True
    made._retry_link(fastlane_controller.LINK_ATTEMPTS)
    return made


async def test_the_tries_stop_when_the_call_unlinks(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[float] = []
    never = trying(monkeypatch, 0.01, calls)
    await asyncio.sleep(0.15)
    assert len(calls) > fastlane_controller.LINK_ATTEMPTS  # still trying after the quick ones
    never.unlink()
    tried = len(calls)
    await asyncio.sleep(0.05)
    assert len(calls) == tried and never._retry is None


async def test_a_media_change_during_the_slow_tries_brings_the_quick_ones_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A change (the web leg connected, the SIP keys) after the quick tries ran out tries again at once
    and quickly, not at the next slow try; the slow tries end after LINK_SLOW_TRIES."""
    monkeypatch.setattr(fastlane_controller, "LINK_SLOW_TRIES", 2)
    calls: list[float] = []
    made = trying(monkeypatch, 0.5, calls)
    await asyncio.sleep(0.1)
    assert made._slow and len(calls) == fastlane_controller.LINK_ATTEMPTS
    made._active = lambda: True
    monkeypatch.setattr(made, "_capable", lambda path: True)
    made._web = made._sip = type("Leg", (), {"endpoint": None})()  # update() reads the SIP endpoint
    made.update()  # a media change
    await asyncio.sleep(0.1)
    assert len(calls) >= 2 * fastlane_controller.LINK_ATTEMPTS  # quick ones again, at once
    made.unlink()


async def test_the_slow_tries_end_after_their_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fastlane_controller, "LINK_SLOW_TRIES", 3)
    calls: list[float] = []
    never = trying(monkeypatch, 0.01, calls)
    await asyncio.sleep(0.3)
    assert len(calls) == fastlane_controller.LINK_ATTEMPTS + 3 and never._retry is None
