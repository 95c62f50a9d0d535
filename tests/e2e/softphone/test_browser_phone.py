"""Headless Chromium on the real softphone page, logged in as alice, and a real desk phone, through a
whole gateway: the page calls the phone (connected, the browser's fake-microphone beep is in the phone's
recording, keypad DTMF reaches the phone, hang up from the page), and the phone calls alice (the page
rings, answer, the caller hangs up, the page shows the call ended); the history names the phone one way,
also while it rings (the banner's name)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from gateway.app import Gateway
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway
from tests.e2e.page_audio import assert_phone_heard_the_browser
from tests.signaling.browser import Page, chromium_page, expect, log_in, read_meter

SCREENSHOT = Path("/tmp/e2e-softphone-in-call.png")


async def page_calls_phone(page: Page, phone: DeskPhone, number: str = "2000") -> dict[str, Any]:
    """The page dials `number`; returns the phone's `incoming` event once the call is connected on both
    sides and the phone's tone is heard in the page."""
    await page.locator("#number").fill(number)
    await page.get_by_role("button", name="Call", exact=True).click()
    await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
    incoming = await phone.wait_for("incoming")
    await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
    assert await read_meter(page, "remote-level", 0.02) >= 0.02, "the phone's tone is not heard"
    return incoming


async def phone_calls_page(page: Page, phone: DeskPhone, sip_address: tuple[str, int]) -> int:
    """The phone calls alice (1001) and the page answers; the phone's call number once both are up and
    the phone's tone is heard in the page."""
    host, port = sip_address
    number = await phone.call(f"sip:1001@{host}:{port}")
    await expect(page.locator("#incoming")).to_be_visible(timeout=10000)
    await page.get_by_role("button", name="Answer").click()
    await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
    await phone.wait_for("state", call=number, state="CONFIRMED")
    assert await read_meter(page, "remote-level", 0.02) >= 0.02, "the phone's tone is not heard"
    return number


@asynccontextmanager
async def alice_and_the_phone(tmp_path: Path) -> AsyncIterator[tuple[Page, DeskPhone, Gateway]]:
    """Alice's page, logged in, and the demo's desk phone (2000, "Demo desk phone") as her PBX."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440, extra_args=("--name=Demo desk phone",)) as phone,
        running_gateway(gateway_config(phone.address)) as gateway,
        chromium_page() as page,
    ):
        await page.goto(gateway.http_url + "/")
        await log_in(page, "alice", ALICE_SECRET)
        await expect(page.locator("#status")).to_have_text("Registered as Alice")
        yield page, phone, gateway


async def test_softphone_page_and_desk_phone_call_each_other(tmp_path: Path) -> None:
    async with alice_and_the_phone(tmp_path) as (page, phone, gateway):
        # the page calls the phone
        incoming = await page_calls_phone(page, phone)
        for key in "5", "9":
            await page.locator(f'#dialpad button[data-key="{key}"]').click()
            await phone.wait_for("dtmf", digit=key)
        await expect(page.locator("#dtmf-sent")).to_have_text("Sent 59")
        await asyncio.sleep(2.0)
        await page.screenshot(path=str(SCREENSHOT), full_page=True)
        await page.get_by_role("button", name="Hang up").click()
        await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
        await expect(page.locator("#call-state")).to_have_text("No call")
        wav = await phone.wait_for_recording(incoming["call"])
        assert_phone_heard_the_browser(wav)

        # the phone calls alice
        number = await phone_calls_page(page, phone, gateway.sip_address)
        await phone.hangup(number)
        await expect(page.locator("#call-state")).to_have_text("No call", timeout=10000)
        await expect(page.locator("#notice")).to_have_text("The other side hung up.")  # news, no error
        await expect(page.get_by_role("alert")).to_be_hidden()
        # one name for the phone in the history, the one its calls gave (not "2000", then "sip:2000@...")
        await expect(page.locator("#history li strong")).to_have_text(["Demo desk phone (2000)"] * 2)


async def test_the_phone_has_one_name_while_it_rings(tmp_path: Path) -> None:
    """Issue 67 item 13: alice dialled 2000 (its history entry knows no name), then the desk phone rings
    her: while the banner says "Demo desk phone (2000)", the history says so too (it said "2000")."""
    async with alice_and_the_phone(tmp_path) as (page, phone, gateway):
        incoming = await page_calls_phone(page, phone)
        await page.get_by_role("button", name="Hang up").click()
        await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
        names = page.locator("#history li strong")
        await expect(names).to_have_text(["2000"])  # nothing told its name yet

        host, port = gateway.sip_address
        number = await phone.call(f"sip:1001@{host}:{port}")
        banner = page.get_by_role("alertdialog")
        await expect(banner).to_contain_text("Incoming call from Demo desk phone (2000)", timeout=10000)
        await expect(names).to_have_text(["Demo desk phone (2000)"])
        await expect(page.get_by_role("button", name="Call Demo desk phone (2000) back")).to_be_visible()
        await page.screenshot(path=str(tmp_path / "ringing-one-name.png"), full_page=True)
        await page.get_by_role("button", name="Answer").click()
        await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
        await phone.hangup(number)
        await expect(page.locator("#call-state")).to_have_text("No call", timeout=10000)
        await expect(names).to_have_text(["Demo desk phone (2000)"] * 2)
