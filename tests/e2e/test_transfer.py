"""Call transfer with real pjsua2 desk phones (RFC 3515 REFER, RFC 3891 Replaces).

The gateway's PBX is desk phone A (2000); the PBX domain is a loopback address of its own (127.0.0.x),
where desk phone B (2001) listens on 5060, so a Refer-To of sip:2001@127.0.0.x reaches B when A carries
it out.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until
from tests.e2e.test_web_and_phone import wav_has_tone


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _free_domain() -> str:
    """A loopback address whose SIP port 5060 nobody uses (the transfer target must be at the PBX
    domain's default port: Refer-To names no port)."""
    for last in range(60, 250):
        host = f"127.0.0.{last}"
        if _port_free(host, 5060):
            return host
    raise AssertionError("no 127.0.0.x with UDP 5060 free")


DOMAIN = _free_domain()


async def test_blind_transfer_of_a_web_call_to_a_second_phone(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone_a,
        DeskPhone(tmp_path, user="2001", host=DOMAIN, port=5060, tone=880) as phone_b,
        running_gateway(
            gateway_config(
                phone_a.address, domain=DOMAIN, media={"rtp_ports": {"start": 37000, "end": 37199}}
            )
        ) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        peer = WebPeer(freq=1000)
        try:
            call_id = await alice.call("2000", await peer.offer())
            connected = await alice.wait_for("connected", call_id=call_id)
            await peer.accept(connected["sdp"])
            incoming = await phone_a.wait_for("incoming")
            await phone_a.wait_for("state", call=incoming["call"], state="CONFIRMED")
            await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)

            await alice.request({"type": "transfer", "call_id": call_id, "to": "2001"})
            request = await phone_a.wait_for("transfer_request", call=incoming["call"])
            assert request["to"].strip("<>") == f"sip:2001@{DOMAIN}", request
            states = [(await alice.wait_for("transfer", call_id=call_id))["state"]]
            while states[-1] not in ("succeeded", "failed"):
                states.append((await alice.wait_for("transfer", call_id=call_id, timeout=20))["state"])
            assert states[0] == "requested" and states[-1] == "succeeded", states
            ended = await alice.wait_for("ended", call_id=call_id)
            assert ended["reason"] == "transferred", ended
            await phone_a.wait_for("state", call=incoming["call"], state="DISCONNECTED")

            # A and B now talk directly: each hears the other's tone
            at_b = await phone_b.wait_for("incoming")
            await phone_b.wait_for("state", call=at_b["call"], state="CONFIRMED")
            await asyncio.sleep(1.5)
            await phone_b.hangup(at_b["call"])
            await phone_a.wait_for("state", call=request["new_call"], state="DISCONNECTED")
            assert wav_has_tone(await phone_b.wait_for_recording(at_b["call"]), 440)
            assert wav_has_tone(await phone_a.wait_for_recording(request["new_call"]), 880)
        finally:
            await peer.close()
