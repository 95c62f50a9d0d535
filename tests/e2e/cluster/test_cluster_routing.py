"""Routing between cluster instances (issue 18, the gaps left after behaviours 1-4): three gateway
instances in this process (127.0.0.2-127.0.0.4) sharing a real Redis, behind the shipped Kamailio edge.

- alice has sessions on two instances (two tabs HAProxy sent to different places): a desk phone calling
  her through Kamailio rings both, whichever instance dispatcher picks (the one holding a session
  answers 302 with its own Contact and the other holder's, the third with both holders'; Kamailio forks
  in parallel), the session that answers gets the call and the other stops ringing with
  `answered_elsewhere` (Kamailio's CANCEL says "Call completed elsewhere", RFC 3326).
- web to web across instances: alice on the first instance dials bob, who is on the second only: the
  call goes to the second instance's advertised SIP address and rings bob there (no PBX), both sides
  connect.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.cluster.cluster_harness import cluster
from tests.e2e.harness import ALICE_SECRET, BOB_SECRET, wait_until

INSTANCES = ("127.0.0.1/32", "127.0.0.2/31", "127.0.0.4/32")  # Kamailio, the phone and the instances


async def test_a_user_on_two_instances_rings_on_both(tmp_path: Path) -> None:
    require_desk_phone()
    async with cluster(tmp_path, 3, fronts=True) as c:
        gateways, edge = c.gateways, c.edge
        async with (
            DeskPhone(tmp_path, user="2000", tone=440) as phone,
            WebUser(gateways[0].http_url, "alice", ALICE_SECRET) as first,
            WebUser(gateways[1].http_url, "alice", ALICE_SECRET) as second,
        ):
            for attempt in range(3):  # round robin: each instance receives one INVITE
                number = await phone.call(edge.aor("1001"))
                rung = [await tab.wait_for("incoming") for tab in (first, second)]
                answering, other = (first, second) if attempt % 2 else (second, first)
                call_id = rung[0 if answering is first else 1]["call_id"]
                other_id = rung[1 if answering is first else 0]["call_id"]
                peer = WebPeer(freq=1000)
                try:
                    await answering.answer(call_id, peer.answer)
                    stopped = await other.wait_for("ended", call_id=other_id)
                    # Kamailio CANCELs the other branch (RFC 3261 §16.7 step 10) with Reason SIP cause 200 (RFC 3326)
                    assert stopped["reason"] == "answered_elsewhere", stopped
                    await phone.wait_for("state", call=number, state="CONFIRMED")
                    await phone.hangup(number)
                    await answering.wait_for("ended", call_id=call_id)
                finally:
                    await peer.close()
            await wait_until(lambda: all(g.driver.calls == 0 for g in gateways))
            log = edge.log()
            picked = {line.rsplit("-> gateway ", 1)[1] for line in log.splitlines() if "-> gateway" in line}
            assert len(picked) == 3, log[-3000:]
            # every instance answered 302 with both holders (the holders their own Contact first)
            assert log.count("redirected by the gateway") == 3, log[-3000:]


async def test_web_to_web_call_reaches_the_callee_on_another_instance(tmp_path: Path) -> None:
    async with (
        cluster(tmp_path, 2, trusted=INSTANCES) as c,
        WebUser(c.urls[0], "alice", ALICE_SECRET) as alice,
        WebUser(c.urls[1], "bob", BOB_SECRET) as bob,
    ):
        gateways = c.gateways

        # GET /contacts on alice's instance: bob is online (on the other one); after he leaves, not
        async def bob_online() -> bool:
            headers = {"Authorization": f"Bearer {alice.token}"}
            async with (
                aiohttp.ClientSession() as http,
                http.get(gateways[0].http_url + "/contacts", headers=headers) as response,
            ):
                assert response.status == 200, await response.text()
                listed = {c["id"]: c["online"] for c in (await response.json())["contacts"]}
            return bool(listed["bob"])

        assert await bob_online()
        caller, callee = WebPeer(freq=1000), WebPeer(freq=440)
        try:
            call_id = await alice.call("bob", await caller.offer())
            ringing = await bob.wait_for("incoming")
            assert str(ringing["from"]).startswith("sip:1001@"), ringing  # alice's SIP identity
            await bob.answer(ringing["call_id"], callee.answer)
            connected = await alice.wait_for("connected", call_id=call_id)
            await caller.accept(connected["sdp"])
            await wait_until(lambda: caller.heard(440, last=0.5) and callee.heard(1000, last=0.5), timeout=15)
            assert gateways[0].driver.calls == 1 and gateways[1].driver.calls == 1
            await alice.request({"type": "hangup", "call_id": call_id})
            ended = await bob.wait_for("ended", call_id=ringing["call_id"])
            assert ended["reason"] == "remote_hangup", ended
        finally:
            await caller.close()
            await callee.close()
        await wait_until(lambda: all(g.driver.calls == 0 for g in gateways))
        # bob has no session on the first instance: the INVITE went to the second one's listener
        assert await gateways[0].presence.sessions_of("bob") == ()
        await bob.close()
        await wait_until(lambda: gateways[1].driver.calls == 0)
        for _ in range(100):  # his instance drops his presence once it sees the socket closed
            if not await bob_online():
                break
            await asyncio.sleep(0.05)
        assert not await bob_online()
