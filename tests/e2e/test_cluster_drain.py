"""Idle WebSockets closed at drain start (issue 18 item 2): gateway instances in this process sharing a
real Redis.

- three instances behind the shipped Kamailio edge and HAProxy: alice's only session (peers.web_user
  with reconnect, as the softphone page's client) is on the instance that starts draining. Her socket is
  closed at once with 1012, she reconnects through HAProxy at once (the draining instance refuses the
  upgrade with 503 and HAProxy retries elsewhere), and a desk phone calling her through Kamailio rings
  her on another instance within a few seconds of the drain's start;
- one instance: bob, idle, is closed with 1012 at drain start; alice, in a call with the desk phone, is
  not, until the phone hangs up: then her socket is closed with 1012 too.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.redis import running_redis
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, BOB_SECRET, wait_until
from tests.e2e.test_cluster import fronts, holder, instance_config, running_cluster

RING_WITHIN = 5.0  # seconds from the drain's start to the phone ringing alice elsewhere


async def test_alice_on_a_draining_instance_is_rung_elsewhere_within_seconds(tmp_path: Path) -> None:
    require_desk_phone()
    with running_redis(tmp_path) as redis:
        configs = [instance_config(i, redis) for i in range(3)]
        async with running_cluster(configs) as gateways:
            with fronts(tmp_path, configs) as (edge, front):
                async with (
                    DeskPhone(tmp_path, user="2000", tone=440) as phone,
                    WebUser(front.url, "alice", ALICE_SECRET, reconnect=True) as alice,
                ):
                    draining = holder(gateways, "alice")
                    first_session = alice.session_id
                    loop = asyncio.get_running_loop()
                    started = loop.time()
                    draining.drain()
                    closed = await alice.wait_for("closed", timeout=2)
                    assert closed["code"] == 1012, closed
                    await alice.wait_for("reconnected", timeout=3)
                    assert alice.session_id != first_session
                    now_holding = holder(gateways, "alice")
                    assert now_holding is not draining
                    assert draining.cluster is not None and draining.cluster.sockets is not None
                    assert draining.cluster.sockets.closed_draining == 1
                    number = await phone.call(edge.aor("1001"))
                    incoming = await alice.wait_for("incoming", timeout=RING_WITHIN)
                    took = loop.time() - started
                    print(f"rung {took:.2f} s after the drain started")
                    assert took < RING_WITHIN, took
                    await alice.request({"type": "reject", "call_id": incoming["call_id"], "status": 486})
                    await phone.wait_for("state", call=number, state="DISCONNECTED")
                    assert draining.driver.calls == 0


async def test_a_session_in_a_call_is_closed_when_its_call_ends(tmp_path: Path) -> None:
    require_desk_phone()
    with running_redis(tmp_path) as redis:
        config = instance_config(0, redis, trusted=("127.0.0.1/32", "127.0.0.2/32"))
        async with running_cluster([config]) as [gateway]:
            host, port = gateway.sip_address
            async with (
                DeskPhone(tmp_path, user="2000", tone=440) as phone,
                WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
                WebUser(gateway.http_url, "bob", BOB_SECRET) as bob,
            ):
                peer = WebPeer(freq=1000)
                try:
                    number = await phone.call(f"sip:1001@{host}:{port}")
                    ringing = await alice.wait_for("incoming")
                    await alice.answer(ringing["call_id"], peer.answer)
                    await phone.wait_for("state", call=number, state="CONFIRMED")
                    gateway.drain()
                    closed = await bob.wait_for("closed", timeout=2)
                    assert closed["code"] == 1012, closed
                    await asyncio.sleep(0.5)  # alice, in her call, keeps her socket
                    assert not [e for e in alice.events if e.get("type") == "closed"], alice.events
                    await phone.hangup(number)
                    ended = await alice.wait_for("ended", call_id=ringing["call_id"])
                    assert ended["reason"] == "remote_hangup", ended
                    closed = await alice.wait_for("closed", timeout=2)
                    assert closed["code"] == 1012, closed
                finally:
                    await peer.close()
                await wait_until(lambda: gateway.driver.calls == 0)
