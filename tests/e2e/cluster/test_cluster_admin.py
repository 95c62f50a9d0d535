"""The admin API across two gateway instances sharing a real Redis (issue 36 item 5): alice's call to a
pjsua2 desk phone runs on gw1; gw2's admin API lists it (instance gw1) beside its own calls, shows it,
and hangs it up by passing the request to gw1 with a cluster-signed assertion (the phone gets BYE). A
forged assertion is refused."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.cluster.cluster_harness import cluster
from tests.e2e.harness import ALICE_SECRET

TOKEN = "cluster-admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


async def test_an_instance_lists_and_hangs_up_a_call_of_another(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        cluster(tmp_path, 2, pbx=phone.address, admin={"token": TOKEN}) as c,
        WebUser(c.urls[0], "alice", ALICE_SECRET) as alice,
        aiohttp.ClientSession() as http,
    ):
        gw1, gw2 = c.urls
        peer = WebPeer(freq=1000)
        try:
            call_id = await alice.call("2000", await peer.offer())
            connected = await alice.wait_for("connected", call_id=call_id)
            await peer.accept(connected["sdp"])
            incoming = await phone.wait_for("incoming")
            await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")

            async with http.get(gw2 + "/admin/api/calls", headers=ADMIN) as reply:
                assert reply.status == 200, await reply.text()
                listing = await reply.json()
            assert listing["instances"] == {"gw2": "ok", "gw1": "ok"}, listing
            [call] = listing["calls"]
            assert call["call_id"] == call_id and call["instance"] == "gw1", call
            assert call["from"] == "sip:1001@127.0.0.1" and call["to"] == "sip:2000@127.0.0.1", call
            assert call["user"] == "alice" and call["state"] == "connected", call
            async with http.get(gw2 + "/admin/api/calls?scope=local", headers=ADMIN) as reply:
                assert (await reply.json())["calls"] == []  # gw2's own: none
            async with http.get(f"{gw2}/admin/api/calls/{call_id}", headers=ADMIN) as reply:
                assert reply.status == 200 and (await reply.json())["instance"] == "gw1"

            # an assertion not signed with cluster.secret: refused by gw1's cluster middleware
            forged = {"X-Gateway-User": "admin:mallory", "X-Gateway-Forwarded": "gw2;1800000000;00"}
            async with http.post(
                f"{gw1}/admin/api/calls/{call_id}/hangup?scope=local", headers=forged
            ) as reply:
                assert reply.status == 403, await reply.text()

            async with http.post(f"{gw2}/admin/api/calls/{call_id}/hangup", headers=ADMIN) as reply:
                assert reply.status == 200, await reply.text()
                body = await reply.json()
            assert body == {"call_id": call_id, "instance": "gw1", "status": "hung_up"}, body
            await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
            ended = await alice.wait_for("ended", call_id=call_id)
            assert ended["reason"] == "admin_hangup", ended
            async with http.get(gw2 + "/admin/api/calls", headers=ADMIN) as reply:
                assert (await reply.json())["calls"] == []
            async with http.post(f"{gw2}/admin/api/calls/{call_id}/hangup", headers=ADMIN) as reply:
                assert reply.status == 404, await reply.text()
        finally:
            await peer.close()
