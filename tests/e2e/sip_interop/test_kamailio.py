"""The same calls with a real Kamailio registrar/proxy between the gateway and the desk phone: the
gateway registers alice's SIP identity (1001, with pbx_auth), the phone registers as 2000, and calls go
through Kamailio both ways (by address of record, Kamailio finding the registered contacts)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from peers.demo import require_desk_phone
from peers.kamailio import running_kamailio
from peers.phone import DeskPhone
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from sipcore import RegState
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until
from tests.e2e.sip_interop.test_web_and_phone import wav_has_tone


async def test_calls_both_ways_through_kamailio(tmp_path: Path) -> None:
    require_desk_phone()
    with running_kamailio(tmp_path, users={"1001": "pw1001"}) as kamailio:
        config = gateway_config(kamailio.address, register=True, alice_auth=("1001", "pw1001"))
        async with (
            DeskPhone(
                tmp_path, user="2000", tone=440, register=kamailio.registrar, password=kamailio.users["2000"]
            ) as phone,
            running_gateway(config) as gateway,
        ):
            await phone.wait_for("registered", code=200)
            assert gateway.sip is not None
            aor = "sip:1001@127.0.0.1"
            await gateway.sip.registrations.wait_for(aor, RegState.REGISTERED)
            assert gateway._health_details()["sip"] == {"registrations": {aor: "registered"}}
            async with WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice:
                pushed = await alice.wait_for("sip_registration")
                assert (pushed["aor"], pushed["state"]) == (aor, "registered"), pushed
                # web -> phone, through Kamailio
                peer = WebPeer(freq=1000)
                try:
                    call_id = await alice.call("2000", await peer.offer())
                    connected = await alice.wait_for("connected", call_id=call_id)
                    await peer.accept(connected["sdp"])
                    incoming = await phone.wait_for("incoming")
                    await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
                    await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)
                    await asyncio.sleep(1.0)
                    await alice.request({"type": "hangup", "call_id": call_id})
                    await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
                    assert wav_has_tone(await phone.wait_for_recording(incoming["call"]), 1000)
                finally:
                    await peer.close()

                # phone -> web, by alice's address of record at Kamailio
                peer = WebPeer(freq=1000)
                try:
                    number = await phone.call(kamailio.aor("1001"))
                    ringing = await alice.wait_for("incoming")
                    call_id = ringing["call_id"]
                    await alice.answer(call_id, peer.answer)
                    await phone.wait_for("state", call=number, state="CONFIRMED")
                    await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)
                    await phone.hangup(number)
                    ended = await alice.wait_for("ended", call_id=call_id)
                    assert ended["reason"] == "remote_hangup", ended
                finally:
                    await peer.close()
