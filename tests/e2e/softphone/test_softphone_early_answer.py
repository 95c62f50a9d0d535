"""The softphone page's calls take the gateway's early answer (issue 14 goal 3, docs/signaling.md *Early
answer*): the page's `call` asks for `early_answer`, applies the `answer` event, and its RTCPeerConnection
is connected (ICE and DTLS done) while the pjsua2 desk phone still rings; the phone's answer then connects
the call with its tone heard (the `connected` event carries no SDP, applying one twice would fail).

The page's own script is untouched: an init script only records the states its RTCPeerConnections report.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.ports import free_range
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway
from tests.signaling.browser import chromium_page, expect, log_in, read_meter

# Records the connection states of every RTCPeerConnection the page makes.
WATCH_STATES = """
window.__states = [];
const Native = window.RTCPeerConnection;
window.RTCPeerConnection = function (...args) {
  const pc = new Native(...args);
  pc.addEventListener("connectionstatechange", () => window.__states.push(pc.connectionState));
  return pc;
};
window.RTCPeerConnection.prototype = Native.prototype;
"""


async def test_the_page_is_connected_while_the_phone_rings(tmp_path: Path) -> None:
    require_desk_phone()
    async with DeskPhone(tmp_path, user="2000", tone=440, answer_delay_ms=4000) as phone:
        config = gateway_config(phone.address, media={"rtp_ports": {"start": free_range()}})
        async with running_gateway(config) as gateway, chromium_page() as page:
            await page.add_init_script(WATCH_STATES)
            await page.goto(gateway.http_url + "/")
            await log_in(page, "alice", ALICE_SECRET)
            await expect(page.locator("#status")).to_have_text("Registered as Alice")
            await page.locator("#number").fill("2000")
            await page.get_by_role("button", name="Call", exact=True).click()
            incoming = await phone.wait_for("incoming")
            await expect(page.locator("#call-state")).to_have_text("Ringing…", timeout=10000)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 3.0  # well inside the phone's 4 s of ringing
            while "connected" not in await page.evaluate("window.__states"):
                assert loop.time() < deadline, await page.evaluate("window.__states")
                await asyncio.sleep(0.05)
            assert not phone.seen("state", call=incoming["call"], state="CONFIRMED"), "answered already"
            await expect(page.locator("#call-state")).to_have_text("Ringing…")

            await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
            await expect(page.locator("#call-state")).to_have_text("Connected", timeout=10000)
            assert await read_meter(page, "remote-level", 0.02) >= 0.02, "the phone's tone is not heard"
            assert await page.evaluate("window.__states") == ["connecting", "connected"]
            await page.get_by_role("button", name="Hang up").click()
            await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
