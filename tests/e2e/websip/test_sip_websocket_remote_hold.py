"""The SIP party's hold reaches a SIP library over WebSocket (issue 33): the pjsua2 desk phone holds
(re-INVITE a=sendonly) and resumes (a=sendrecv); the gateway re-INVITEs the library's call with the
same direction, so the library shows the call held by remote. On the wire with a raw SIP-over-WebSocket
client (the SDP of each re-INVITE it gets), and with JsSIP 3.13 in headless Chromium (its `hold` and
`unhold` events with originator remote)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.softphones import Softphone, require_softphones, softphone_server
from peers.webpeer import WebPeer
from tests.e2e.harness import running_gateway, wait_until
from tests.e2e.websip.test_sip_websocket import (
    ALICE_SIP_PASSWORD,
    SipCall,
    header_value,
    no_calls,
    realm_of,
    sip_socket,
    websocket_config,
)
from tests.e2e.websip.test_sip_websocket_parity import placed_call
from tests.e2e.websip.test_softphone_libraries import allowing
from tests.signaling.browser import chromium_page


def direction(sdp_text: str) -> str:
    found = re.findall(r"^a=(sendrecv|sendonly|recvonly|inactive)\r?$", sdp_text, re.M)
    assert found and len(set(found)) == 1, sdp_text
    return str(found[0])


async def answer_reinvite(call: SipCall, answer: str, offered: str) -> str:
    """Wait for the gateway's re-INVITE in the dialog and answer it 200 with ``answer`` whose direction
    mirrors ``offered`` (as a library does); the re-INVITE."""
    mirrored = {"sendonly": "recvonly", "inactive": "inactive"}.get(offered, "sendrecv")
    body = re.sub(r"^a=(sendrecv|sendonly|recvonly|inactive)\r?$", f"a={mirrored}\r", answer, flags=re.M)
    headers = f"Contact: {call.sip.contact}\r\nContent-Type: application/sdp\r\n"
    return await call.answer_request("INVITE", headers, body)


async def test_the_phones_hold_and_resume_reinvite_the_library(tmp_path: Path) -> None:
    """The phone's sendonly re-INVITE: the library gets our re-INVITE saying sendonly (we send, the phone's
    music-on-hold side; it does not); the phone's resume: one saying sendrecv. The call goes on."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(websocket_config(phone.address)) as gateway,
        sip_socket(gateway) as sip,
    ):
        realm = realm_of(gateway)
        peer = WebPeer(1000)
        try:
            call, answer = await placed_call(sip, realm, peer)
            await peer.accept(answer)
            ours = peer.pc.localDescription.sdp.replace("a=setup:actpass", "a=setup:passive")  # its answer
            incoming = await phone.wait_for("incoming")
            await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
            await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)

            await phone.send("hold", call=incoming["call"])
            held = await answer_reinvite(call, ours, "sendonly")
            offer = held.split("\r\n\r\n", 1)[1]
            assert direction(offer) == "sendonly", held
            assert header_value(held, "Content-Type") == "application/sdp", held
            await phone.wait_for("media", call=incoming["call"], status="local_hold")

            await phone.send("unhold", call=incoming["call"])
            resumed = await answer_reinvite(call, ours, "sendrecv")
            assert direction(resumed.split("\r\n\r\n", 1)[1]) == "sendrecv", resumed
            await phone.wait_for("media", call=incoming["call"], status="active")
            await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)  # the call goes on

            reply = await call.bye()
            assert reply.startswith("SIP/2.0 200 "), reply
        finally:
            await peer.close()
        assert await no_calls(gateway)


async def test_jssip_shows_the_call_held_by_the_phone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """JsSIP, unmodified, calls the desk phone; the phone holds and resumes: JsSIP emits `hold` and
    `unhold` with originator remote (before, nothing reached it)."""
    require_softphones()
    require_desk_phone()
    async with (
        softphone_server() as origin,
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(allowing(websocket_config(phone.address), origin)) as gateway,
        chromium_page() as page,
    ):
        realm = realm_of(gateway)
        softphone = Softphone(page, "jssip")
        await softphone.open(origin)
        await softphone.registered(gateway.http_url, f"sip:alice@{realm}", ALICE_SIP_PASSWORD)
        await softphone.call(f"sip:2000@{realm}")
        incoming = await phone.wait_for("incoming", timeout=15)
        await softphone.wait_for("confirmed")
        await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
        await softphone.hears(440)

        await phone.send("hold", call=incoming["call"])
        await softphone.wait_for("hold", originator="remote")
        # held longer than media.loss_detect (2 s): the library sends nothing, on purpose; the gateway
        # reported the browser lost (web_lost, the reconnect fill to the phone) after 2 s of it
        await asyncio.sleep(3.0)
        lost = [r.getMessage() for r in caplog.records if "web_lost" in r.getMessage()]
        assert not lost, lost  # a held library's silence is no lost browser (its consent answers say so)
        await phone.send("unhold", call=incoming["call"])
        await softphone.wait_for("unhold", originator="remote")
        await softphone.hears(440)

        await softphone.hangup()
        await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
        await softphone.wait_for("ended")
        assert await no_calls(gateway)
