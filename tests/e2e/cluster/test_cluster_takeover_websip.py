"""A SIP library's call outlives its gateway instance (issue 34 item 3): three instances as real processes
sharing a real Redis, the pjsua2 desk phone as the PBX, unmodified JsSIP and SIP.js in headless Chromium.

alice's library registers through a TCP front (HAProxy's part: each new connection to the instance the
test names) on gw1 and calls the phone; they hear each other. gw1 gets SIGKILL. The library's socket dies
with it; it reconnects (JsSIP by itself, SIP.js as an application's onDisconnect does) through the front,
now to gw3. Within a lease a survivor (gw2 or gw3) takes the call over from gw1's handover: it re-INVITEs
the phone to its own media (no BYE), adopts the library's dialog and makes alice's SIP session again under
its id, waiting for her library. gw3 relays the library's REGISTER to that survivor (or serves it, being
it); the session takes the new flow. The library restarts ICE, as applications do when their socket comes
back: the re-INVITE is answered with a new web leg (the survivor's own DTLS certificate: Chromium makes a
new DTLS association on the same RTCPeerConnection). An application that does not restart ICE gets the
same from the survivor: its re-INVITE without an offer, a second after the library's REGISTER, gets the
library's offer (its old ICE credentials) in the 200, and the new web leg's answer goes in the ACK. Both hear each other again; the library's BYE reaches
the phone through the survivor. Before, the call's handover was never written (a SIP library's call was
not carried on), and gw1's death cost the call."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.redis import running_redis
from peers.softphones import Library, Softphone, require_softphones
from tests.e2e.cluster.cluster_procs import instance_mapping, process_cluster
from tests.e2e.cluster.test_cluster_sip_flows import Front
from tests.e2e.page_audio import assert_beeps
from tests.e2e.websip.test_sip_websocket import ALICE_SIP_PASSWORD
from tests.e2e.websip.test_softphone_libraries import LIBRARIES
from tests.signaling.browser import chromium_page

RTP_BASE = 50400  # this file's RTP ports: 50400-50599, 51000-51199, 51600-51799 (above the takeover test's)
LEASE = 2.0


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


@pytest.mark.parametrize("restarts", [True, False], ids=["app-restarts-ice", "app-does-nothing"])
@pytest.mark.parametrize("library", LIBRARIES)
async def test_a_survivor_carries_on_a_sip_librarys_call(
    library: Library, restarts: bool, tmp_path: Path
) -> None:
    require_desk_phone()
    require_softphones()
    async with DeskPhone(tmp_path, user="2000", tone=440) as phone:
        with running_redis(tmp_path) as server:
            extra = {"web_auth": {"reconnect_grace": 20}, "sip": {"websocket": {}}}
            password = {"sip_auth": {"password": ALICE_SIP_PASSWORD}}
            mappings = [
                instance_mapping(
                    i,
                    server.url,
                    rtp_base=RTP_BASE,
                    pbx=phone.address,
                    lease=LEASE,
                    extra=extra,
                    alice=password,
                )
                for i in range(3)
            ]
            async with (
                process_cluster(tmp_path, mappings) as (gw1, gw2, gw3),
                Front().running() as front,
                chromium_page() as page,
                Softphone(page, library, origin=front.url) as softphone,
            ):
                front.target = address(gw1.http_url)
                ws_url = front.url.replace("http", "ws", 1) + "/sip"
                await softphone.start(ws_url, "sip:alice@127.0.0.1", ALICE_SIP_PASSWORD)
                await softphone.wait_for("registered")
                await softphone.call("sip:2000@127.0.0.1")
                number = int((await phone.wait_for("incoming", timeout=15))["call"])
                await softphone.wait_for("confirmed")
                await phone.wait_for("state", call=number, state="CONFIRMED")
                await softphone.hears(440)
                await asyncio.sleep(1.5)  # two heartbeats: the call's handover written
                media_changes = len(phone.seen("media", call=number))
                before = await softphone.ice()

                front.target = address(gw3.http_url)  # HAProxy's choice once gw1 is gone
                gw1.kill()
                killed = time.monotonic()
                await softphone.wait_for("disconnected", timeout=10)
                await softphone.wait_for("registered", timeout=LEASE + 20)  # on the survivor (relayed)
                registered = time.monotonic() - killed
                survivor = gw2 if "taken over here" in gw2.log() else gw3
                assert "taken over here" in survivor.log(), (gw2.log()[-3000:], gw3.log()[-3000:])
                assert len(phone.seen("media", call=number)) > media_changes  # the survivor's re-INVITE
                assert not phone.seen("state", call=number, state="DISCONNECTED"), "the phone heard a BYE"

                if restarts:  # the library's ICE restart brings the call's new web media from the survivor
                    await softphone.restart_ice()
                    outcome = await softphone.wait_for(("iceRestarted", "iceRestartFailed"), timeout=30)
                    if outcome["type"] == "iceRestartFailed":  # (a loaded machine: it came after our ask)
                        assert "asking the SIP library for an offer" in survivor.log(), outcome
                # else the survivor's re-INVITE without an offer asks the library for one, a second after
                # its REGISTER (the application does nothing)

                async def renewed() -> bool:  # the survivor's credentials, a pair of the new ICE session
                    now = await softphone.ice()
                    return bool(now["remote"] != before["remote"] and now["state"] == "connected")

                deadline = time.monotonic() + 15
                while not await renewed():
                    assert time.monotonic() < deadline, (await softphone.ice(), survivor.log()[-3000:])
                    await asyncio.sleep(0.1)
                try:
                    await softphone.hears(440)
                except AssertionError as exc:
                    exc.add_note(f"survivor {survivor.id}'s log:\n{survivor.log()[-4000:]}")
                    raise
                back = time.monotonic() - killed
                await asyncio.sleep(3.0)  # the library's beeps in the phone's recording
                await softphone.hangup()
                await phone.wait_for("state", call=number, state="DISCONNECTED", timeout=15)
                assert_beeps(await phone.wait_for_recording(number), "the phone after the takeover", last=2.5)
                relayed = "relayed to" in gw3.log()
    print(
        f"{survivor.id} took over ({'relayed by gw3' if relayed else 'the library reached it'}; "
        f"{'the application restarted ICE' if restarts else 'the survivor asked for an offer'}); "
        f"the library registered again {registered:.2f} s and heard the phone {back:.2f} s after the kill"
    )
