"""A page reload lands on another instance and still gets its call back (issue 34 item 2): two gateway
instances sharing a real Redis, no sticky cookie, the pjsua2 desk phone as the PBX.

alice (peers.web_user over `/ws`, aiortc media, as the softphone page) calls the phone through instance
1; her page goes (socket and RTCPeerConnection). Her reload logs in with its saved token at instance 2
(what HAProxy does without the GWSRV cookie): instance 2 finds in Redis that her login's call waits on
instance 1 and relays her socket there (gateway/signaling/ws/relay.py). She is told `calls`, reattaches
with a new RTCPeerConnection, hears the phone, the phone hears her new tone, and the call stays on
instance 1 (instance 2 holds none). The phone never saw a BYE or a re-INVITE."""

from __future__ import annotations

import asyncio
from pathlib import Path

from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.cluster.cluster_harness import cluster
from tests.e2e.harness import ALICE_SECRET, wait_until
from tests.e2e.softphone.test_reconnect import call_the_phone, tail_has_tone


async def test_a_reload_on_another_instance_gets_the_call_back(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        cluster(tmp_path, 2, pbx=phone.address) as c,
    ):
        one, two = c.gateways
        first = WebPeer(freq=1000)
        alice = WebUser(one.http_url, "alice", ALICE_SECRET)
        await alice.__aenter__()
        try:
            call_id, number = await call_the_phone(alice, first, phone)
            await wait_until(lambda: first.heard(440, last=1.0), timeout=10)
            media_changes = len(phone.seen("media", call=number))
        finally:
            await asyncio.gather(alice.close(), first.close())  # the page goes
        token = alice.token
        await asyncio.sleep(1.0)
        assert not phone.seen("state", call=number, state="DISCONNECTED")

        second = WebPeer(freq=1300)
        try:
            async with WebUser(two.http_url, "alice", "", token=token) as again:  # the reload, elsewhere
                calls = await again.wait_for("calls")
                [summary] = calls["calls"]
                assert summary["call_id"] == call_id and summary["state"] == "connected", calls
                await again.request({"type": "reattach", "call_id": call_id, "sdp": await second.offer()})
                reattached = await again.wait_for("reattached", call_id=call_id)
                await second.accept(reattached["sdp"])
                await wait_until(lambda: second.heard(440, last=1.0), timeout=10)
                assert one.driver.calls == 1 and two.driver.calls == 0  # the call stayed where it was
                await asyncio.sleep(1.5)  # the new tone in the phone's recording
                assert len(phone.seen("media", call=number)) == media_changes  # no re-INVITE
                await again.request({"type": "hangup", "call_id": call_id})
                ended = await again.wait_for("ended", call_id=call_id)
                assert ended["reason"] == "hangup", ended
        finally:
            await second.close()
        await phone.wait_for("state", call=number, state="DISCONNECTED")
        wav = await phone.wait_for_recording(number)
        assert tail_has_tone(wav, 1300), "the phone did not hear alice after the reload"
