"""Where a cluster's rooms live (gateway/cluster/room_owners.py), against a real Redis: the first instance
to place a room takes it and the others are sent there; a renewal never takes back a room another has
taken; a dead instance's room is taken once its lease lapses (waited on when its URL did not answer); a
record without a valid signature is not believed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from gateway.cluster import ClusterNode
from gateway.cluster.room_owners import RoomOwners
from peers.redis import running_redis
from tests.cluster.test_cluster_state import ADVERTISED_HTTP, settings


async def test_one_instance_holds_a_room_and_a_dead_ones_room_is_taken(tmp_path: Path) -> None:
    with running_redis(tmp_path) as redis:
        a, b, c = (ClusterNode(settings(redis.url, name)) for name in "abc")
        local: dict[str, list[str]] = {"a": [], "b": [], "c": []}
        owners = {n.id: RoomOwners(n, local[n.id].copy) for n in (a, b, c)}
        try:
            for node in (a, b, c):
                await node.start()
            assert await owners["a"].place("lab") is None  # free: taken by a
            local["a"].append("lab")
            assert await owners["b"].place("lab") == ADVERTISED_HTTP  # a's: relayed there
            assert await owners["a"].place("lab") is None  # its own
            key = a.key("room", "lab")
            held = await a.redis.get(key)
            local["b"].append("lab")  # split (b opened it while Redis was away): b's renewal keeps off
            await owners["b"].refresh()
            assert await a.redis.get(key) == held
            local["b"].clear()  # (its room emptied: its renewals would take the record once a's lapses)

            # a dies: its record stays until its lease lapses; a place that found its URL unreachable
            # waits for that, then takes the room
            assert a._task is not None
            a._task.cancel()
            started = time.monotonic()
            assert await owners["c"].place("lab", ADVERTISED_HTTP) is None
            assert time.monotonic() - started < 0.6 + 0.2 + 1.5
            assert await owners["b"].place("lab") == ADVERTISED_HTTP  # c's now
            assert (await a.redis.get(key)) != held

            # a record not signed by the cluster's secret is not believed: replaced
            await a.redis.set(a.key("room", "forged"), "b;not-a-signature")
            assert await owners["c"].place("forged") is None
            assert await owners["b"].place("forged") == ADVERTISED_HTTP
        finally:
            for node in (a, b, c):
                await node.close()


async def test_two_instances_racing_for_a_free_room_agree_on_one(tmp_path: Path) -> None:
    with running_redis(tmp_path) as redis:
        nodes = [ClusterNode(settings(redis.url, name)) for name in "ab"]
        owners = [RoomOwners(n, list) for n in nodes]
        try:
            for node in nodes:
                await node.start()
            placed = await asyncio.gather(*(o.place("race") for o in owners))
            assert sorted(placed, key=str) == [None, ADVERTISED_HTTP], placed  # one here, one sent there
        finally:
            for node in nodes:
                await node.close()


async def test_a_draining_instance_keeps_its_conversations_and_gives_up_lone_rooms(tmp_path: Path) -> None:
    """Draining, an instance still is the home of its rooms with a conversation (their new peers join
    them there) and gives up a lone peer's room, which the next instance asked takes."""
    with running_redis(tmp_path) as redis:
        a, b = (ClusterNode(settings(redis.url, name)) for name in "ab")
        owners = RoomOwners(a, lambda: ["talk", "lone"], lambda room: room == "lone")
        others = RoomOwners(b, list)
        try:
            for node in (a, b):
                await node.start()
            for room in ("talk", "lone"):
                assert await owners.place(room) is None
            await a.set_draining()
            await owners.refresh()
            assert await others.place("talk") == ADVERTISED_HTTP  # still a's
            assert await others.place("lone") is None  # given up: b's now
            assert await owners.place("lone") == ADVERTISED_HTTP  # and a sends its next peer there
        finally:
            for node in (a, b):
                await node.close()


async def test_each_instance_lists_the_others_rooms(tmp_path: Path) -> None:
    """What each instance's rooms hold, published at its heartbeat, read by the others (GET /webrtc/rooms
    across the cluster); a forged entry is not believed; a room gone is gone from the next publication."""
    with running_redis(tmp_path) as redis:
        a, b = (ClusterNode(settings(redis.url, name)) for name in "ab")
        held: dict[str, dict[str, object]] = {"lab": {"peers": ["p1", "p2"], "owner": "alice"}}
        owners = RoomOwners(a, list, summaries=lambda: held)
        others = RoomOwners(b, list)
        try:
            for node in (a, b):
                await node.start()
            await owners.refresh()
            assert await others.elsewhere() == {"lab": {"peers": ["p1", "p2"], "owner": "alice"}}
            assert await owners.elsewhere() == {}  # its own are not "elsewhere"
            await a.redis.hset(a.key("rooms", "a"), "forged", '{"peers":["x"]};not-a-signature')
            await asyncio.sleep(0.25)  # (read at most once a heartbeat, 0.2 s here)
            assert await others.elsewhere() == {"lab": {"peers": ["p1", "p2"], "owner": "alice"}}
            read = asyncio.get_running_loop().time()
            held.clear()
            await owners.refresh()
            listed = await others.elsewhere()
            # within the heartbeat: the cached listing (a loaded CI worker took longer once, and rightly
            # read the new one: checked only when the clock says it was within it)
            if asyncio.get_running_loop().time() - read < 0.15:
                assert listed == {"lab": {"peers": ["p1", "p2"], "owner": "alice"}}
            await asyncio.sleep(0.25)
            assert await others.elsewhere() == {}
        finally:
            for node in (a, b):
                await node.close()
