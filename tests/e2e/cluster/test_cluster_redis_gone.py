"""Redis gone altogether, then back empty (issue 65 item 3): two instances as real processes sharing one
Redis, the pjsua2 desk phone as the PBX.

alice and bob talk web to web through gw1, carol (on gw2) talks to the phone, dave is logged in on both
instances. Redis gets kill -9 and comes back OUTAGE seconds later with nothing of what it held (its
files removed: a Redis restarted without persistence, or replaced). Meanwhile:
- every call goes on (each party hears the other in every 0.1 s sample but a second's worth);
- each instance says it is degraded: /healthz `cluster.state` "degraded", `gateway_cluster_redis_up` 0
  in /metrics, /readyz's `cluster` detail saying so (its state failing, as before: no login can be made);
- dave makes a new call to the phone from each instance, and it works both ways.
Once Redis is back each instance is ok again by itself, and writes its state again, whole: gw1 then gets
kill -9 and gw2 carries alice's and bob's calls on from what gw1 wrote to the new, empty Redis (its
lease, its live calls and their handovers, where the logins' calls are).

OUTAGE is four leases (8 s), not the 30 s of the issue: what an instance does is the same after one
lease as after fifteen (every lease has lapsed, every heartbeat since failed), and the suite is long;
bench/redis_failover_bench.py runs the 30 s.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import urllib.request
from pathlib import Path

from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.redis import running_redis
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.cluster.cluster_procs import (
    GatewayProcess,
    handovers_written,
    instance_mapping,
    process_cluster,
)
from tests.e2e.cluster.test_cluster_redis_sentinel import (
    GAP_AT_MOST,
    AudioGaps,
    phone_call,
    states,
    with_more_users,
)
from tests.e2e.cluster.test_cluster_takeover_web_to_web import back_at, in_a_call
from tests.e2e.harness import ALICE_SECRET, BOB_SECRET, wait_until
from tests.e2e.softphone.test_reconnect import call_the_phone

LEASE = 2.0
OUTAGE = 4 * LEASE  # seconds (see the module note)
BACK_WITHIN = 10.0  # s from Redis's return to every instance ok (a heartbeat, on a loaded machine)


def degraded(instance: GatewayProcess) -> tuple[str, str, str]:
    """(/healthz `cluster.state`, `gateway_cluster_redis_up` in /metrics, /readyz's `cluster` detail)."""
    with urllib.request.urlopen(instance.http_url + "/healthz", timeout=2) as response:
        health = json.load(response)["cluster"]["state"]
    with urllib.request.urlopen(instance.http_url + "/metrics", timeout=2) as response:
        metrics = response.read().decode()
    up = next(
        line.split()[1].removesuffix(".0")
        for line in metrics.splitlines()
        if line.startswith("gateway_cluster_redis_up ")
    )
    try:
        with urllib.request.urlopen(instance.http_url + "/readyz", timeout=2) as response:
            ready = json.load(response)
    except urllib.error.HTTPError as exc:
        ready = json.loads(exc.read())
    return health, up, ready["checks"]["cluster"]["detail"]


async def test_calls_and_new_calls_go_on_without_redis_and_its_state_is_rebuilt(tmp_path: Path) -> None:
    require_desk_phone()
    slow = {"web_auth": {"reconnect_grace": 60}}
    async with DeskPhone(tmp_path, user="2000", tone=440) as phone:
        with running_redis(tmp_path) as server:
            mappings = [
                with_more_users(instance_mapping(i, server.url, pbx=phone.address, lease=LEASE, extra=slow))
                for i in range(2)
            ]
            async with process_cluster(tmp_path, mappings) as (gw1, gw2):
                alice_media, bob_media, carol_media = WebPeer(1000), WebPeer(660), WebPeer(1500)
                alice = WebUser(gw1.http_url, "alice", ALICE_SECRET)
                bob = WebUser(gw1.http_url, "bob", BOB_SECRET)
                carol = WebUser(gw2.http_url, "carol", ALICE_SECRET)
                daves = [WebUser(g.http_url, "dave", ALICE_SECRET) for g in (gw1, gw2)]
                try:
                    calls = await in_a_call(alice, bob, alice_media, bob_media)
                    await carol.__aenter__()
                    carol_call, _ = await call_the_phone(carol, carol_media, phone)
                    for dave in daves:
                        await dave.__aenter__()
                    await wait_until(lambda: carol_media.heard(440, last=1.0), timeout=10)
                    for g in (gw1, gw2):
                        assert await asyncio.to_thread(degraded, g) == (
                            "ok",
                            "1",
                            f"Redis reachable (instance {g.id})",
                        )
                    pages = {
                        "alice": (alice_media, 660),
                        "bob": (bob_media, 1000),
                        "carol": (carol_media, 440),
                    }
                    async with AudioGaps(pages) as gaps:
                        await asyncio.to_thread(server.stop, kill=True)
                        stopped = time.monotonic()
                        shutil.rmtree(server.workdir / "appendonlydir", ignore_errors=True)  # back empty
                        for g in (gw1, gw2):  # each says so within a heartbeat or two
                            await wait_until(lambda g=g: degraded(g)[:2] == ("degraded", "0"), timeout=5)
                            detail = (await asyncio.to_thread(degraded, g))[2]
                            assert "degraded" in detail and "new calls work" in detail, detail
                        for dave in daves:  # a new call on each instance, Redis gone
                            await phone_call(dave, phone)
                        assert time.monotonic() - stopped < OUTAGE, "the machine is too slow for OUTAGE"
                        await asyncio.sleep(OUTAGE - (time.monotonic() - stopped))
                        await asyncio.to_thread(server.start)
                        restarted = time.monotonic()
                        while (now := await states(gw1, gw2)) != ["ok", "ok"]:
                            assert time.monotonic() - restarted < BACK_WITHIN, now
                            await asyncio.sleep(0.1)
                        back = time.monotonic() - restarted
                        for g in (gw1, gw2):  # /healthz, /metrics and /readyz agree (a command that
                            # timed out on a loaded machine may say unreachable a moment more: waited)
                            ok = ("ok", "1", f"Redis reachable (instance {g.id})")
                            await wait_until(lambda g=g, ok=ok: degraded(g) == ok, timeout=BACK_WITHIN)
                        await asyncio.sleep(1.0)  # and the calls go on after it
                    page, gap = gaps.worst()
                    assert gap <= GAP_AT_MOST, f"{page} heard nothing for {gap:.2f} s: {gaps.longest}"
                    await carol.request({"type": "hangup", "call_id": carol_call})
                    await carol.wait_for("ended", call_id=carol_call)

                    # gw1 wrote its calls again to the empty Redis: gw2 carries them on
                    await handovers_written(server.url, "gw1", 2, timeout=BACK_WITHIN)
                    gw1.kill()
                finally:
                    await asyncio.gather(
                        alice.close(), bob.close(), carol.close(), *(d.close() for d in daves),
                        alice_media.close(), bob_media.close(), carol_media.close(),
                    )  # fmt: skip
                await back_at(gw2, alice, bob, calls, 20)
    print(
        f"Redis gone {OUTAGE:g} s: every instance ok {back:.2f} s after it came back; "
        f"longest silence {gap:.2f} s ({page})"
    )
