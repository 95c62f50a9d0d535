"""Shutdown ends calls cleanly: a connected call gets its BYE (the phone sees the call end normally,
before the UA and HTTP close), a ringing inbound call gets an answer, and nothing is left running. The
page hears `ended` with `shutdown` for each (it showed "Reconnecting the call" for 30 s), and the
records say the gateway ended them (`shutdown`), not the browser (`disconnected`)."""

from __future__ import annotations

from pathlib import Path

from gateway.app import Gateway
from gateway.ops.records import CallRecord
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, gateway_config


async def test_closing_the_gateway_ends_its_calls(tmp_path: Path) -> None:
    require_desk_phone()
    async with DeskPhone(tmp_path, user="2000", tone=440) as phone:
        gateway = Gateway(gateway_config(phone.address))
        records: list[CallRecord] = []
        gateway.add_record_sink(records.append)
        peer = WebPeer(1000)
        try:
            await gateway.start()
            host, port = gateway.sip_address
            async with WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice:
                call_id = await alice.call("2000", await peer.offer())
                await peer.accept((await alice.wait_for("connected", call_id=call_id))["sdp"])
                outbound = await phone.wait_for("incoming")
                await phone.wait_for("state", call=outbound["call"], state="CONFIRMED")
                ringing = await phone.call(f"sip:1001@{host}:{port}")
                incoming = await alice.wait_for("incoming")
                await gateway.close()
                ended = await alice.wait_for("ended", call_id=call_id)
                assert ended["reason"] == "shutdown", ended
                assert (await alice.wait_for("ended", call_id=incoming["call_id"]))["reason"] == "shutdown"
                bye = await phone.wait_for("state", call=outbound["call"], state="DISCONNECTED")
                assert bye["code"] == 200, bye  # a BYE, not a timeout
                refused = await phone.wait_for("state", call=ringing, state="DISCONNECTED")
                assert refused["code"] in (480, 487, 503), refused
                assert gateway.sip is not None and gateway.sip.state.name == "CLOSED"
                assert gateway._health_details()["calls"] == 0
                ends = {(r.call_id, r.end_reason, r.hangup_by) for r in records}
                assert ends == {
                    (call_id, "shutdown", "gateway"),
                    (incoming["call_id"], "shutdown", "gateway"),
                }
        finally:
            await peer.close()
            await gateway.close()
