"""The live-call ledger against a real Redis (issue 36 item 3): a dead instance's calls are recorded once,
by one survivor, ended at the dead instance's last heartbeat; a clean exit leaves nothing; an instance
restarted under its id records its own calls of before; an unreadable entry is skipped; an entry or a
handover without its instance's seal is neither recorded nor carried on (issue 34)."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import shutil
import socket
from collections.abc import Collection
from pathlib import Path

import pytest

from gateway.cluster import ClusterNode
from gateway.cluster.live_calls import (
    FIGURES_EVERY,
    INSTANCE_LOST,
    SOON_SECONDS,
    LiveCallLedger,
    lost_record,
    record_json,
)
from gateway.cluster.node import text
from gateway.cluster.signing import HANDOVER, LIVE
from gateway.ops.records import CallRecord, LegRecord
from peers.ports import free_port
from peers.redis import running_redis
from tests.cluster.test_cluster_state import settings


def live_record(call_id: str, start: float) -> CallRecord:
    return CallRecord(
        call_id=call_id,
        direction="inbound",
        start_time=start,
        end_time=start + 5,
        end_reason="unknown",
        hangup_by="gateway",
        sip_call_ids=("abc@phone",),
        user="alice",
        from_uri="sip:2000@127.0.0.1",
        to_uri="sip:1001@127.0.0.2",
        answer_time=start + 1,
        media="forwarded",
        legs={"web": LegRecord("PCMU", 250, 249, 1, 0.002, 0.01, 4.3)},
    )


def test_a_lost_record_is_read_back_whole() -> None:
    record = live_record("c1", 1000.0)
    lost = lost_record(record_json(record), 1010.0, "b")
    assert lost == dataclasses.replace(
        record, end_time=1010.0, end_reason=INSTANCE_LOST, hangup_by="gateway", recorded_by="b"
    )
    assert lost is not None and lost.to_json()["recorded_by"] == "b"
    assert "recorded_by" not in record.to_json()  # an instance's own records are as before
    assert lost_record('{"call_id": 3}', 1010.0, "b") is None
    assert lost_record("not json", 1010.0, "b") is None


def test_a_newer_instances_leg_figures_are_read_without_the_ones_this_one_does_not_know() -> None:
    """A rolling upgrade: a snapshot written by a newer instance may carry leg figures this one has no
    field for; the record is still read (they are left out), not dropped as unreadable."""
    record = live_record("c2", 1000.0)
    line = record_json(record).replace('"packets_recovered":0', '"packets_recovered":0,"from_the_future":7')
    assert "from_the_future" in line
    lost = lost_record(line, 1010.0, "b")
    assert lost is not None and lost.legs == record.legs


async def test_a_survivor_records_a_dead_instances_calls_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.cluster")  # a CI run failed it once, logging nothing
    with running_redis(tmp_path) as redis:
        a, b, c = (ClusterNode(settings(redis.url, name)) for name in "abc")
        calls = {"a": [live_record("c1", 1000.0), live_record("c2", 1001.0)], "b": [], "c": []}
        written: dict[str, list[CallRecord]] = {"a": [], "b": [], "c": []}
        ledgers = {}
        for node in (a, b, c):
            name = node.id
            ledgers[name] = LiveCallLedger(node, lambda n=name: calls[n], written[name].append)  # type: ignore[misc]
            node.add_refresher("live calls", ledgers[name].refresh, ledgers[name].leave)
        for node in (a, b, c):
            await node.start()
        try:
            await asyncio.sleep(0.5)
            assert sorted(await a.redis.hkeys("gw:live:a")) == ["_http", "_seen", "c1", "c2"]
            calls["a"] = calls["a"][1:]  # c1 ended at a (recorded by a itself): gone from Redis
            await a.beat()
            assert sorted(await a.redis.hkeys("gw:live:a")) == ["_http", "_seen", "c2"]
            assert a._task is not None
            a._task.cancel()  # a dies: no more heartbeats
            died = a.now_ms() / 1000
            # a survivor records it at its first heartbeat (0.2 s) after a's 0.6 s lease lapsed: up to 10 s
            # for a loaded machine (it was 5 s)
            deadline = asyncio.get_running_loop().time() + 10.0
            while not (written["b"] or written["c"]) and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.6)  # more heartbeats of both survivors: still one record
            records = written["b"] + written["c"]
            assert [r.call_id for r in records] == ["c2"], records
            (record,) = records
            assert record.end_reason == INSTANCE_LOST and record.recorded_by in ("b", "c")
            assert died - 0.3 <= record.end_time <= died, (record.end_time, died)
            assert not await b.redis.exists("gw:live:a")
            assert sorted(await b.redis.smembers("gw:live-instances")) == ["b", "c"]
        finally:
            await c.close()
            await b.close()
            await a.close()
        assert not await ClusterNode(settings(redis.url, "d")).redis.exists("gw:live:b", "gw:live:c")


async def test_an_instance_restarted_under_its_id_records_its_own_calls(tmp_path: Path) -> None:
    with running_redis(tmp_path) as redis:
        a = ClusterNode(settings(redis.url, "a"))
        calls = [live_record("c1", 1000.0)]
        LiveCallLedger(a, lambda: calls, lambda r: None)  # not added: written by hand below
        entries = {"_seen": "1005.5", "c1": record_json(calls[0]), "bad": "{not json"}
        await a.redis.hset(
            "gw:live:a", mapping={k: a.signer.seal(LIVE, v, "a", k) for k, v in entries.items()}
        )
        again = ClusterNode(settings(redis.url, "a"))
        written: list[CallRecord] = []
        ledger = LiveCallLedger(again, lambda: [], written.append)
        again.add_refresher("live calls", ledger.refresh, ledger.leave)
        await again.start()
        try:
            assert [(r.call_id, r.recorded_by, r.end_time) for r in written] == [("c1", "a", 1005.5)]
            assert sorted(await again.redis.hkeys("gw:live:a")) == ["_http", "_seen"]
        finally:
            await again.close()
            await a.close()


async def test_media_figures_alone_are_written_every_few_heartbeats(tmp_path: Path) -> None:
    """A call whose only change is its packet counts is rewritten every FIGURES_EVERY beats, not every
    beat (hundreds of calls per instance); a change of state or party is written at the next beat."""
    with running_redis(tmp_path) as redis:
        node = ClusterNode(settings(redis.url, "a"))
        record = live_record("c1", 1000.0)
        calls = [record]
        ledger = LiveCallLedger(node, lambda: calls, lambda r: None)
        try:
            await ledger.refresh()  # beat 1: new, written

            async def stored() -> CallRecord | None:
                sealed = str(await node.redis.hget("gw:live:a", "c1"))
                return lost_record(str(node.signer.unseal(LIVE, sealed, "k", "x", "a", "c1")), 0.0, "x")

            first = await stored()
            more = LegRecord("PCMU", 500, 499, 1, 0.002, 0.01, 4.3)
            calls[0] = dataclasses.replace(record, end_time=1010.0, legs={"web": more})
            beats = 1
            while (await stored()) == first:
                await ledger.refresh()
                beats += 1
                assert beats <= FIGURES_EVERY
            assert beats == FIGURES_EVERY  # the figures waited for their beat
            calls[0] = dataclasses.replace(calls[0], answer_time=None)
            await ledger.refresh()  # a change of the call itself: at once
            changed = await stored()
            assert changed is not None and changed.answer_time is None
        finally:
            await ledger.leave()
            await node.close()


async def test_a_survivor_carries_on_the_calls_with_a_handover_and_records_the_rest(tmp_path: Path) -> None:
    """Issue 34 item 3: a dead instance's call with a handover is offered to one survivor's `take_over`
    (the driver: gateway/runtime/continuity/takeover.py) and not recorded when carried on; a call without one, or
    one the survivor could not carry on, is recorded as lost; the handovers leave Redis with the calls."""
    with running_redis(tmp_path) as redis:
        a, b = (ClusterNode(settings(redis.url, name)) for name in "ab")
        calls = {"a": [live_record(f"c{i}", 1000.0 + i) for i in (1, 2, 3)], "b": []}
        handovers = {"a": {"c1": '{"one": 1}', "c3": '{"three": 3}'}, "b": {}}
        offered: list[tuple[str, str, str]] = []

        async def take_over(call_id: str, line: str, instance_id: str) -> bool:
            offered.append((call_id, line, instance_id))
            return call_id == "c1"  # c3: its SIP party refused the re-INVITE, say

        written: dict[str, list[CallRecord]] = {"a": [], "b": []}
        for node in (a, b):
            name = node.id
            ledger = LiveCallLedger(
                node,
                functools.partial(calls.__getitem__, name),
                written[name].append,
                functools.partial(handovers.__getitem__, name),
                take_over,
            )
            node.add_refresher("live calls", ledger.refresh, ledger.leave)
        for node in (a, b):
            await node.start()
        try:
            await asyncio.sleep(0.5)
            sealed = {k: a.signer.seal(HANDOVER, v, "a", k) for k, v in handovers["a"].items()}
            assert await a.redis.hgetall("gw:handover:a") == sealed
            handovers["a"] = {"c1": '{"one": 2}', "c3": '{"three": 3}'}  # changed: written again
            await a.beat()
            assert await a.redis.hget("gw:handover:a", "c1") == a.signer.seal(
                HANDOVER, '{"one": 2}', "a", "c1"
            )
            assert a._task is not None
            a._task.cancel()  # a dies
            for _ in range(100):
                if written["b"]:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.6)
            assert sorted(offered) == [("c1", '{"one": 2}', "a"), ("c3", '{"three": 3}', "a")]
            assert sorted(r.call_id for r in written["b"]) == ["c2", "c3"]
            assert not await b.redis.exists("gw:live:a", "gw:handover:a")
        finally:
            await b.close()
            await a.close()


async def test_an_instance_that_lost_its_lease_but_still_listens_keeps_its_calls(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Cut off from Redis, not dead: its lease lapses, but its HTTP port still accepts. The survivor
    neither takes its calls over nor records them as lost; they stay in Redis for it. It looks again at
    every heartbeat (the instance may die any time) but says so once."""
    listening = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    with running_redis(tmp_path) as redis:
        advertise = {"sip": "127.0.0.1:5070", "http": f"http://127.0.0.1:{port}"}
        a = ClusterNode(settings(redis.url, "a", advertise=advertise))
        b = ClusterNode(settings(redis.url, "b"))
        offered: list[str] = []

        async def take_over(call_id: str, line: str, instance_id: str) -> bool:
            offered.append(call_id)
            return True

        written: list[CallRecord] = []
        ledger_a = LiveCallLedger(
            a, lambda: [live_record("c1", 1000.0)], written.append, lambda: {"c1": "{}"}
        )
        ledger_b = LiveCallLedger(b, list, written.append, dict, take_over)
        a.add_refresher("live calls", ledger_a.refresh, ledger_a.leave)
        b.add_refresher("live calls", ledger_b.refresh, ledger_b.leave)
        try:
            await a.start()
            await b.start()
            assert a._task is not None
            a._task.cancel()  # no more heartbeats: its lease lapses, its port still listens
            await asyncio.sleep(1.5)  # past the lease (0.6 s) and several of b's heartbeats
            await ledger_b.wait_claims()
            assert offered == [] and written == []
            assert await b.redis.hkeys("gw:live:a") and await b.redis.hkeys("gw:handover:a")
            said = [r for r in caplog.records if "lost its lease but answers" in r.getMessage()]
            assert len(said) == 1, said  # b's several heartbeats since
        finally:
            await b.close()
            await a.close()
            listening.close()


def survivor(node: ClusterNode) -> tuple[LiveCallLedger, list[tuple[str, str, str]], list[CallRecord]]:
    """A ledger of ``node``'s with no calls of its own that takes every call offered over: (the ledger, the
    calls offered as (call id, handover, instance), the records written)."""
    offered: list[tuple[str, str, str]] = []
    written: list[CallRecord] = []

    async def take_over(call_id: str, line: str, instance_id: str) -> bool:
        offered.append((call_id, line, instance_id))
        return True

    return LiveCallLedger(node, list, written.append, dict, take_over), offered, written


async def test_entries_and_handovers_without_their_instances_seal_are_ignored(tmp_path: Path) -> None:
    """Redis is not trusted (docs/deploy.md): a dead instance's hash holding call records and handovers
    written by something other than that instance (unsealed, sealed for another instance, call or
    purpose, or under another secret) is neither carried on nor recorded; only the sealed calls are, and
    each bad field is counted as rejected."""
    with running_redis(tmp_path) as redis:
        b = ClusterNode(settings(redis.url, "b"))
        stranger = ClusterNode(settings(redis.url, "x", secret="another-cluster-secret-0123"))
        ledger, offered, written = survivor(b)
        seal = b.signer.seal
        good, kept = record_json(live_record("good", 1000.0)), record_json(live_record("kept", 1000.0))
        made_up = record_json(live_record("forged", 1000.0))
        gone = f"http://127.0.0.1:{free_port(socket.SOCK_STREAM)}"  # where a dead instance answered
        await b.redis.hset(
            "gw:live:a",
            mapping={
                "_seen": seal(LIVE, "1005.5", "a", "_seen"),
                "_http": seal(LIVE, gone, "a", "_http"),
                "good": seal(LIVE, good, "a", "good"),
                "kept": seal(LIVE, kept, "a", "kept"),  # its handover is forged: recorded as lost
                "plain": made_up,  # no seal at all
                "moved": seal(LIVE, made_up, "z", "moved"),  # sealed by instance z, copied here
                "renamed": seal(LIVE, made_up, "a", "other"),  # sealed for another call
                "foreign": stranger.signer.seal(LIVE, made_up, "a", "foreign"),  # under another secret
            },
        )
        await b.redis.hset(
            "gw:handover:a",
            mapping={
                "good": seal(HANDOVER, '{"good": 1}', "a", "good"),
                "kept": '{"to": "mallory"}',  # no seal
                "plain": seal(LIVE, '{"to": "mallory"}', "a", "plain"),  # a record's seal: another purpose
            },
        )
        await b.redis.sadd("gw:live-instances", "a")
        try:
            await ledger.record_dead()
            await ledger.wait_claims()
            assert offered == [("good", '{"good": 1}', "a")]
            assert [(r.call_id, r.end_time) for r in written] == [("kept", 1005.5)]
            assert b.signer.rejected == 6  # plain, moved, renamed, foreign; kept's and plain's handovers
            assert not await b.redis.exists("gw:live:a", "gw:handover:a")
        finally:
            await b.close()
            await stranger.close()


async def test_a_hash_whose_http_address_does_not_open_is_left_alone(tmp_path: Path) -> None:
    """Whether a lapsed instance still lives is asked at its sealed HTTP address: a hash whose `_http` is
    unsealed (an instance from before the seals, or a Redis writer who deleted the lease and the address
    to make a survivor take a live instance's calls) is neither carried on nor recorded, and stays."""
    with running_redis(tmp_path) as redis:
        b = ClusterNode(settings(redis.url, "b"))
        ledger, offered, written = survivor(b)
        seal = b.signer.seal
        await b.redis.hset(
            "gw:live:a",
            mapping={
                "_http": "http://127.0.0.1:9",  # unsealed
                "c1": seal(LIVE, record_json(live_record("c1", 1000.0)), "a", "c1"),
            },
        )
        await b.redis.hset("gw:handover:a", "c1", seal(HANDOVER, "{}", "a", "c1"))
        await b.redis.sadd("gw:live-instances", "a")
        try:
            await ledger.record_dead()
            await ledger.wait_claims()
            assert offered == [] and written == []
            assert await b.redis.hkeys("gw:live:a") and await b.redis.hkeys("gw:handover:a")
        finally:
            await b.close()


async def test_a_call_just_answered_is_written_at_once_not_at_the_next_heartbeat(tmp_path: Path) -> None:
    """A call younger than a heartbeat would die with its instance: `soon` writes its record and handover
    within SOON_SECONDS (no heartbeat meanwhile), only that call's (the other end of its pair with it),
    looking again while its handover is not ready yet, and not at all for a call that will never have
    one; a call that ends goes out of both hashes as soon (`ended`)."""
    with running_redis(tmp_path) as redis:
        node = ClusterNode(settings(redis.url, "a", heartbeat=30.0, lease=60.0))
        calls = {"c1": live_record("c1", 1000.0)}
        handovers = {"c1": '{"one": 1}'}
        asked: list[frozenset[str]] = []

        def some_handovers(only: Collection[str]) -> tuple[dict[str, str], Collection[str]]:
            asked.append(frozenset(only))
            mine = {k: v for k, v in handovers.items() if k in only}
            never = {"w4"} & set(only)  # (a WHIP call, say)
            return ({**mine, "p2": '{"pair": 2}'} if "p1" in mine else mine), never

        ledger = LiveCallLedger(
            node,
            lambda: list(calls.values()),
            lambda r: None,
            lambda: dict(handovers),
            some=(lambda only: [calls[k] for k in only if k in calls], some_handovers),
        )
        ledger.soon("c0")  # before the first heartbeat looked at the hash of before: left to the beat
        node.add_refresher("live calls", ledger.refresh, ledger.leave)
        await node.start()  # its first heartbeat: c1 written; the next one in 30 s
        try:
            assert sorted(await node.redis.hkeys("gw:handover:a")) == ["c1"] and not ledger._soon
            for call_id in ("p1", "p2", "c3", "w4"):
                calls[call_id] = live_record(call_id, 1010.0)
            handovers["p1"] = '{"pair": 1}'
            for call_id in ("p1", "c3", "w4"):  # c3: answered, its media not settled yet
                ledger.soon(call_id)
            await asyncio.sleep(SOON_SECONDS * 2)
            assert sorted(await node.redis.hkeys("gw:handover:a")) == ["c1", "p1", "p2"]
            assert sorted(await node.redis.hkeys("gw:live:a")) == [
                "_http",
                "_seen",
                "c1",
                "c3",
                "p1",
                "p2",
                "w4",
            ]
            assert ledger._beats == 1  # no heartbeat came
            assert asked[0] == {"p1", "c3", "w4"} and set(ledger._soon) == {"c3"}
            handovers["c3"] = '{"three": 3}'  # settled: the next look writes it
            await asyncio.sleep(SOON_SECONDS * 2)
            assert await node.redis.hget("gw:handover:a", "c3") == node.signer.seal(
                HANDOVER, '{"three": 3}', "a", "c3"
            )
            looks = len(asked)
            await asyncio.sleep(SOON_SECONDS * 2)
            assert len(asked) == looks and not ledger._soon  # every call asked is written: no more looks
            del calls["p1"], handovers["p1"]
            ledger.ended("p1")
            ledger.ended("x9")  # never written: nothing to take out
            await asyncio.sleep(SOON_SECONDS * 2)
            assert "p1" not in await node.redis.hkeys("gw:live:a")
            assert sorted(await node.redis.hkeys("gw:handover:a")) == ["c1", "c3", "p2"]
        finally:
            await node.close()
        ledger.soon("c5")  # after a clean exit: nothing
        assert not ledger._soon


async def test_calls_and_handovers_are_written_again_to_a_redis_that_lost_them(tmp_path: Path) -> None:
    """Issue 65 item 3: the ledger writes only what changed, so a Redis that lost what it held (emptied
    between two heartbeats, or down then back empty) would keep none of this instance's calls: a
    survivor could then carry none on. The node's generation moves on (its own record found missing, or
    Redis back after an outage) and the next heartbeat writes every call and handover again."""
    with running_redis(tmp_path) as redis:
        node = ClusterNode(settings(redis.url, "a"))
        calls = [live_record("c1", 1000.0)]
        ledger = LiveCallLedger(node, lambda: calls, lambda r: None, lambda: {"c1": '{"h": 1}'})
        try:
            await node.beat()
            await ledger.refresh()
            assert await node.redis.hexists("gw:handover:a", "c1")
            await node.redis.flushall()  # emptied between two beats: no error ever seen
            await node.beat()  # (runs the refreshers: none are registered here)
            await ledger.refresh()
            assert node.generation == 1
            assert await node.redis.hexists("gw:live:a", "c1")
            assert await node.redis.hexists("gw:handover:a", "c1")

            redis.stop(kill=True)  # down, then back empty (no files: a replaced Redis)
            await node.beat()
            assert not node.available
            shutil.rmtree(redis.workdir / "appendonlydir", ignore_errors=True)
            redis.start()
            await node.beat()
            await ledger.refresh()
            assert node.generation > 1  # (back, and its record missing: once or twice)
            assert await node.redis.hexists("gw:handover:a", "c1")
        finally:
            await ledger.leave()
            await node.close()


async def test_a_claim_whose_read_failed_is_released_for_the_next_heartbeat(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 65: a survivor claims a dead instance's calls (a key set for CLAIM_SECONDS, 60 s), then reads
    its hashes; when that read fails (Redis timing out under load; here a real Redis error: the handover
    key made a string, WRONGTYPE), the claim is let go, so that the next heartbeat (this survivor's or
    another's) takes the calls over. It stayed for 60 s: nobody took them, and every call was lost."""
    with running_redis(tmp_path) as redis:
        a, b = (ClusterNode(settings(redis.url, name)) for name in "ab")
        kept: list[CallRecord] = []
        ledger_a = LiveCallLedger(a, lambda: [live_record("c1", 1000.0)], kept.append, lambda: {"c1": "{}"})
        ledger_b, offered, written = survivor(b)
        a.add_refresher("live calls", ledger_a.refresh, ledger_a.leave)
        b.add_refresher("live calls", ledger_b.refresh, ledger_b.leave)
        try:
            await a.start()
            await asyncio.sleep(0.5)
            good = await a.redis.hgetall("gw:handover:a")
            assert good and a._task is not None
            a._task.cancel()  # a dies
            await a.redis.delete("gw:handover:a")
            await a.redis.set("gw:handover:a", "not a hash")  # the survivor's read of it fails
            await b.start()
            caplog.set_level(logging.WARNING, logger="gateway.cluster")
            for _ in range(60):  # b's heartbeat (0.2 s) once a's lease (0.6 s) lapsed: it tries, and fails
                await asyncio.sleep(0.05)
                if "WRONGTYPE" in caplog.text:
                    break
            assert "WRONGTYPE" in caplog.text, "b never tried to read a's calls"
            await ledger_b.wait_claims()
            assert not await b.redis.exists("gw:live-claim:a"), "a failed claim still holds the calls"
            await b.redis.delete("gw:handover:a")
            readable = {text(k): text(v) for k, v in good.items()}  # the handover as it was
            await b.redis.hset("gw:handover:a", mapping=readable)  # type: ignore[arg-type]
            for _ in range(100):
                if offered:
                    break
                await asyncio.sleep(0.05)
            assert [(call_id, instance) for call_id, _, instance in offered] == [("c1", "a")]
            assert written == []
        finally:
            await b.close()
            await a.close()
