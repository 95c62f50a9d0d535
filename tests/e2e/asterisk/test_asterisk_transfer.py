"""Transfers through Asterisk, started by the web user (REFER from the gateway, blind and with Replaces)
and by the Asterisk side (its Transfer() sends the gateway a REFER; its attended transfer feature, *2,
joins two of the gateway's calls inside Asterisk). The desk phone 2000 and the web users alice (1001)
and bob (1002) are all registered to Asterisk; audio is checked at the parties left talking."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from gateway.app import Gateway
from peers.asterisk import Asterisk
from peers.audio import has_tone, read_wav
from peers.phone import DeskPhone
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.asterisk.pbx import BOB_EXT, MILLIWATT_HZ, PHONE_EXT
from tests.e2e.asterisk.session import alice_registered, asterisk_phone, web_call
from tests.e2e.harness import BOB_SECRET, wait_until

PHONE_HZ, ALICE_HZ, BOB_HZ = 440.0, 1000.0, 660.0


@asynccontextmanager
async def parties(
    pbx: Asterisk, tmp_path: Path
) -> AsyncIterator[tuple[Gateway, WebUser, WebUser, DeskPhone]]:
    async with (
        asterisk_phone(pbx, tmp_path, PHONE_HZ) as phone,
        alice_registered(pbx, calls={"web_calls": "pbx"}) as (gateway, alice),
        WebUser(gateway.http_url, "bob", BOB_SECRET) as bob,
    ):
        yield gateway, alice, bob, phone


def tail_has_tone(wav: Path, freq: float, seconds: float) -> bool:
    """The last ``seconds`` of a phone's recording hold ``freq``: what it heard at the end. In half-second
    blocks (peers.audio.has_tone): one Goertzel over the whole tail cancels at a phase jump (a bridge
    change in Asterisk), and read 0.16 over a tail that held the tone all along."""
    rate, samples = read_wav(wav)
    return has_tone(samples[-round(seconds * rate) :], rate, freq, threshold=0.3)


async def transfer_states(alice: WebUser, call_id: str) -> list[str]:
    states = [(await alice.wait_for("transfer", call_id=call_id))["state"]]
    while states[-1] not in ("succeeded", "failed"):
        states.append((await alice.wait_for("transfer", call_id=call_id, timeout=20))["state"])
    return states


async def bob_answers(bob: WebUser, peer: WebPeer) -> str:
    ringing = await bob.wait_for("incoming", timeout=20)
    await bob.answer(ringing["call_id"], peer.answer)
    await peer.connected()
    return str(ringing["call_id"])


async def test_web_user_transfers_the_phone_blind_and_attended(pbx: Asterisk, tmp_path: Path) -> None:
    async with parties(pbx, tmp_path) as (_gateway, alice, bob, phone):
        # blind: alice's call to the phone goes to Milliwatt (603) by her REFER
        async with web_call(alice, PHONE_EXT, freq=ALICE_HZ) as (call_id, peer):
            incoming = await phone.wait_for("incoming")
            await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
            await wait_until(lambda: peer.heard(PHONE_HZ, last=1.0), timeout=10)
            await alice.request({"type": "transfer", "call_id": call_id, "to": "603"})
            states = await transfer_states(alice, call_id)
            assert states[0] == "requested" and states[-1] == "succeeded", states
            await alice.wait_for("ended", call_id=call_id)
            await asyncio.sleep(2.0)  # the phone's recording: 2 s of what it hears after the transfer
            await phone.send("hangup")
            await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
        wav = await phone.wait_for_recording(incoming["call"])
        assert tail_has_tone(wav, MILLIWATT_HZ, 1.5), "the phone did not reach Milliwatt"

        # attended: alice calls the phone, holds it, consults bob, and completes: phone <-> bob
        bob_peer = WebPeer(freq=BOB_HZ)
        try:
            async with web_call(alice, PHONE_EXT, freq=ALICE_HZ) as (to_phone, peer):
                incoming = await phone.wait_for("incoming")
                await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
                await alice.request({"type": "hold", "call_id": to_phone})
                await alice.wait_for("held", call_id=to_phone)
                consult_peer = WebPeer(freq=ALICE_HZ)
                try:
                    to_bob = await alice.call(BOB_EXT, await consult_peer.offer())
                    bob_call = await bob_answers(bob, bob_peer)
                    connected = await alice.wait_for("connected", call_id=to_bob)
                    await consult_peer.accept(connected["sdp"])
                    await wait_until(lambda: consult_peer.heard(BOB_HZ, last=1.0), timeout=10)
                    await alice.request({"type": "transfer", "call_id": to_phone, "replaces": to_bob})
                    states = await transfer_states(alice, to_phone)
                    assert states[-1] == "succeeded", states
                    for call in to_phone, to_bob:
                        await alice.wait_for("ended", call_id=call, timeout=20)
                finally:
                    await consult_peer.close()
            # bob now talks with the phone, through Asterisk and the gateway
            bob_peer.clear()
            await wait_until(lambda: bob_peer.heard(PHONE_HZ, last=1.0), timeout=15)
            await asyncio.sleep(2.0)  # the phone's recording: 2 s of bob after the transfer
            await bob.request({"type": "hangup", "call_id": bob_call})
            await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED", timeout=15)
        finally:
            await bob_peer.close()
        assert tail_has_tone(await phone.wait_for_recording(incoming["call"]), BOB_HZ, 1.5)


async def test_asterisk_transfers_the_web_user(pbx: Asterisk, tmp_path: Path) -> None:
    async with parties(pbx, tmp_path) as (_gateway, alice, bob, phone):
        # Transfer() in the dialplan: Asterisk REFERs alice's call; her browser places the new call
        async with web_call(alice, "610", freq=ALICE_HZ) as (call_id, _peer):
            requested = await alice.wait_for("transfer_requested", call_id=call_id, timeout=15)
            peer = WebPeer(freq=ALICE_HZ)
            try:
                ack = await alice.request(
                    {"type": "call", "to": requested["to"], "sdp": await peer.offer(), "transfer_of": call_id}
                )
                new_call = str(ack["call_id"])
                incoming = await phone.wait_for("incoming")
                connected = await alice.wait_for("connected", call_id=new_call)
                await peer.accept(connected["sdp"])
                await wait_until(lambda: peer.heard(PHONE_HZ, last=1.0), timeout=10)
                await alice.wait_for("ended", call_id=call_id, timeout=15)
                await alice.request({"type": "hangup", "call_id": new_call})
                await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
            finally:
                await peer.close()

        # Asterisk's own attended transfer (*2): the phone calls alice, consults bob, hangs up:
        # Asterisk joins alice's and bob's calls, both of them the gateway's
        bob_peer = WebPeer(freq=BOB_HZ)
        alice_peer = WebPeer(freq=ALICE_HZ)
        try:
            number = await phone.call(pbx.uri("1001"))
            ringing = await alice.wait_for("incoming")
            await alice.answer(ringing["call_id"], alice_peer.answer)
            await phone.wait_for("state", call=number, state="CONFIRMED")
            await asyncio.sleep(0.5)
            await phone.send("dtmf", digits=f"*2{BOB_EXT}")
            bob_call = await bob_answers(bob, bob_peer)
            await wait_until(lambda: bob_peer.heard(PHONE_HZ, last=1.0), timeout=10)
            await phone.send("hangup")
            alice_peer.clear()
            bob_peer.clear()
            await wait_until(lambda: alice_peer.heard(BOB_HZ, last=1.0), timeout=15)
            await wait_until(lambda: bob_peer.heard(ALICE_HZ, last=1.0), timeout=15)
            await bob.request({"type": "hangup", "call_id": bob_call})
            await alice.wait_for("ended", call_id=ringing["call_id"], timeout=15)
        finally:
            await bob_peer.close()
            await alice_peer.close()
