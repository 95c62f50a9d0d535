"""A real Asterisk 22 (chan_pjsip) as the PBX behind the gateway, as most of its users run it: the
gateway registers alice's extension 1001 with her pbx_auth, and her calls reach the dialplan.

web -> Echo() (her own tone comes back), -> a prompt (heard), -> Read() with keypad DTMF (each digit
once; from the softphone page's dial pad in Chromium too); Asterisk -> web (channel originate to her
registered extension: she rings, answers, and hears her tone back from Echo()); Asterisk's qualify
OPTIONS to the contact the gateway registered are answered."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from peers.asterisk import Asterisk
from peers.webpeer import WebPeer
from tests.e2e.asterisk.pbx import ALICE_EXT, MILLIWATT_HZ
from tests.e2e.asterisk.session import alice_registered, web_call
from tests.e2e.harness import ALICE_SECRET, wait_until
from tests.signaling.browser import chromium_page, expect, log_in, read_meter


async def _contact_available(pbx: Asterisk) -> bool:
    contacts = await pbx.cli(f"pjsip show contacts like {ALICE_EXT}")
    return any(line.split()[:1] == ["Contact:"] and " Avail " in line for line in contacts.splitlines())


async def wait_until_async(predicate: Callable[[], Awaitable[bool]], timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.2)


async def test_web_user_hears_herself_through_echo_and_a_prompt(pbx: Asterisk) -> None:
    async with alice_registered(pbx) as (_gateway, alice):
        async with web_call(alice, "600", freq=700) as (_call_id, peer):
            # her 700 Hz tone went to Asterisk (ulaw) and came back: both ways through the gateway
            await wait_until(lambda: peer.heard(700, last=1.0), timeout=10)
            assert "Echo(" in pbx.log()
        async with web_call(alice, "601") as (call_id, peer):
            # "Hello, world" (1.4 s of speech), then the dialplan's Hangup()
            ended = await alice.wait_for("ended", call_id=call_id, timeout=15)
            assert ended["reason"] == "remote_hangup", ended
            loud = [max(map(abs, peer.pcm[i : i + 800])) for i in range(0, len(peer.pcm) - 800, 800)]
            assert sum(level > 1000 for level in loud) >= 8, f"the prompt was not heard: {loud}"


async def test_keypad_digits_reach_read_once_each(pbx: Asterisk) -> None:
    async with alice_registered(pbx) as (_gateway, alice), web_call(alice, "602") as (call_id, peer):
        await asyncio.sleep(1.5)  # past Read()'s beep
        await alice.request({"type": "dtmf", "call_id": call_id, "digits": "4711"})
        # Read() took exactly four digits and the dialplan went on to Milliwatt
        await wait_until(lambda: peer.heard(MILLIWATT_HZ, last=0.5), timeout=10)
        read = await pbx.cli(f"database get test/read {ALICE_EXT}")
        assert "Value: 4711" in read, read


async def test_asterisk_calls_the_web_user(pbx: Asterisk) -> None:
    async with alice_registered(pbx) as (_gateway, alice):
        # Asterisk's qualify: its OPTIONS to the contact the gateway registered are answered
        await wait_until_async(lambda: _contact_available(pbx), timeout=10)
        peer = WebPeer(freq=800)
        try:
            await pbx.cli(f"channel originate PJSIP/{ALICE_EXT} extension 600@users")
            ringing = await alice.wait_for("incoming")
            await alice.answer(ringing["call_id"], peer.answer)
            await peer.connected()
            # Asterisk's Echo() plays her own tone back: it crossed the gateway both ways
            await wait_until(lambda: peer.heard(800, last=1.0), timeout=10)
            await pbx.cli("channel request hangup all")
            ended = await alice.wait_for("ended", call_id=ringing["call_id"])
            assert ended["reason"] == "remote_hangup", ended
        finally:
            await peer.close()


async def test_the_pages_keypad_reaches_read_once_per_digit(pbx: Asterisk) -> None:
    """The softphone page in Chromium: alice dials 602 and keys 2580 on the page's dial pad."""
    async with alice_registered(pbx) as (gateway, _alice), chromium_page() as page:
        await page.goto(gateway.http_url + "/")
        await log_in(page, "alice", ALICE_SECRET)
        await expect(page.locator("#status")).to_have_text("Registered as Alice")
        await page.locator("#number").fill("602")
        await page.get_by_role("button", name="Call", exact=True).click()
        await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
        await wait_until(lambda: "Read(" in pbx.log(), timeout=10)
        await asyncio.sleep(1.0)  # past Read()'s beep
        for key in "2580":
            await page.locator(f'#dialpad button[data-key="{key}"]').click()
        await expect(page.locator("#dtmf-sent")).to_have_text("Sent 2580")
        # Read() took the four digits, once each, and the dialplan went on to Milliwatt (heard)
        assert await read_meter(page, "remote-level", 0.02) >= 0.02
        read = await pbx.cli(f"database get test/read {ALICE_EXT}")
        assert "Value: 2580" in read, read
        await page.get_by_role("button", name="Hang up").click()
        await expect(page.locator("#call-state")).to_have_text("No call")
