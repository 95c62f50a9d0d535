"""A web-to-web call outlives its gateway instance (issue 34): two instances as real processes sharing a
real Redis, no PBX at all.

alice and bob (peers.web_user over `/ws`, aiortc media) are both on gw1; alice dials bob's number and
gw1 rings him itself (its own SIP listener: `web_calls: direct`), so both ends of the call's SIP dialog
are gw1's. gw1 gets SIGKILL. gw2 takes both calls over and makes the dialog its own on both ends: bob's
end resumes without a re-INVITE, alice's end re-INVITEs it at gw2's own listener, and its answer gives
each bridge the other's new media address. Both pages log in again at gw2 with their tokens, reattach,
and hear each other again.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import redis

from peers.redis import running_redis
from peers.web_user import WebUser, WebUserError
from peers.webpeer import WebPeer
from tests.e2e.cluster.cluster_harness import cluster
from tests.e2e.cluster.cluster_procs import (
    GatewayProcess,
    handovers_written,
    instance_mapping,
    process_cluster,
)
from tests.e2e.harness import ALICE_SECRET, BOB_SECRET, wait_until

RTP_BASE = 55800  # this file's RTP ports: 55800-55999, 56400-56599
LEASE = 2.0
TAKEOVER_WORK = 30.0  # a bound on work a loaded machine does in seconds (handovers, takeover, login)


async def in_a_call(
    alice: WebUser, bob: WebUser, alice_media: WebPeer, bob_media: WebPeer
) -> tuple[str, str]:
    """alice and bob log in (closed by the caller), alice calls bob, he answers; once each hears the
    other: (alice's call id, bob's)."""
    await alice.__aenter__()
    await bob.__aenter__()
    call_a = await alice.call("1002", await alice_media.offer())
    call_b = (await bob.wait_for("incoming"))["call_id"]
    await bob.answer(call_b, bob_media.answer)
    await alice_media.accept((await alice.wait_for("connected", call_id=call_a))["sdp"])
    await wait_until(lambda: alice_media.heard(660, last=1.0) and bob_media.heard(1000, last=1.0), timeout=15)
    return call_a, call_b


async def back_at(
    survivor: GatewayProcess, alice: WebUser, bob: WebUser, calls: tuple[str, str], wait: float
) -> None:
    """alice's and bob's pages log in again at ``survivor`` with their tokens, find their call there
    (within ``wait`` s), reattach and hear each other again; alice hangs up and bob's call ends."""
    alice_again, bob_again = WebPeer(1300), WebPeer(880)
    call_a, call_b = calls
    try:
        async with (
            WebUser(survivor.http_url, "alice", "", token=alice.token) as alice2,
            WebUser(survivor.http_url, "bob", "", token=bob.token) as bob2,
        ):
            for user, call_id, media in ((alice2, call_a, alice_again), (bob2, call_b, bob_again)):
                try:
                    listed = await user.wait_for("calls", timeout=wait)
                except WebUserError as exc:
                    raise AssertionError(f"{exc}\nthe survivor's log:\n{survivor.log()[-4000:]}") from None
                assert [c["call_id"] for c in listed["calls"]] == [call_id], listed
                await user.request({"type": "reattach", "call_id": call_id, "sdp": await media.offer()})
                await media.accept((await user.wait_for("reattached", call_id=call_id))["sdp"])
            await wait_until(
                lambda: alice_again.heard(880, last=1.0) and bob_again.heard(1300, last=1.0), timeout=20
            )
            assert "taken over here" in survivor.log()
            await alice2.request({"type": "hangup", "call_id": call_a})
            await bob2.wait_for("ended", call_id=call_b, timeout=10)
    finally:
        await asyncio.gather(alice_again.close(), bob_again.close())


async def test_a_survivor_carries_on_a_web_to_web_call(tmp_path: Path) -> None:
    with running_redis(tmp_path) as server:
        mappings = [
            instance_mapping(
                i, server.url, rtp_base=RTP_BASE, lease=LEASE, extra={"web_auth": {"reconnect_grace": 20}}
            )
            for i in range(2)
        ]
        async with process_cluster(tmp_path, mappings) as (gw1, gw2):
            alice_media, bob_media = WebPeer(1000), WebPeer(660)
            alice = WebUser(gw1.http_url, "alice", ALICE_SECRET)
            bob = WebUser(gw1.http_url, "bob", BOB_SECRET)
            try:
                calls = await in_a_call(alice, bob, alice_media, bob_media)
                lines = await handovers_written(server.url, "gw1", 2)  # both ends' name their dialog
                assert all(line.get("pair") for line in lines), lines
                gw1.kill()
                killed = time.monotonic()
            finally:
                await asyncio.gather(alice.close(), bob.close(), alice_media.close(), bob_media.close())
            await back_at(gw2, alice, bob, calls, LEASE + 10)
            back = time.monotonic() - killed
    print(f"alice and bob heard each other again {back:.2f} s after gw1's kill -9")


async def test_a_call_killed_a_moment_after_its_answer_is_carried_on(tmp_path: Path) -> None:
    """A call younger than a heartbeat: gw1 beats every 12 s (its first at its start), so the call is
    answered and gw1 killed long before its second. The call's handovers are in Redis at once all the
    same (written at the answer, not at a heartbeat), and gw2 carries the call on once gw1's lease
    lapses.

    Every wait is on the event it needs, bounded by what the event depends on, not by a fixed figure (it
    failed at load 15 with fixed ones): the handovers written, then the takeover, bounded by gw1's lease
    expiry as Redis holds it (the last beat gw1 made, however late) plus the survivor's own work."""
    slow = {"web_auth": {"reconnect_grace": 60}}
    with running_redis(tmp_path) as server:
        mappings = [
            instance_mapping(0, server.url, heartbeat=12.0, lease=24.0, extra=slow),
            instance_mapping(1, server.url, lease=LEASE, extra=slow),
        ]
        async with process_cluster(tmp_path, mappings) as (gw1, gw2):
            client = redis.Redis.from_url(server.url)
            alice_media, bob_media = WebPeer(1000), WebPeer(660)
            alice = WebUser(gw1.http_url, "alice", ALICE_SECRET)
            bob = WebUser(gw1.http_url, "bob", BOB_SECRET)
            try:
                first_beat = client.zscore("gw:instances", "gw1")  # (each heartbeat renews it)
                calls = await in_a_call(alice, bob, alice_media, bob_media)
                await handovers_written(server.url, "gw1", 2, timeout=TAKEOVER_WORK)
                gw1.kill()
                killed = time.monotonic()
                expiry = client.zscore("gw:instances", "gw1")  # ms since the epoch; gw1 beats no more
                assert expiry is not None, "gw1's lease lapsed before its kill"
                if expiry != first_beat:  # (a machine slower than 12 s)
                    print("gw1 beat again before the call was up: this run shows only the takeover")
            finally:
                client.close()
                await asyncio.gather(alice.close(), bob.close(), alice_media.close(), bob_media.close())
            # (the pages come back once gw2 has the calls: its own settings would not wait 24 s for them)
            lapse = max(0.0, expiry / 1000 - time.time())
            await wait_until(lambda: gw2.log().count("taken over here") == 2, timeout=lapse + TAKEOVER_WORK)
            await back_at(gw2, alice, bob, calls, TAKEOVER_WORK)
            back = time.monotonic() - killed
    print(f"alice and bob heard each other again {back:.2f} s after gw1's kill -9 (its lease: 24 s)")


async def test_a_drain_hands_a_web_to_web_call_over_whole(tmp_path: Path) -> None:
    """The same call handed over by a drain (SIGUSR1's path) instead of a kill: both ends go to one live
    instance, which makes the dialog its own; the draining one forgets both without a BYE and closes the
    pages' idle sockets (1012); the pages log in there with their tokens and hear each other again."""
    async with cluster(tmp_path, 2) as c:
        draining, taker = c.gateways
        alice_media, bob_media = WebPeer(1000), WebPeer(660)
        alice = WebUser(draining.http_url, "alice", ALICE_SECRET)
        bob = WebUser(draining.http_url, "bob", BOB_SECRET)
        try:
            call_a, call_b = await in_a_call(alice, bob, alice_media, bob_media)
            draining.drain()
            for user in alice, bob:
                assert (await user.wait_for("closed", timeout=10))["code"] == 1012
            assert draining.driver.calls == 0 and taker.driver.calls == 2
        finally:
            await asyncio.gather(alice.close(), bob.close(), alice_media.close(), bob_media.close())
        alice_again, bob_again = WebPeer(1300), WebPeer(880)
        try:
            async with (
                WebUser(taker.http_url, "alice", "", token=alice.token) as alice2,
                WebUser(taker.http_url, "bob", "", token=bob.token) as bob2,
            ):
                for user, call_id, media in ((alice2, call_a, alice_again), (bob2, call_b, bob_again)):
                    await user.wait_for("calls", timeout=10)
                    await user.request({"type": "reattach", "call_id": call_id, "sdp": await media.offer()})
                    await media.accept((await user.wait_for("reattached", call_id=call_id))["sdp"])
                await wait_until(
                    lambda: alice_again.heard(880, last=1.0) and bob_again.heard(1300, last=1.0), timeout=20
                )
                await bob2.request({"type": "hangup", "call_id": call_b})
                await alice2.wait_for("ended", call_id=call_a, timeout=10)
        finally:
            await asyncio.gather(alice_again.close(), bob_again.close())


async def test_a_peer_to_peer_call_goes_on_through_its_instances_death(tmp_path: Path) -> None:
    """`web_calls: p2p`: alice's and bob's media flows between them, never through gw1. gw1 gets SIGKILL
    and their media goes on; gw2 takes both ends of the dialog over (the calling end's re-INVITE carries
    alice's description as it was, the answering end answers with bob's), the pages log in there, find
    their call listed `end_to_end` and take it back without an offer, keeping their connections; alice's
    hang-up then reaches bob through gw2."""
    p2p = {"web_auth": {"reconnect_grace": 20}, "calls": {"web_calls": "p2p"}}
    with running_redis(tmp_path) as server:
        mappings = [instance_mapping(i, server.url, lease=LEASE, extra=p2p) for i in range(2)]
        async with process_cluster(tmp_path, mappings) as (gw1, gw2):
            alice_media, bob_media = WebPeer(1000), WebPeer(660)
            alice = WebUser(gw1.http_url, "alice", ALICE_SECRET)
            bob = WebUser(gw1.http_url, "bob", BOB_SECRET)
            try:
                call_a, call_b = await in_a_call(alice, bob, alice_media, bob_media)
                lines = await handovers_written(server.url, "gw1", 2)
                assert all(line.get("pair") for line in lines), lines
                assert {line["media"]["kind"] for line in lines} == {"passthrough"}, lines
                gw1.kill()
                killed = time.monotonic()
                await asyncio.gather(alice.close(), bob.close())  # (their sockets went with gw1)
                gaps = []  # each peer hears the other all along: sampled every 0.25 s
                async with (
                    WebUser(gw2.http_url, "alice", "", token=alice.token) as alice2,
                    WebUser(gw2.http_url, "bob", "", token=bob.token) as bob2,
                ):
                    for user, call_id in ((alice2, call_a), (bob2, call_b)):
                        waited = asyncio.ensure_future(user.wait_for("calls", timeout=LEASE + 10))
                        while not waited.done():
                            if not (alice_media.heard(660, last=0.5) and bob_media.heard(1000, last=0.5)):
                                gaps.append(round(time.monotonic() - killed, 2))
                            await asyncio.sleep(0.25)
                        try:
                            listed = waited.result()
                        except WebUserError as exc:
                            raise AssertionError(f"{exc}\nthe survivor's log:\n{gw2.log()[-4000:]}") from None
                        assert [(c["call_id"], c["end_to_end"]) for c in listed["calls"]] == [(call_id, True)]
                        await user.request({"type": "reattach", "call_id": call_id})
                        reattached = await user.wait_for("reattached", call_id=call_id)
                        assert "sdp" not in reattached, reattached
                    back = time.monotonic() - killed
                    assert gaps == [], f"silent at {gaps} s after the kill"
                    assert alice_media.heard(660, last=1.0) and bob_media.heard(1000, last=1.0)
                    assert gw2.log().count("taken over here") == 2
                    await alice2.request({"type": "hangup", "call_id": call_a})
                    await bob2.wait_for("ended", call_id=call_b, timeout=10)
            finally:
                await asyncio.gather(alice.close(), bob.close(), alice_media.close(), bob_media.close())
    print(f"alice and bob back on gw2 {back:.2f} s after gw1's kill -9, their media never stopped")
