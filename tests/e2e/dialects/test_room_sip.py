"""A SIP party in a room (issue 17 item 3), through a whole gateway: two headless Chromium pages on the
rooms demo (`/webrtc/client`) talk peer to peer, then one of them calls the pjsua2 desk phone into the
room ("Call in": `{"type": "dial", "to": "2000"}`). The gateway joins the room as the peer `gateway`, each
page connects to it, and the gateway's mixer feeds the phone both pages' audio and the pages the phone's:
both pages hear the phone's 440 Hz on their connection to `gateway`, the phone's recording holds the
pages' 400 Hz beeps. Hanging up from the page ends the phone's call and the gateway leaves the room.
Then the phone calls the room's number (`rooms.numbers: {"3001": "room-a"}`) and joins it: the page
hears it, it hears the page; the phone hangs up and the gateway leaves again. A dial the user's policy
forbids is refused with `forbidden` and no SIP at all.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.ports import free_range
from tests.e2e.harness import ALICE_SECRET, BOB_SECRET, gateway_config, running_gateway, wait_until
from tests.e2e.page_audio import FAKE_MIC_HZ, beeps, expect_page_hears
from tests.signaling.browser import Page, chromium_page, expect
from tests.signaling.rooms.test_rooms_browser import join_room, peer_connected

PHONE_HZ = 440


async def _hears_phone(page: Page) -> None:
    async with asyncio.timeout(30):  # page.evaluate has no timeout of its own
        # polled: at load 12 one 2 s window heard the desk phone in 0.46 of its blocks
        await expect_page_hears(page, PHONE_HZ, level=0.0, element_id="remote-gateway")


async def test_a_phone_called_into_a_room_and_calling_its_number(tmp_path: Path) -> None:
    require_desk_phone()
    async with asyncio.timeout(180):  # a hang fails with the await it hung at
        await _room_with_a_phone(tmp_path)


async def _room_with_a_phone(tmp_path: Path) -> None:
    async with DeskPhone(tmp_path, user="2000", tone=PHONE_HZ) as phone:
        config = gateway_config(
            phone.address,
            alice_outbound=("2xxx",),
            media={"rtp_ports": {"start": free_range()}},  # this branch's range
            rooms={
                "numbers": {"3001": "room-a"},
                "max_mixed": 4,
                "rules": [{"room": "room-a", "owner": "alice", "join": ["bob"]}],
            },
        )
        async with running_gateway(config) as gateway, chromium_page() as first:
            url = gateway.http_url + "/webrtc/client"
            second = await first.context.new_page()
            await join_room(first, url, "peer1", "alice", ALICE_SECRET, room="room-a")
            await join_room(second, url, "peer2", "bob", BOB_SECRET, room="room-a")
            await peer_connected(first, "peer2")
            await peer_connected(second, "peer1")

            # alice may not call 911: refused before any SIP
            await first.get_by_placeholder("Number or SIP URI").fill("911")
            await first.get_by_role("button", name="Call in").click()
            await expect(first.locator("#error")).to_contain_text("forbidden")
            assert not phone.seen("incoming")

            # alice calls the phone into the room
            await first.get_by_placeholder("Number or SIP URI").fill("2000")
            await first.get_by_role("button", name="Call in").click()
            incoming = await phone.wait_for("incoming", timeout=15)
            await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
            for page in (first, second):
                await expect(page.locator('#sip-parties li[data-state="connected"]')).to_have_count(1)
                await peer_connected(page, "gateway")
                await _hears_phone(page)
            await first.wait_for_timeout(2000)  # both pages' beeps into the phone's recording
            await second.locator("#sip-parties button", has_text="Hang up").click()
            await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
            for page in (first, second):
                await expect(page.locator('#sip-parties li[data-state="ended"]')).to_have_count(1)
                await expect(page.locator('#peers [data-peer="gateway"]')).to_have_count(0)
            await peer_connected(first, "peer2")  # the browsers' own connection went on untouched
            matching, loud = beeps(await phone.wait_for_recording(incoming["call"]), FAKE_MIC_HZ)
            assert matching >= 3, f"the pages' beeps are not in the phone's recording: {matching} of {loud}"

            # the phone calls the room's number: it joins room-a
            await second.get_by_role("button", name="Leave").click()
            host, port = gateway.sip_address
            number = await phone.call(f"sip:3001@{host}:{port}")
            await phone.wait_for("state", call=number, state="CONFIRMED", timeout=15)
            await peer_connected(first, "gateway")
            await _hears_phone(first)
            await first.wait_for_timeout(1500)
            await phone.hangup(number)
            await expect(first.locator('#peers [data-peer="gateway"]')).to_have_count(0, timeout=10_000)
            matching, loud = beeps(await phone.wait_for_recording(number), FAKE_MIC_HZ)
            assert matching >= 2, f"the page's beeps are not in the phone's recording: {matching} of {loud}"
            await wait_until(lambda: gateway._health_details()["calls"] == 0)
            await second.close()
