"""The scrypt verification queue under a guessing burst (issue 32, item 5): clean addresses are served
first, and a full queue displaces a guesser's waiting check rather than refuse a clean newcomer."""

from __future__ import annotations

import asyncio
import threading

import pytest

from gateway.identity import LoginBusy
from gateway.identity.lookup import VerifyQueue


async def until(predicate: object, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.005)


async def test_a_full_queue_displaces_the_busiest_guesser_not_a_clean_newcomer() -> None:
    queue = VerifyQueue(workers=1, max_waiting=4, per_client=3)
    release = threading.Event()
    order: list[str] = []

    def work(name: str) -> bool:
        release.wait(10)
        order.append(name)
        return False

    async def check(client: str, name: str) -> bool:
        return await queue.run(lambda: work(name), client)

    tasks = [asyncio.create_task(check("198.51.100.1", f"g{n}")) for n in range(3)]
    tasks.append(asyncio.create_task(check("198.51.100.2", "h0")))
    await until(lambda: queue.waiting == 4)
    clean = asyncio.create_task(check("192.0.2.7", "alice"))
    await until(lambda: queue.displaced == 1)
    with pytest.raises(LoginBusy, match="for others first"):
        await tasks[2]  # the newest check of the address holding the most
    two_clean = [asyncio.create_task(check(f"192.0.2.{n}", f"c{n}")) for n in (8, 9)]
    with pytest.raises(LoginBusy, match="for others first"):
        await tasks[1]  # the guesser still held two (one hashing)
    await until(lambda: two_clean[1].done())  # full of one-check addresses now: refused
    with pytest.raises(LoginBusy, match="more than 4 logins"):
        await two_clean[1]
    release.set()
    await asyncio.gather(tasks[0], tasks[3], clean, two_clean[0])
    assert queue.waiting == 0 and queue.displaced == 2
    assert order == ["g0", "h0", "alice", "c8"]


async def test_clean_addresses_are_served_before_suspects() -> None:
    queue = VerifyQueue(workers=1, max_waiting=10, per_client=4)
    queue.outcome("198.51.100.1", False)  # gave a wrong secret: suspect
    assert queue.suspect("198.51.100.1") and not queue.suspect("192.0.2.7")
    release = threading.Event()
    order: list[str] = []

    def work(name: str) -> bool:
        release.wait(10)
        order.append(name)
        return True

    first = asyncio.create_task(queue.run(lambda: work("first"), "203.0.113.1"))
    await until(lambda: queue.waiting == 1)
    guess = asyncio.create_task(queue.run(lambda: work("guess"), "198.51.100.1"))
    await until(lambda: queue.waiting == 2)
    alice = asyncio.create_task(queue.run(lambda: work("alice"), "192.0.2.7"))
    await until(lambda: queue.waiting == 3)
    release.set()
    await asyncio.gather(first, guess, alice)
    assert order == ["first", "alice", "guess"]
    queue.outcome("198.51.100.1", True)  # a right secret from there clears it
    assert not queue.suspect("198.51.100.1")
