"""Idle WebSockets closed at drain start (issue 18): gateway instances in this process sharing a
real Redis.

- three instances behind the shipped Kamailio edge and HAProxy: alice's only session (peers.web_user
  with reconnect, as the softphone page's client) is on the instance that starts draining. Her socket is
  closed at once with 1012, she reconnects through HAProxy at once (the draining instance refuses the
  upgrade with 503 and HAProxy retries elsewhere), and a desk phone calling her through Kamailio rings
  her on another instance within a few seconds of the drain's start;
- the same with JsSIP (unmodified, headless Chromium) registered over SIP WebSocket through HAProxy: its
  flow is closed with 1012, JsSIP reconnects by itself (after its connection_recovery_min_interval, 2 s:
  it reads no close code), REGISTERs on another instance, and the desk phone through Kamailio rings it;
- one instance: bob, idle, is closed with 1012 at drain start; alice, in a call with the desk phone, is
  not, until the phone hangs up: then her socket is closed with 1012 too.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.softphones import Softphone, require_softphones
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.cluster.cluster_harness import cluster, online
from tests.e2e.harness import ALICE_SECRET, BOB_SECRET, wait_until
from tests.e2e.websip.test_sip_websocket import ALICE_SIP_PASSWORD
from tests.signaling.browser import chromium_page

RING_WITHIN = 5.0  # seconds from the drain's start to the phone ringing alice elsewhere
JSSIP_RING_WITHIN = 8.0  # the same for JsSIP, which waits connection_recovery_min_interval (2 s) first
SIP_WEBSOCKET = {"sip": {"websocket": {}}, "alice_extra": {"sip_auth": {"password": ALICE_SIP_PASSWORD}}}


async def test_alice_on_a_draining_instance_is_rung_elsewhere_within_seconds(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        cluster(tmp_path, 3, fronts=True) as c,
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        WebUser(c.front.url, "alice", ALICE_SECRET, reconnect=True) as alice,
    ):
        draining = c.holder("alice")
        first_session = alice.session_id
        loop = asyncio.get_running_loop()
        started = loop.time()
        draining.drain()
        closed = await alice.wait_for("closed", timeout=2)
        assert closed["code"] == 1012, closed
        await alice.wait_for("reconnected", timeout=3)
        assert alice.session_id != first_session
        now_holding = c.holder("alice")
        assert now_holding is not draining
        assert draining.drainer.closed == 1
        number = await phone.call(c.edge.aor("1001"))
        incoming = await alice.wait_for("incoming", timeout=RING_WITHIN)
        took = loop.time() - started
        print(f"rung {took:.2f} s after the drain started")
        assert took < RING_WITHIN, took
        await alice.request({"type": "reject", "call_id": incoming["call_id"], "status": 486})
        await phone.wait_for("state", call=number, state="DISCONNECTED")
        assert draining.driver.calls == 0


async def test_jssip_on_a_draining_instance_registers_elsewhere_and_is_rung(tmp_path: Path) -> None:
    """JsSIP, unmodified, in headless Chromium through HAProxy: its SIP WebSocket flow on the draining
    instance is closed with 1012 (it has no call), JsSIP reconnects by itself (its transport recovery,
    after connection_recovery_min_interval: it reads no close code), HAProxy sends the upgrade elsewhere
    (the draining one answers 503), JsSIP REGISTERs again there, and the desk phone calling alice
    through Kamailio rings it."""
    require_desk_phone()
    require_softphones()
    async with (
        cluster(tmp_path, 3, fronts=True, **SIP_WEBSOCKET) as c,
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        chromium_page() as page,
        Softphone(page, "jssip", origin=c.front.url) as softphone,
    ):
        ws_url = c.front.url.replace("http", "ws", 1) + "/sip"
        await softphone.start(ws_url, "sip:alice@127.0.0.1", ALICE_SIP_PASSWORD)
        await softphone.wait_for("registered")
        draining = c.holder("alice")
        loop = asyncio.get_running_loop()
        started = loop.time()
        draining.drain()
        await softphone.wait_for("disconnected", timeout=2)
        await softphone.wait_for("registered", timeout=JSSIP_RING_WITHIN)
        registered = loop.time() - started
        # the new instance's registrar takes the REGISTER, then its presence marks alice online
        await wait_until(
            lambda: any(
                g is not draining and g.web_sip and len(g.web_sip.registrar) and online(g, "alice")
                for g in c.gateways
            )
        )
        assert draining.web_sip is not None and len(draining.web_sip.registrar) == 0
        assert draining.drainer.closed == 1
        assert c.holder("alice") is not draining
        number = await phone.call(c.edge.aor("1001"))
        await softphone.wait_for("incoming", timeout=JSSIP_RING_WITHIN)
        took = loop.time() - started
        print(f"JsSIP registered again {registered:.2f} s, rung {took:.2f} s after the drain started")
        assert took < JSSIP_RING_WITHIN, took
        await phone.hangup(number)
        await softphone.wait_for(("ended", "failed"))
        await phone.wait_for("state", call=number, state="DISCONNECTED")


async def test_a_session_in_a_call_is_closed_when_its_call_ends(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        cluster(tmp_path, 1, trusted=("127.0.0.1/32", "127.0.0.2/32")) as c,
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        WebUser(c.urls[0], "alice", ALICE_SECRET) as alice,
        WebUser(c.urls[0], "bob", BOB_SECRET) as bob,
    ):
        [gateway] = c.gateways
        host, port = gateway.sip_address
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
