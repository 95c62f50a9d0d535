"""Live `presence` events across instances (issue 18): two gateway instances in this process (127.0.0.2,
127.0.0.3) sharing a real Redis; alice's page is on the first, bob's on the second.

- bob logs in on the second instance: alice's socket on the first gets `presence {user: bob, online:
  true}`; he logs out: `online: false` (published on the Redis channel, pushed by her instance);
- bob with a tab on each instance closes the one on the second: alice hears no "offline" (he is still
  online on hers); he closes the other: she does;
- Redis stopped, bob logs in and out meanwhile... the logout is not published (Redis is down); once
  Redis is back, alice's instance subscribes again, resyncs from the presence store and pushes
  `online: false` for bob by itself.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from peers.web_user import WebUser
from tests.e2e.cluster.cluster_harness import LEASE, cluster
from tests.e2e.harness import ALICE_SECRET, BOB_SECRET, wait_until


async def test_alice_sees_bob_come_and_go_on_another_instance(tmp_path: Path) -> None:
    async with cluster(tmp_path, 2) as c, WebUser(c.urls[0], "alice", ALICE_SECRET) as alice:
        redis, gateways = c.redis, c.gateways
        first, second = c.urls
        channel = gateways[0].cluster.presence_channel if gateways[0].cluster else None
        assert channel is not None
        await asyncio.wait_for(channel.subscribed.wait(), 5)
        async with WebUser(second, "bob", BOB_SECRET):
            online = await alice.wait_for("presence", user="bob", timeout=5)
            assert online["online"] is True and online["number"] == "1002", online
        offline = await alice.wait_for("presence", user="bob", timeout=5)
        assert offline["online"] is False, offline

        # two tabs: closing the one on the other instance leaves him online on alice's
        async with WebUser(first, "bob", BOB_SECRET) as here:
            assert (await alice.wait_for("presence", user="bob", timeout=5))["online"] is True
            async with WebUser(second, "bob", BOB_SECRET):
                await wait_until(lambda: channel.received >= 3)  # his login on the second heard
            received = channel.received
            await wait_until(lambda: channel.received > received)  # his logout there heard
            await asyncio.sleep(0.3)
            assert not [e for e in alice.events if e.get("type") == "presence" and e not in (online, offline)
                        and e["online"] is False], alice.events  # fmt: skip
            await here.close()
            assert (await alice.wait_for("presence", user="bob", timeout=5))["online"] is False

        # an outage: bob's logout is not published; the resync after it tells alice
        async with WebUser(second, "bob", BOB_SECRET) as bob:
            assert (await alice.wait_for("presence", user="bob", timeout=5))["online"] is True
            redis.stop()
            await bob.close()
            await asyncio.sleep(LEASE + 0.5)  # his entry lapses meanwhile (not withdrawn: Redis down)
            resyncs = channel.resyncs
            redis.start()
            after = await alice.wait_for("presence", user="bob", timeout=10)
            assert after["online"] is False, after
            assert channel.resyncs > resyncs
