"""Transfer by a SIP library over WebSocket (issue 33), with real pjsua2 desk phones: the library's REFER
in its call to desk phone A is carried out as the page's `transfer` (the gateway REFERs A, which calls
B), answered 202, and its progress NOTIFYed back to the library as sipfrag (RFC 3515 §2.4.5) ending in
200 with the subscription terminated; then the gateway's BYE. Before, the REFER got 405.

The PBX is phone A (2000); phone B (2001) listens on 5060 of the PBX domain (a loopback address of its
own), so the Refer-To sip:2001@<domain> the gateway sends A reaches B."""

from __future__ import annotations

import asyncio
from pathlib import Path

from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.webpeer import WebPeer
from tests.e2e.harness import running_gateway, wait_until
from tests.e2e.sip_interop.test_transfer import DOMAIN
from tests.e2e.websip.test_sip_websocket import (
    SipCall,
    header_value,
    no_calls,
    realm_of,
    sip_socket,
    websocket_config,
)
from tests.e2e.websip.test_sip_websocket_parity import placed_call


async def requests_until_bye(call: SipCall) -> list[str]:
    """The gateway's requests in the dialog up to its BYE, each answered 200, in order."""
    seen: list[str] = []
    while not seen or not seen[-1].startswith("BYE "):
        message = await call.sip.ws.receive_str(timeout=30)
        if message.startswith("SIP/2.0 "):
            continue
        await call.ok(message)
        seen.append(message)
    return seen


async def test_the_librarys_blind_refer_transfers_the_call_with_notify_progress(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone_a,
        DeskPhone(tmp_path, user="2001", host=DOMAIN, port=5060, tone=880) as phone_b,
    ):
        config = websocket_config(phone_a.address, sections={"domain": DOMAIN})
        async with running_gateway(config) as gateway, sip_socket(gateway) as sip:
            realm = realm_of(gateway)
            peer = WebPeer(1000)
            try:
                call, answer = await placed_call(sip, realm, peer)
                await peer.accept(answer)
                incoming = await phone_a.wait_for("incoming")
                await phone_a.wait_for("state", call=incoming["call"], state="CONFIRMED")
                await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)

                reply = await call.in_dialog("REFER", f"Refer-To: <sip:2001@{realm}>\r\n")
                assert reply.startswith("SIP/2.0 202 "), reply
                request = await phone_a.wait_for("transfer_request", call=incoming["call"])
                assert request["to"].strip("<>") == f"sip:2001@{DOMAIN}", request
                at_b = await phone_b.wait_for("incoming", timeout=15)

                requests = await requests_until_bye(call)
                notifies = [r for r in requests if r.startswith("NOTIFY ")]
                frags = [n.split("\r\n\r\n", 1)[1].split("\r\n", 1)[0] for n in notifies]
                assert frags[0] == "SIP/2.0 100 Trying" and frags[-1] == "SIP/2.0 200 OK", frags
                assert all(header_value(n, "Event").startswith("refer") for n in notifies), notifies
                assert header_value(notifies[-1], "Subscription-State").startswith("terminated"), notifies[-1]
                assert header_value(notifies[0], "Content-Type").startswith("message/sipfrag"), notifies[0]
                assert requests[-1].startswith("BYE "), requests  # the call ends transferred after it
                await phone_a.wait_for("state", call=incoming["call"], state="DISCONNECTED")

                # A and B talk directly
                await phone_b.wait_for("state", call=at_b["call"], state="CONFIRMED")
                await asyncio.sleep(1.0)
                await phone_b.hangup(at_b["call"])
                await phone_a.wait_for("state", call=request["new_call"], state="DISCONNECTED")
            finally:
                await peer.close()
            assert await no_calls(gateway)
