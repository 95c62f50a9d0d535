"""gateway/ops/drain.py with in-memory fakes of the call core and of the socket kinds: no new calls at
once, idle sockets closed at once and as calls end, the wait over when nothing is left (calls, sockets
kept for theirs) or at the timeout, one kind failing not keeping the others open."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gateway.ops.drain import Drain


class FakeCalls:
    def __init__(self, calls: int = 0) -> None:
        self.calls = calls
        self.drained = False

    def drain(self) -> None:
        self.drained = True


class FakeSockets:
    """Sockets by name -> in a call?; close_idle closes those not in one."""

    def __init__(self, **sockets: bool) -> None:
        self.open = dict(sockets)
        self.closed: list[str] = []

    async def close_idle(self) -> tuple[int, int]:
        idle = [name for name, busy in self.open.items() if not busy]
        for name in idle:
            del self.open[name]
        self.closed.extend(idle)
        return len(idle), len(self.open)


async def test_begin_refuses_calls_and_closes_only_the_idle_sockets() -> None:
    calls = FakeCalls(1)
    ws, sip = FakeSockets(bob=False, alice=True), FakeSockets(carol=False)
    drain = Drain(calls)
    drain.add(ws.close_idle)
    drain.add(sip.close_idle)
    await drain.begin()
    assert calls.drained and drain.started
    assert (ws.closed, sip.closed, drain.closed, drain.kept) == (["bob"], ["carol"], 2, 1)
    assert drain.busy


async def test_wait_closes_a_socket_once_its_call_ends_and_returns() -> None:
    calls = FakeCalls(1)
    ws = FakeSockets(alice=True)
    drain = Drain(calls, poll=0.01)
    drain.add(ws.close_idle)
    await drain.begin()
    waiting = asyncio.create_task(drain.wait(None))
    await asyncio.sleep(0.05)
    assert not waiting.done() and ws.closed == []
    calls.calls, ws.open["alice"] = 0, False  # her call ended
    assert await asyncio.wait_for(waiting, 1) == 0
    assert ws.closed == ["alice"] and not drain.busy


async def test_a_socket_kept_for_a_call_outside_the_call_core_is_waited_for() -> None:
    """A room with company or a relayed JSON-RPC call: no call in the core, yet the wait goes on."""
    drain = Drain(FakeCalls(0), poll=0.01)
    room = FakeSockets(peer1=True, peer2=True)
    drain.add(room.close_idle)
    await drain.begin()
    waiting = asyncio.create_task(drain.wait(None))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    room.open = {"peer1": False, "peer2": False}  # one left: the other is alone
    await asyncio.wait_for(waiting, 1)
    assert sorted(room.closed) == ["peer1", "peer2"]


async def test_wait_stops_at_the_timeout_with_the_calls_left() -> None:
    drain = Drain(FakeCalls(2), poll=0.01)
    assert await drain.run(timeout=0.05) == 2


async def test_a_failing_kind_does_not_keep_the_others_open(caplog: pytest.LogCaptureFixture) -> None:
    async def broken() -> tuple[int, int]:
        raise RuntimeError("transport gone")

    ws = FakeSockets(bob=False)
    drain = Drain(FakeCalls(0))
    drain.add(broken)
    drain.add(ws.close_idle)
    with caplog.at_level(logging.ERROR):
        assert await drain.close_idle() == 1
    assert ws.closed == ["bob"]
    assert "closing idle sockets failed" in caplog.text


def test_poll_must_be_positive() -> None:
    with pytest.raises(ValueError, match="poll must be positive, got 0"):
        Drain(FakeCalls(), poll=0)
