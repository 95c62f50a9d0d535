"""A web user and a pjsua2 desk phone, both registered to Asterisk, in a call through it; each side holds
and resumes. Asterisk plays its music on hold to the party held (it never passes a hold on): the browser
hears music while the phone holds, and the phone's channel gets music while the web user holds."""

from __future__ import annotations

from pathlib import Path

from peers.asterisk import Asterisk
from peers.audio import detect_tone, rms
from peers.webpeer import WebPeer
from tests.e2e.asterisk.pbx import ALICE_EXT, PHONE_EXT
from tests.e2e.asterisk.session import alice_registered, asterisk_phone, web_call
from tests.e2e.harness import wait_until
from tests.e2e.sip_interop.test_web_and_phone import wav_has_tone

PHONE_HZ, WEB_HZ = 440.0, 1000.0


def hears_music(peer: WebPeer) -> bool:
    """The last second is loud and is not the phone's tone: Asterisk's music on hold."""
    last = peer.pcm[-8000:]
    return len(last) == 8000 and rms(last) > 300 and not detect_tone(last, 8000, PHONE_HZ, threshold=0.3)


async def test_hold_and_resume_from_each_side_with_music_on_hold(pbx: Asterisk, tmp_path: Path) -> None:
    async with (
        asterisk_phone(pbx, tmp_path, PHONE_HZ) as phone,
        alice_registered(pbx) as (_gateway, alice),
    ):
        async with web_call(alice, PHONE_EXT, freq=WEB_HZ) as (call_id, peer):
            incoming = await phone.wait_for("incoming")
            await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
            await wait_until(lambda: peer.heard(PHONE_HZ, last=1.0), timeout=10)

            # the phone holds: Asterisk plays music to the browser, then the phone's tone is back
            await phone.send("hold")
            await wait_until(lambda: hears_music(peer), timeout=10)
            assert music_on_hold_for(pbx, ALICE_EXT)
            await phone.send("unhold")
            await wait_until(lambda: peer.heard(PHONE_HZ, last=1.0), timeout=10)

            # the web user holds: the gateway's re-INVITE (sendonly) is answered recvonly, Asterisk
            # starts its music toward the phone's channel; she resumes and hears the phone again
            await alice.request({"type": "hold", "call_id": call_id})
            await alice.wait_for("held", call_id=call_id, by="local")
            await wait_until(lambda: music_on_hold_for(pbx, PHONE_EXT), timeout=10)
            await alice.request({"type": "resume", "call_id": call_id})
            await alice.wait_for("resumed", call_id=call_id, by="local")
            peer.clear()
            await wait_until(lambda: peer.heard(PHONE_HZ, last=1.0), timeout=10)
        await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
        # the browser's tone reached the phone (before and after the holds)
        assert wav_has_tone(await phone.wait_for_recording(incoming["call"]), WEB_HZ)


def music_on_hold_for(pbx: Asterisk, ext: str) -> bool:
    """Asterisk started its music toward the channel of extension ``ext`` (its verbose log says so)."""
    return any(
        "Started music on hold" in line and f"'PJSIP/{ext}-" in line for line in pbx.log().splitlines()
    )
