"""How long a login (a page's, a SIP library's) relayed to a dead instance waits for the survivor that
takes its calls over (gateway/cluster/wiring.py `wait_for_survivor`): a lease and two heartbeats, and on
while that instance's calls are not settled yet (a survivor's claim under way on a loaded machine), up to
a cap; and `LiveCallLedger.unsettled`, what says so, against a real Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.cluster import ClusterNode
from gateway.cluster.live_calls import LiveCallLedger
from gateway.cluster.wiring import wait_for_survivor
from peers.redis import running_redis
from tests.cluster.test_cluster_state import settings
from tests.cluster.test_live_calls import live_record


def looks(found_after: float | None, owner: str | None = "gw2"):  # type: ignore[no-untyped-def]
    """A `look` that finds `owner` once `found_after` seconds have passed (None: never)."""
    start = asyncio.get_running_loop().time()

    async def look() -> tuple[bool, str | None]:
        late = found_after is None or asyncio.get_running_loop().time() - start < found_after
        return (False, None) if late else (True, owner)

    return look


def settled(answer: bool):  # type: ignore[no-untyped-def]
    async def under_way() -> bool:
        return answer

    return under_way


async def elapsed(coro) -> tuple[str | None, float]:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    start = loop.time()
    found = await coro
    return found, loop.time() - start


async def test_a_survivor_found_in_time_is_the_answer() -> None:
    found, took = await elapsed(wait_for_survivor(0.5, looks(0.1), settled(False), settle=1.0, poll=0.02))
    assert found == "gw2" and took < 0.3
    found, _ = await elapsed(wait_for_survivor(0.5, looks(0.0, None), settled(False), settle=1.0, poll=0.02))
    assert found is None  # found here


async def test_a_settled_instance_is_waited_for_no_longer_than_the_takeover_wait() -> None:
    found, took = await elapsed(wait_for_survivor(0.3, looks(None), settled(False), settle=1.0, poll=0.02))
    assert found is None and 0.3 <= took < 0.5


async def test_a_claim_under_way_is_waited_for_beyond_the_takeover_wait_up_to_the_cap() -> None:
    """The survivor's takeover outlasts the lease and heartbeats (a loaded machine): found after all."""
    found, took = await elapsed(wait_for_survivor(0.2, looks(0.5), settled(True), settle=1.0, poll=0.02))
    assert found == "gw2" and 0.5 <= took < 0.7
    found, took = await elapsed(wait_for_survivor(0.2, looks(None), settled(True), settle=0.4, poll=0.02))
    assert found is None and 0.6 <= took < 0.8  # nobody ever: the cap


async def test_an_instances_calls_are_unsettled_until_a_survivor_has_dealt_with_them(tmp_path: Path) -> None:
    with running_redis(tmp_path) as redis:
        a, b = (ClusterNode(settings(redis.url, name)) for name in "ab")
        calls = [live_record("c1", 1000.0)]
        ledger_a = LiveCallLedger(a, lambda: calls, lambda r: None)
        ledger_b = LiveCallLedger(b, list, lambda r: None)
        a.add_refresher("live calls", ledger_a.refresh, ledger_a.leave)
        b.add_refresher("live calls", ledger_b.refresh, ledger_b.leave)
        await a.start()
        await b.start()
        try:
            assert await ledger_b.unsettled("a") and not await ledger_b.unsettled("nobody")
            assert a._task is not None
            a._task.cancel()  # a dies: b records its call once the lease lapses, then nothing is left
            for _ in range(200):  # (0.6 s of lease and a heartbeat; up to 10 s on a loaded machine: it took
                if not await ledger_b.unsettled("a"):  # more than 3 s once in a full suite run at load 7)
                    break
                await asyncio.sleep(0.05)
            assert not await ledger_b.unsettled("a")
        finally:
            await b.close()
            await a.close()
