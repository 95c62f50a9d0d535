"""The softphone page keeps its call when its address changes (issue 34): headless Chromium in a network
namespace of its own (peers/netns.py), the gateway on the other end of its veth pair, the pjsua2 desk
phone as the PBX. The page calls the phone; then its address is deleted and another one added, as a
laptop moving from Wi-Fi to wired sees it. Nothing tells the page: its WebSocket and its media are dead
without a FIN, and Chromium's ICE says "disconnected" only seconds later. The page notices that its
audio stopped, finds its socket does not answer a ping, logs in again at once on a new one (the gateway
hands it the call its old socket held) and takes the call back: the phone's audio flows again, in the
same call (the phone never heard a BYE), and the page can hang up. Before the page checked its socket,
it never came back: 25 s later its call still sent its ICE restart down the dead socket."""

from __future__ import annotations

import time
from pathlib import Path

from peers.demo import require_desk_phone
from peers.netns import ClientNetwork, require_netns
from peers.phone import DeskPhone
from peers.ports import free_port
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway
from tests.signaling.browser import (
    RECORD_PEER_CONNECTIONS,
    audio_flowing,
    chromium_binary,
    chromium_page,
    expect,
    log_in,
)  # fmt: skip

BACK_WITHIN = 12.0  # the bench measures the gap (bench/network_change_bench.py: about 2.2 s)


async def test_the_page_takes_its_call_back_after_its_address_changed(tmp_path: Path) -> None:
    require_desk_phone()
    require_netns()
    with ClientNetwork() as network:
        async with DeskPhone(tmp_path, user="2000", tone=440) as phone:
            config = gateway_config(phone.address, http={"host": network.host_ip, "port": free_port()})
            async with running_gateway(config) as gateway:
                base = gateway.http_url
                # the desktop browser: the headless shell keeps http:// insecure despite the flag below
                chromium = network.wrapper(chromium_binary(full=True), tmp_path)
                flags = [f"--unsafely-treat-insecure-origin-as-secure={base}"]  # getUserMedia on http://
                async with chromium_page(flags=flags, executable=chromium) as page:
                    await page.add_init_script(RECORD_PEER_CONNECTIONS)
                    await page.goto(base + "/")
                    await log_in(page, "alice", ALICE_SECRET)
                    await expect(page.locator("#status")).to_have_text("Registered as Alice", timeout=15000)
                    await page.locator("#number").fill("2000")
                    await page.get_by_role("button", name="Call", exact=True).click()
                    incoming = await phone.wait_for("incoming")
                    await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
                    await audio_flowing(page, 10.0)
                    [call_id] = [r.call_id for r in gateway.driver.runtimes]

                    network.move()
                    moved = time.monotonic()
                    await audio_flowing(page, BACK_WITHIN)
                    gap = time.monotonic() - moved
                    await expect(page.locator("#call-state")).to_have_text("Connected")
                    assert [r.call_id for r in gateway.driver.runtimes] == [call_id]  # the same call
                    assert not phone.seen("state", call=incoming["call"], state="DISCONNECTED")

                    await page.get_by_role("button", name="Hang up", exact=True).click()
                    await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
                    await expect(page.locator("#call-state")).to_have_text("No call", timeout=10000)
    print(f"the page heard the phone again {gap:.2f} s after its address changed")
