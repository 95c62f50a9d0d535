"""Hold and resume with a real desk phone, both ways: the web user's hold re-INVITEs the phone with
a=sendonly (the phone reports remote_hold) and the browser hears `held`/`resumed` by local; the phone's
hold is answered and the browser hears `held`/`resumed` by remote; audio flows again afterwards."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.harness import ALICE_SECRET, WsClient, gateway_config, running_gateway, wait_until
from tests.e2e.test_web_and_phone import require_pjsua2
from tests.media.webpeer import WebPeer
from tests.peers.phone import DeskPhone


async def test_hold_and_resume_both_ways(tmp_path: Path) -> None:
    require_pjsua2()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(gateway_config(phone.address)) as gateway,
        WsClient(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        peer = WebPeer(1000)
        try:
            call_id = await alice.call("2000", await peer.offer())
            await peer.accept((await alice.wait_for("connected", call_id=call_id))["sdp"])
            incoming = await phone.wait_for("incoming")
            await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")

            await alice.request({"type": "hold", "call_id": call_id})
            assert (await alice.wait_for("held", call_id=call_id))["by"] == "local"
            await phone.wait_for("media", call=incoming["call"], status="remote_hold")
            await alice.request({"type": "resume", "call_id": call_id})
            assert (await alice.wait_for("resumed", call_id=call_id))["by"] == "local"

            await phone.send("hold")
            assert (await alice.wait_for("held", call_id=call_id))["by"] == "remote"
            await phone.send("unhold")
            assert (await alice.wait_for("resumed", call_id=call_id))["by"] == "remote"

            peer.clear()
            await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)
            await alice.request({"type": "hangup", "call_id": call_id})
            await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
        finally:
            await peer.close()


async def test_web_user_holds_a_call_from_the_phone(tmp_path: Path) -> None:
    require_pjsua2()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(gateway_config(phone.address)) as gateway,
        WsClient(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        peer = WebPeer(1000)
        try:
            host, port = gateway.sip_address
            number = await phone.call(f"sip:1001@{host}:{port}")
            call_id = (await alice.wait_for("incoming"))["call_id"]
            await alice.request({"type": "answer", "call_id": call_id})
            offer = await alice.wait_for("offer", call_id=call_id)
            await alice.request(
                {"type": "answer", "call_id": call_id, "sdp": await peer.answer(offer["sdp"])}
            )
            await alice.wait_for("connected", call_id=call_id)
            await phone.wait_for("state", call=number, state="CONFIRMED")
            await alice.request({"type": "hold", "call_id": call_id})
            assert (await alice.wait_for("held", call_id=call_id))["by"] == "local"
            await phone.wait_for("media", call=number, status="remote_hold")
            await alice.request({"type": "resume", "call_id": call_id})
            assert (await alice.wait_for("resumed", call_id=call_id))["by"] == "local"
            peer.clear()
            await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)
            await phone.hangup(number)
            assert (await alice.wait_for("ended", call_id=call_id))["reason"] == "remote_hangup"
        finally:
            await peer.close()
