"""Voicemail and busy lamps from Asterisk: bob leaves alice a message (VoiceMail()), her voicemail
light comes on from Asterisk's message-summary NOTIFY (RFC 3842), she dials *97 and listens to it with
her keypad (bob's tone heard), and the light goes out; her lamp of extension 2000 (an Asterisk hint,
RFC 4235 dialog NOTIFYs) shows the phone idle, ringing (she picks the call up with **2000) and busy."""

from __future__ import annotations

import asyncio
from pathlib import Path

from peers.asterisk import Asterisk
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.asterisk.pbx import ALICE_EXT, PHONE_EXT
from tests.e2e.asterisk.session import alice_registered, asterisk_phone, web_call
from tests.e2e.harness import BOB_SECRET, wait_until

BOB_HZ, ALICE_HZ, PHONE_HZ = 660.0, 1000.0, 440.0


async def test_voicemail_light_and_listening_with_the_keypad(pbx: Asterisk) -> None:
    async with alice_registered(pbx) as (gateway, alice):
        light = await alice.wait_for("voicemail", mailbox=ALICE_EXT)
        assert (light["waiting"], light["new"]) == (False, 0), light
        async with (
            WebUser(gateway.http_url, "bob", BOB_SECRET) as bob,
            web_call(bob, "700", BOB_HZ) as (_c, _p),
        ):
            # the beep (no greeting: the dialplan skips it), then 2 s of bob's tone on the message
            await wait_until(lambda: "Recording the message" in pbx.log(), timeout=20)
            await asyncio.sleep(2.0)
        light = await alice.wait_for("voicemail", mailbox=ALICE_EXT, waiting=True, timeout=20)
        assert light["new"] == 1, light

        async with web_call(alice, "*97", ALICE_HZ) as (call_id, peer):
            await wait_until(lambda: "VoiceMailMain(" in pbx.log(), timeout=10)
            await asyncio.sleep(1.0)  # into "You have 1 new message...": its prompts take keys at once
            await alice.request({"type": "dtmf", "call_id": call_id, "digits": "1"})  # play new messages
            await wait_until(lambda: peer.heard(BOB_HZ, last=1.0), timeout=20)
        light = await alice.wait_for("voicemail", mailbox=ALICE_EXT, waiting=False, timeout=20)
        assert (light["new"], light["old"]) == (0, 1), light


async def test_busy_lamp_of_an_asterisk_hint_and_pickup(pbx: Asterisk, tmp_path: Path) -> None:
    async with (
        asterisk_phone(pbx, tmp_path, PHONE_HZ, answer="ring") as phone,
        alice_registered(pbx, alice_extra={"watch": [PHONE_EXT]}) as (gateway, alice),
        WebUser(gateway.http_url, "bob", BOB_SECRET) as bob,
    ):
        await alice.wait_for("contact_state", number=PHONE_EXT, state="idle", timeout=15)
        # bob calls the phone, which rings: alice's lamp rings and offers the pickup number
        bob_peer = WebPeer(freq=BOB_HZ)
        alice_peer = WebPeer(freq=ALICE_HZ)
        try:
            bob_call = await bob.call(PHONE_EXT, await bob_peer.offer())
            await phone.wait_for("incoming")
            ringing = await alice.wait_for("contact_state", number=PHONE_EXT, state="ringing", timeout=15)
            assert ringing["pickup"] == f"**{PHONE_EXT}", ringing
            # alice picks it up: bob and alice talk, through Asterisk's Pickup()
            picked = await alice.call(ringing["pickup"], await alice_peer.offer())
            connected = await alice.wait_for("connected", call_id=picked)
            await alice_peer.accept(connected["sdp"])
            answered = await bob.wait_for("connected", call_id=bob_call)
            await bob_peer.accept(answered["sdp"])
            await wait_until(lambda: alice_peer.heard(BOB_HZ, last=1.0), timeout=15)
            await wait_until(lambda: bob_peer.heard(ALICE_HZ, last=1.0), timeout=15)
            await alice.wait_for("contact_state", number=PHONE_EXT, state="idle", timeout=15)
            await bob.request({"type": "hangup", "call_id": bob_call})
            await alice.wait_for("ended", call_id=picked)
        finally:
            await bob_peer.close()
            await alice_peer.close()
        # the phone answers a call: busy while it lasts, idle after
        bob_peer = WebPeer(freq=BOB_HZ)
        try:
            bob_call = await bob.call(PHONE_EXT, await bob_peer.offer())
            number = (await phone.wait_for("incoming"))["call"]
            await phone.send("answer", call=number)
            connected = await bob.wait_for("connected", call_id=bob_call)
            await bob_peer.accept(connected["sdp"])
            await alice.wait_for("contact_state", number=PHONE_EXT, state="busy", timeout=15)
            await wait_until(lambda: bob_peer.heard(PHONE_HZ, last=1.0), timeout=10)
            await bob.request({"type": "hangup", "call_id": bob_call})
            await alice.wait_for("contact_state", number=PHONE_EXT, state="idle", timeout=15)
        finally:
            await bob_peer.close()
