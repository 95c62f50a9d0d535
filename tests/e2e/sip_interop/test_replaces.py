"""INVITE with Replaces toward the gateway (RFC 3891 §3) with real pjsua2 desk phones.

Desk phone A (2000) is the gateway's PBX; desk phone B (2001) listens on a loopback address of its own
(127.0.0.x:5060), trusted by the gateway, which listens on a second one (the PBX domain, port 5060). Alice calls A; A calls B and transfers B to
alice with Replaces (pjsua2 ``xferReplaces``): B's INVITE with Replaces takes alice's call over, the
gateway BYEs A, alice hears `replaced` and B's tone, and B hears alice.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until
from tests.e2e.sip_interop.test_transfer import DOMAIN, _port_free
from tests.e2e.sip_interop.test_web_and_phone import wav_has_tone


def _gateway_host() -> str:
    """Another loopback address with UDP 5060 free, for the gateway: pjsua2's xferReplaces refers to the
    replaced call's remote URI (alice's AOR, sip:1001@<pbx domain>), so the PBX domain must be where the
    gateway listens on the default port."""
    for last in range(250, 60, -1):
        host = f"127.0.0.{last}"
        if host != DOMAIN and _port_free(host, 5060):
            return host
    raise AssertionError("no second 127.0.0.x with UDP 5060 free")


async def test_an_invite_with_replaces_takes_a_connected_web_call_over(tmp_path: Path) -> None:
    require_desk_phone()
    host = _gateway_host()
    sip = {"listen": [{"transport": "udp", "host": host, "port": 5060}], "trusted_sources": [f"{DOMAIN}/32"]}
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone_a,
        DeskPhone(tmp_path, user="2001", host=DOMAIN, port=5060, tone=880) as phone_b,
        running_gateway(
            gateway_config(
                phone_a.address,
                domain=host,
                sip=sip,
                media={"rtp_ports": {"start": 36000, "end": 36199}},
            )
        ) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        peer = WebPeer(freq=1000)
        try:
            call_id = await alice.call("2000", await peer.offer())
            connected = await alice.wait_for("connected", call_id=call_id)
            await peer.accept(connected["sdp"])
            at_a = await phone_a.wait_for("incoming")
            await phone_a.wait_for("state", call=at_a["call"], state="CONFIRMED")
            await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)

            # A consults B, then transfers B to alice, replacing A's call with alice (RFC 3891)
            consult = await phone_a.call(f"sip:2001@{DOMAIN}")
            at_b = await phone_b.wait_for("incoming")
            await phone_b.wait_for("state", call=at_b["call"], state="CONFIRMED")
            await phone_a.send("transfer", call=consult, replaces=at_a["call"])
            request = await phone_b.wait_for("transfer_request", call=at_b["call"], timeout=10)
            replaced = await alice.wait_for("replaced", call_id=call_id, timeout=10)
            assert "2001" in replaced["from"], replaced
            await phone_b.wait_for("state", call=request["new_call"], state="CONFIRMED", timeout=10)
            # the gateway ended A's leg of alice's call (BYE); alice's call goes on with B
            await phone_a.wait_for("state", call=at_a["call"], state="DISCONNECTED", timeout=10)
            await phone_a.hangup(consult)
            peer.clear()
            await wait_until(lambda: peer.heard(880, last=1.0), timeout=10)
            assert not [e for e in alice.events if e.get("type") == "ended"], alice.events
            await asyncio.sleep(1.0)
            await alice.request({"type": "hangup", "call_id": call_id})
            await alice.wait_for("ended", call_id=call_id)
            await phone_b.wait_for("state", call=request["new_call"], state="DISCONNECTED")
            assert wav_has_tone(await phone_b.wait_for_recording(request["new_call"]), 1000)
        finally:
            await peer.close()
