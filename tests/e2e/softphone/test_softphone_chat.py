"""Chat in calls on the real softphone page in headless Chromium (issue 17), with the pjsua2 desk phone
through a whole gateway:

- the phone calls alice and the page answers: the gateway's offer opens a data channel `chat` that
  Chromium takes (its SCTP over the gateway's DTLS); the phone's MESSAGE in the dialog shows in the page's
  chat and arrives on that channel too; a line typed in the page reaches the phone as a MESSAGE
  (text/plain) and shows "delivered" once the phone answered 200;
- the page calls the phone: chat both ways the same way.

The page's own script is untouched: an init script only watches the data channels Chromium reports.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.ports import free_range
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway
from tests.e2e.softphone.test_browser_phone import page_calls_phone, phone_calls_page
from tests.signaling.browser import Page, chromium_page, expect, log_in

SCREENSHOT = Path("/tmp/e2e-softphone-chat.png")

# Records every data channel the page's RTCPeerConnections get from an offer, and their text.
WATCH_CHANNELS = """
window.__channels = [];
const Native = window.RTCPeerConnection;
window.RTCPeerConnection = function (...args) {
  const pc = new Native(...args);
  pc.addEventListener("datachannel", (event) => {
    const seen = { label: event.channel.label, texts: [] };
    window.__channels.push(seen);
    event.channel.addEventListener("message", (e) => seen.texts.push(String(e.data)));
  });
  return pc;
};
window.RTCPeerConnection.prototype = Native.prototype;
"""


async def channel_texts(page: Page, text: str, timeout: float = 10.0) -> list[dict[str, object]]:
    """The watched channels once one of them got `text` (the page's CSP forbids wait_for_function)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        channels: list[dict[str, object]] = await page.evaluate("window.__channels")
        if any(text in channel["texts"] for channel in channels):  # type: ignore[operator]
            return channels
        if loop.time() > deadline:
            raise AssertionError(f"no {text!r} on the page's data channels: {channels}")
        await asyncio.sleep(0.1)


async def chat_both_ways(page: Page, phone: DeskPhone, number: int, tag: str) -> None:
    await expect(page.locator("#chat-text")).to_be_enabled()
    await phone.send("message", call=number, body=f"Hello page ({tag}) ☎")
    await expect(page.locator("#chat-log")).to_contain_text(f"Hello page ({tag}) ☎", timeout=10000)
    assert (await phone.wait_for("message_status", call=number))["code"] == 200

    await page.locator("#chat-text").fill(f"Hello phone ({tag})")
    await page.get_by_role("button", name="Send").click()
    got = await phone.wait_for("message", call=number)
    assert got["body"] == f"Hello phone ({tag})" and got["content_type"].startswith("text/plain"), got
    line = page.locator("#chat-log li.mine").last
    await expect(line).to_contain_text(f"Hello phone ({tag})")
    await expect(line).to_contain_text("delivered", timeout=10000)
    await expect(page.locator("#chat-text")).to_have_value("")


async def test_softphone_chat_with_the_desk_phone_both_ways(tmp_path: Path) -> None:
    require_desk_phone()
    async with DeskPhone(tmp_path, user="2000", tone=440) as phone:
        config = gateway_config(phone.address, media={"rtp_ports": {"start": free_range()}})
        async with running_gateway(config) as gateway, chromium_page() as page:
            await page.add_init_script(WATCH_CHANNELS)
            await page.goto(gateway.http_url + "/")
            await log_in(page, "alice", ALICE_SECRET)
            await expect(page.locator("#status")).to_have_text("Registered as Alice")
            await expect(page.locator("#chat")).to_be_hidden()

            # the phone calls alice: the gateway's offer opens the channel Chromium takes
            number = await phone_calls_page(page, phone, gateway.sip_address)
            await chat_both_ways(page, phone, number, "called")
            channels = await channel_texts(page, "Hello page (called) ☎")
            assert [c["label"] for c in channels] == ["chat"], channels
            await page.screenshot(path=str(SCREENSHOT), full_page=True)
            await phone.hangup(number)
            await expect(page.locator("#call-state")).to_have_text("No call", timeout=10000)
            await expect(page.locator("#chat")).to_be_hidden()

            # the page calls the phone
            incoming = await page_calls_phone(page, phone)
            await chat_both_ways(page, phone, incoming["call"], "calling")
            await page.get_by_role("button", name="Hang up").click()
            await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
