"""Transfer by a SIP library over WebSocket (issue 33), with real pjsua2 desk phones: the library's REFER
in its call to desk phone A is carried out as the page's `transfer` (the gateway REFERs A, which calls
B), answered 202, and its progress NOTIFYed back to the library as sipfrag (RFC 3515 §2.4.5) ending in
200 with the subscription terminated; then the gateway's BYE. Before, the REFER got 405.

The PBX is phone A (2000); phone B (2001) listens on 5060 of the PBX domain (a loopback address of its
own), so the Refer-To sip:2001@<domain> the gateway sends A reaches B."""

from __future__ import annotations

import asyncio
import secrets
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


async def test_the_phones_refer_reaches_the_library_and_its_call_is_notified(tmp_path: Path) -> None:
    """The desk phone REFERs the library's call: the library gets our REFER with that Refer-To, places
    the call (a new INVITE over its WebSocket), and the phone hears how it goes in NOTIFYs ending in 200
    (before: NOTIFY 100, then 408 after 30 s); the library's own NOTIFY to us is answered 200."""
    require_desk_phone()
    async with DeskPhone(tmp_path, user="2000", tone=440) as phone:
        config = websocket_config(phone.address, sections={"domain": DOMAIN})
        async with running_gateway(config) as gateway, sip_socket(gateway) as sip:
            realm = realm_of(gateway)
            peer, peer_b = WebPeer(1000), WebPeer(1200)
            try:
                call, answer = await placed_call(sip, realm, peer)
                await peer.accept(answer)
                at_a = (await phone.wait_for("incoming"))["call"]
                await phone.wait_for("state", call=at_a, state="CONFIRMED")

                await phone.send("transfer", call=at_a, to=f"sip:2001@{DOMAIN}")
                refer = await call.answer_request("REFER")
                assert header_value(refer, "Refer-To").strip("<>") == f"sip:2001@{DOMAIN}", refer
                first = (sip.call_id, sip.tag)
                sip.call_id, sip.tag = secrets.token_hex(8), secrets.token_hex(4)
                second, answer_b = await placed_call(sip, realm, peer_b, to="2001")
                await peer_b.accept(answer_b)
                ids_b = (sip.call_id, sip.tag)
                codes = [(await phone.wait_for("transfer_status", call=at_a))["code"]]
                while codes[-1] < 200:
                    codes.append((await phone.wait_for("transfer_status", call=at_a, timeout=15))["code"])
                assert codes[-1] == 200 and phone.seen("transfer_status", call=at_a, code=200)[0]["final"], (
                    codes
                )

                sip.call_id, sip.tag = first  # the library's NOTIFY in the first call's dialog
                body = "SIP/2.0 200 OK\r\n"
                headers = "Event: refer\r\nSubscription-State: terminated;reason=noresource\r\n"
                reply = await call.in_dialog("NOTIFY", headers + "Content-Type: message/sipfrag\r\n", body)
                assert reply.startswith("SIP/2.0 200 "), reply
                await phone.hangup(at_a)
                await call.answer_bye()
                sip.call_id, sip.tag = ids_b
                assert (await second.bye()).startswith("SIP/2.0 200 ")
            finally:
                await peer.close()
                await peer_b.close()
            assert await no_calls(gateway)
