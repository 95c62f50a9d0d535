"""A room outlives the instance that holds its mix (issue 65 item 2), as people in it see it: two gateway
instances as real processes sharing a real Redis behind the shipped HAProxy, two headless Chromium pages on
the rooms demo (`/webrtc/client`), the pjsua2 desk phone called into the room.

alice's and bob's pages join room `meet` through HAProxy and talk peer to peer; alice calls the phone in
("Call in"): the gateway joins as the peer `gateway`, mixes, and both pages hear the phone. The instance the
room lives on gets SIGKILL. Then, with nobody touching anything:

- the pages' own connection goes on: it never leaves `connected`, and each still hears the other's beeps;
- each page's socket is opened again by the page (room.js), through HAProxy, at the survivor;
- the survivor takes the phone's call over (it re-INVITEs the phone: no BYE) and makes the room's mix
  again as `gateway`; each page connects to it anew and hears the phone again, and the phone hears the
  pages' beeps again;
- the party is still listed as connected on both pages.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from peers.demo import require_desk_phone
from peers.haproxy import running_haproxy
from peers.phone import DeskPhone
from peers.redis import running_redis
from tests.e2e.cluster.cluster_procs import GatewayProcess, instance_mapping, process_cluster
from tests.e2e.harness import ALICE_SECRET, BOB_SECRET
from tests.e2e.page_audio import assert_beeps, expect_page_hears
from tests.signaling.browser import Page, chromium_page, expect
from tests.signaling.rooms.test_rooms_browser import _hears_beeps, join_room, peer_connected

PHONE_HZ = 440
LEASE = 2.0
NEW_GATEWAY = (
    "() => { const p = window.roomDemo.peers.get('gateway'); "
    "return !p ? 'none' : p.pc.old ? 'old' : p.pc.connectionState; }"
)
P2P = (
    "(peer) => window.roomDemo.peers.has(peer) ? window.roomDemo.peers.get(peer).pc.connectionState : 'none'"
)


async def hears_phone(page: Page) -> None:
    async with asyncio.timeout(30):  # page.evaluate has no timeout of its own
        await expect_page_hears(page, PHONE_HZ, level=0.0, element_id="remote-gateway")


async def new_gateway(page: Page, since: float) -> float:
    """Seconds from `since` until the page is in the room again with a new connection to the gateway's
    peer (not the one to the instance killed) connected."""
    await expect(page.locator("#status")).to_have_text("In the room", timeout=15000)
    while await page.evaluate(NEW_GATEWAY) != "connected":
        assert time.monotonic() - since < 20, await page.evaluate(NEW_GATEWAY)
        await asyncio.sleep(0.05)
    return time.monotonic() - since


async def room_instance(instances: list[GatewayProcess]) -> GatewayProcess:
    """The instance room `meet` lives on (its log says it opened there)."""
    found = [i for i in instances if "room meet opened" in i.log()]
    assert len(found) == 1, [i.id for i in found]
    return found[0]


async def test_a_room_with_a_phone_goes_on_when_its_instance_dies(tmp_path: Path) -> None:
    require_desk_phone()
    async with asyncio.timeout(240):  # a hang fails with the await it hung at
        await _room_outlives_its_instance(tmp_path)


async def _room_outlives_its_instance(tmp_path: Path) -> None:
    rooms = {"rules": [{"room": "meet", "owner": "alice", "join": ["bob"]}]}
    async with DeskPhone(tmp_path, user="2000", tone=PHONE_HZ) as phone:
        with running_redis(tmp_path) as redis:
            mappings = [
                instance_mapping(i, redis.url, pbx=phone.address, lease=LEASE, extra={"rooms": rooms})
                for i in range(2)
            ]
            async with process_cluster(tmp_path, mappings) as instances:
                http = [i.http_address for i in instances]
                with running_haproxy(tmp_path / "haproxy", [*http, http[1]]) as front:
                    async with chromium_page() as first:
                        second = await first.context.new_page()
                        url = front.url + "/webrtc/client"
                        await join_room(first, url, "peer1", "alice", ALICE_SECRET, room="meet")
                        await join_room(second, url, "peer2", "bob", BOB_SECRET, room="meet")
                        await peer_connected(first, "peer2")
                        await peer_connected(second, "peer1")

                        await first.get_by_placeholder("Number or SIP URI").fill("2000")
                        await first.get_by_role("button", name="Call in").click()
                        number = int((await phone.wait_for("incoming", timeout=15))["call"])
                        await phone.wait_for("state", call=number, state="CONFIRMED")
                        for page in (first, second):
                            await expect(
                                page.locator('#sip-parties li[data-state="connected"]')
                            ).to_have_count(1)
                            await peer_connected(page, "gateway")
                            await hears_phone(page)
                        holder = await room_instance(instances)
                        survivor = next(i for i in instances if i is not holder)
                        media_changes = len(phone.seen("media", call=number))

                        for page in (first, second):  # (their connection to the mix on the instance killed)
                            await page.evaluate(
                                "() => { window.roomDemo.peers.get('gateway').pc.old = true; }"
                            )
                        holder.kill()
                        killed = time.monotonic()
                        p2p: list[str] = []

                        async def sample() -> None:  # the pages' own connection, all along
                            while True:
                                p2p.append(await first.evaluate(P2P, "peer2"))
                                p2p.append(await second.evaluate(P2P, "peer1"))
                                await asyncio.sleep(0.1)

                        sampler = asyncio.create_task(sample())
                        try:
                            back = await asyncio.gather(
                                new_gateway(first, killed), new_gateway(second, killed)
                            )
                            for page in (first, second):
                                await hears_phone(page)
                            assert (
                                len(phone.seen("media", call=number)) > media_changes
                            )  # the survivor's re-INVITE
                            assert "taken over here" in survivor.log()
                            for page in (first, second):  # nothing was asked of them
                                await expect(page.locator("#join-panel")).to_be_hidden()
                                await expect(
                                    page.locator('#sip-parties li[data-state="connected"]')
                                ).to_have_count(1)
                                assert await page.evaluate("() => window.roomDemo.reconnects") >= 1
                            await _hears_beeps(first, "remote-peer2")  # browser to browser, never cut
                            await _hears_beeps(second, "remote-peer1")
                            await first.wait_for_timeout(2500)  # the pages' beeps into the phone's recording
                        finally:
                            sampler.cancel()
                            await asyncio.gather(sampler, return_exceptions=True)
                        assert p2p and set(p2p) == {"connected"}, sorted(set(p2p))
                        assert not phone.seen("state", call=number, state="DISCONNECTED"), (
                            "the phone got a BYE"
                        )
                        await first.locator("#sip-parties button", has_text="Hang up").click()
                        await phone.wait_for("state", call=number, state="DISCONNECTED", timeout=10)
                        await second.close()
            recording = await phone.wait_for_recording(number)
    # the pages' 400 Hz beeps reach the phone after the takeover (the last 2.5 s of the call)
    assert_beeps(recording, "the phone after the takeover", last=2.5)
    print(
        f"room page: each page connected to the survivor's mix {back[0]:.2f} / {back[1]:.2f} s after the kill -9"
    )
