"""Three gateway instances (127.0.0.2-127.0.0.4) sharing state in a real Redis, behind a real Kamailio
(deploy/kamailio-cluster.cfg: dispatcher, redirects) and a real HAProxy (deploy/haproxy.cfg), all on
loopback (issue 18).

- alice logs in through HAProxy (on whichever instance it picks); a pjsua2 desk phone calls her through
  Kamailio three times: dispatcher's round robin hands each INVITE to another instance, those that do not
  hold her answer 302 to the one that does, Kamailio follows, and every call rings her and is answered
  (the tone checked on the first); the owner's call records name whom the phone dialled, not the
  instance a redirect pointed at.
- an HTTP-API session made on one instance is seen and closed through the two others (forwarded to its
  owner, authenticated by the cluster secret); a forged forwarded request gets 403.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from gateway.ops.records import CallRecord
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.redis import running_redis
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.cluster.cluster_harness import cluster, instance_config, running_cluster
from tests.e2e.dialects.test_http_offer import AUTH
from tests.e2e.harness import ALICE_SECRET, wait_until
from tests.e2e.sip_interop.test_web_and_phone import wav_has_tone


async def test_phone_through_kamailio_rings_alice_on_whichever_instance(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        cluster(tmp_path, 3, fronts=True) as c,
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        WebUser(c.front.url, "alice", ALICE_SECRET) as alice,
    ):
        owner = c.holder("alice")
        records: list[CallRecord] = []
        owner.add_record_sink(records.append)
        for attempt in range(3):
            peer = WebPeer(freq=1000)
            try:
                number = await phone.call(c.edge.aor("1001"))
                ringing = await alice.wait_for("incoming")
                await alice.answer(ringing["call_id"], peer.answer)
                await phone.wait_for("state", call=number, state="CONFIRMED")
                if attempt == 0:
                    await wait_until(lambda p=peer: p.heard(440, last=1.0), timeout=10)
                    await asyncio.sleep(1.0)  # a second of the web peer's tone recorded
                await phone.hangup(number)
                ended = await alice.wait_for("ended", call_id=ringing["call_id"])
                assert ended["reason"] == "remote_hangup", ended
            finally:
                await peer.close()
                if attempt == 0:
                    assert wav_has_tone(await phone.wait_for_recording(number), 1000)
        await wait_until(lambda: owner.driver.calls == 0)
        # the records say whom the phone dialled (its To), not the instance a 302 sent Kamailio to
        # (the redirected INVITEs' Request-URI: issue 36)
        await wait_until(lambda: len(records) == 3)
        dialled = [r.to_uri or "" for r in records]
        assert all(to.startswith("sip:1001@127.0.0.1") for to in dialled), dialled  # the instances: .2-.4
        # round robin gave the INVITEs to the three instances: two of them redirected
        log = c.edge.log()
        picked = {line.rsplit("-> gateway ", 1)[1] for line in log.splitlines() if "-> gateway" in line}
        assert len(picked) == 3, log[-3000:]
        assert log.count("redirected by the gateway") == 2, log[-3000:]


async def _post(http: aiohttp.ClientSession, url: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, Any]]:  # fmt: skip
    async with http.post(url, json=body, headers=headers) as response:
        return response.status, await response.json()


async def test_http_session_closed_through_any_instance(tmp_path: Path) -> None:
    require_desk_phone()
    with running_redis(tmp_path) as redis:
        async with DeskPhone(tmp_path, user="2000", tone=440) as phone:
            configs = [instance_config(i, redis, pbx=phone.address) for i in range(3)]
            async with running_cluster(configs) as gateways, aiohttp.ClientSession() as http:
                urls = [g.http_url for g in gateways]
                auth = {"Authorization": AUTH}
                peer = WebPeer(freq=1000)
                try:
                    offer = {
                        "sdp": {"type": "offer", "sdp": await peer.offer()},
                        "metadata": {"dial": "2000"},
                    }
                    status, body = await _post(http, f"{urls[0]}/webrtc/offer", offer, auth)
                    assert status == 200, body
                    session_id = body["session_id"]
                    await peer.accept(body["sdp"]["sdp"])
                    incoming = await phone.wait_for("incoming")
                    await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
                    # seen through the second instance (forwarded to the first)
                    async with http.get(f"{urls[1]}/webrtc/sessions/{session_id}", headers=auth) as poll:
                        assert poll.status == 200, await poll.text()
                        assert (await poll.json())["state"] == "answered"
                    # a forged forwarded request is refused
                    forged = {**auth, "X-Gateway-Forwarded": "gw9;0;00"}
                    async with http.get(f"{urls[1]}/webrtc/sessions/{session_id}", headers=forged) as bad:
                        assert bad.status == 403
                    # closed through the third
                    close = {"session_id": session_id, "reason": "closed elsewhere"}
                    status, closed = await _post(http, f"{urls[2]}/webrtc/close", close, auth)
                    assert (status, closed) == (200, {"session_id": session_id, "status": "closed"})
                    await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
                    await wait_until(lambda: gateways[0].driver.calls == 0)
                    # gone everywhere now
                    status, gone = await _post(http, f"{urls[1]}/webrtc/close", close, auth)
                    assert status == 404, gone
                    forwarded = [g.cluster.http.forwarded for g in gateways if g.cluster and g.cluster.http]
                    assert forwarded == [0, 1, 1], (
                        forwarded
                    )  # the poll from the second, the close from the third
                finally:
                    await peer.close()
