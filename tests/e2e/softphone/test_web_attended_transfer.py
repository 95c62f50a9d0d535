"""Attended transfer between web users of one gateway (issue 33 item 3), with aiortc browsers on `/ws`
and no PBX: alice calls bob, holds him, consults carol, then transfers bob to carol (REFER with Replaces
naming her consultation call). Both of alice's calls go through the gateway's own SIP listener, so the
REFER reaches the gateway itself: bob is asked to call carol (`transfer_requested`), his INVITE carries
the Replaces and takes over carol's call, and bob and carol hear each other while alice's calls end.

Before, the REFER got 403 "Replaces in Refer-To Not Supported" and alice's page showed the transfer
failed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from peers.demo import ALICE_HASH, require_desk_phone
from peers.phone import DeskPhone
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, BOB_HASH, BOB_SECRET, gateway_config, running_gateway, wait_until

CAROL_SECRET = BOB_SECRET  # carol's entry reuses bob's secret hash


def _three_users() -> Any:
    """alice (1001) and bob (1002) as the harness has them, and carol (1003)."""
    users = [
        {
            "id": name.lower(),
            "display_name": name,
            "sip": number,
            "allow_outbound": ["."],
            "web_secret_hash": hashed,
        }
        for name, number, hashed in (
            ("Alice", "1001", ALICE_HASH),
            ("Bob", "1002", BOB_HASH),
            ("Carol", "1003", BOB_HASH),
        )
    ]
    return gateway_config(None, users=users)


async def _answer(callee: WebUser, peer: WebPeer) -> str:
    incoming = await callee.wait_for("incoming")
    call_id = str(incoming["call_id"])
    await callee.answer(call_id, peer.answer)
    return call_id


async def test_alice_transfers_bob_to_carol_after_consulting_her() -> None:
    async with (
        running_gateway(_three_users()) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
        WebUser(gateway.http_url, "bob", BOB_SECRET) as bob,
        WebUser(gateway.http_url, "carol", CAROL_SECRET) as carol,
    ):
        a1, a2 = WebPeer(freq=1000), WebPeer(freq=1100)  # alice's two calls
        b1, b2 = WebPeer(freq=600), WebPeer(freq=600)  # bob's first call and the one he places
        c1 = WebPeer(freq=800)
        try:
            # alice calls bob
            to_bob = await alice.call("bob", await a1.offer())
            bob_call = await _answer(bob, b1)
            await a1.accept((await alice.wait_for("connected", call_id=to_bob))["sdp"])
            await wait_until(lambda: b1.heard(1000, last=1.0), timeout=10)
            await alice.request({"type": "hold", "call_id": to_bob})
            await alice.wait_for("held", call_id=to_bob, by="local")

            # ... consults carol
            to_carol = await alice.call("carol", await a2.offer())
            carol_call = await _answer(carol, c1)
            await a2.accept((await alice.wait_for("connected", call_id=to_carol))["sdp"])
            await wait_until(lambda: c1.heard(1100, last=1.0), timeout=10)

            # ... and joins them
            await alice.request({"type": "transfer", "call_id": to_bob, "replaces": to_carol})
            requested = await bob.wait_for("transfer_requested", call_id=bob_call)
            reply = await bob.request(
                {"type": "call", "to": requested["to"], "sdp": await b2.offer(), "transfer_of": bob_call}
            )
            new_call = str(reply["call_id"])
            connected = await bob.wait_for("connected", call_id=new_call)
            await b2.accept(connected["sdp"])
            replaced = await carol.wait_for("replaced", call_id=carol_call)
            assert "1002" in str(replaced), replaced

            states = [(await alice.wait_for("transfer", call_id=to_bob))["state"]]
            while states[-1] not in ("succeeded", "failed"):
                states.append((await alice.wait_for("transfer", call_id=to_bob, timeout=20))["state"])
            assert states[0] == "requested" and states[-1] == "succeeded", states
            assert (await alice.wait_for("ended", call_id=to_bob))["reason"] == "transferred"
            await alice.wait_for("ended", call_id=to_carol)
            await bob.wait_for("ended", call_id=bob_call)

            # bob and carol hear each other; carol's call goes on
            c1.clear()
            await wait_until(lambda: b2.heard(800, last=1.0), timeout=10)
            await wait_until(lambda: c1.heard(600, last=1.0), timeout=10)
            assert not [e for e in carol.events if e.get("type") == "ended"], carol.events
            await bob.request({"type": "hangup", "call_id": new_call})
            await carol.wait_for("ended", call_id=carol_call)
            await wait_until(lambda: gateway._health_details()["calls"] == 0, timeout=10)
        finally:
            for peer in (a1, a2, b1, b2, c1):
                await peer.close()
            await asyncio.sleep(0)


async def test_alice_transfers_bob_to_the_desk_phone_she_consulted(tmp_path: Path) -> None:
    """Issue 67 item 2: with a PBX (here the demo's desk phone at pbx.address), alice calls bob (a web
    user: the gateway rings him itself), holds him, consults 2000 at the PBX and completes. Her REFER
    reaches bob's side as Refer-To sip:2000@<pbx host>:<pbx port>?Replaces=...: a number at the PBX,
    which bob's dial policy allows. It was refused "403 Transfer Target Not Allowed" (a dial pattern
    allows no port) and bob was left held."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(gateway_config(phone.address)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
        WebUser(gateway.http_url, "bob", BOB_SECRET) as bob,
    ):
        a1, a2 = WebPeer(freq=1000), WebPeer(freq=1100)
        b1, b2 = WebPeer(freq=600), WebPeer(freq=600)
        try:
            to_bob = await alice.call("bob", await a1.offer())
            bob_call = await _answer(bob, b1)
            await a1.accept((await alice.wait_for("connected", call_id=to_bob))["sdp"])
            await alice.request({"type": "hold", "call_id": to_bob})
            await alice.wait_for("held", call_id=to_bob, by="local")
            to_phone = await alice.call("2000", await a2.offer())
            await a2.accept((await alice.wait_for("connected", call_id=to_phone))["sdp"])
            consult = await phone.wait_for("incoming")
            await wait_until(lambda: a2.heard(440, last=1.0), timeout=10)

            await alice.request({"type": "transfer", "call_id": to_bob, "replaces": to_phone})
            requested = await bob.wait_for("transfer_requested", call_id=bob_call)
            assert requested["to"] == "sip:2000@127.0.0.1", requested  # the number at the PBX, no port
            reply = await bob.request(
                {"type": "call", "to": requested["to"], "sdp": await b2.offer(), "transfer_of": bob_call}
            )
            new_call = str(reply["call_id"])
            await b2.accept((await bob.wait_for("connected", call_id=new_call))["sdp"])
            replaced = await phone.wait_for("replaced", call=consult["call"])
            states = [(await alice.wait_for("transfer", call_id=to_bob))["state"]]
            while states[-1] not in ("succeeded", "failed"):
                states.append((await alice.wait_for("transfer", call_id=to_bob, timeout=20))["state"])
            assert states[-1] == "succeeded", states
            await wait_until(lambda: b2.heard(440, last=1.0), timeout=10)  # bob talks with the phone
            await bob.request({"type": "hangup", "call_id": new_call})
            await phone.wait_for("state", call=replaced["new_call"], state="DISCONNECTED")
        finally:
            for peer in (a1, a2, b1, b2):
                await peer.close()
