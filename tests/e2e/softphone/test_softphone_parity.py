"""The softphone page (headless Chromium) against pjsua2 desk phones, for what the parity matrix (docs/
signaling.md, issue 33 item 4) needs on the page's row beside calls, DTMF out, chat and video, which other
tests cover: early media, the phone's DTMF shown on the page, hold both sides, and the Transfer button.
"""

from __future__ import annotations

from pathlib import Path

from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until
from tests.e2e.sip_interop.test_transfer import DOMAIN, both_phones_config, page_calls_phone
from tests.signaling.browser import chromium_page, expect, log_in


async def test_the_page_hears_early_media_sees_the_phones_keys_and_holds_both_ways(tmp_path: Path) -> None:
    """alice calls the phone, which answers 183 with its tone first ("Ringing (early audio)"), then 200;
    the phone's keys 4 and 7 show on the page; the phone's hold shows "Held by the other side"; the page's
    Hold button puts the phone on hold (pjsua sees remote_hold) and Resume takes it off."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", answer="ring", tone=440) as phone,
        running_gateway(gateway_config(phone.address)) as gateway,
        chromium_page() as page,
    ):
        await page.goto(gateway.http_url + "/")
        await log_in(page, "alice", ALICE_SECRET)
        await expect(page.locator("#status")).to_have_text("Registered as Alice")
        await page.locator("#number").fill("2000")
        await page.get_by_role("button", name="Call", exact=True).click()
        at = int((await phone.wait_for("incoming", timeout=15))["call"])
        await phone.send("answer", call=at, code=183)
        await expect(page.locator("#call-state")).to_have_text("Ringing (early audio)…", timeout=15000)
        await phone.send("answer", call=at, code=200)
        await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
        await phone.wait_for("state", call=at, state="CONFIRMED")

        await phone.send("dtmf", call=at, digits="47")
        await expect(page.locator("#dtmf-received")).to_have_text("Received 47", timeout=10000)

        await phone.send("hold", call=at)
        await expect(page.locator("#call-state")).to_have_text("Held by the other side", timeout=10000)
        await phone.send("unhold", call=at)
        await expect(page.locator("#call-state")).to_have_text("Connected", timeout=10000)

        await page.get_by_role("button", name="Hold", exact=True).click()
        await phone.wait_for("media", call=at, status="remote_hold", timeout=10)
        await expect(page.locator("#call-state")).to_have_text("On hold", timeout=10000)
        await page.get_by_role("button", name="Resume", exact=True).click()
        await phone.wait_for("media", call=at, status="active", timeout=10)
        await expect(page.locator("#call-state")).to_have_text("Connected", timeout=10000)
        await expect(page.locator("#error")).to_be_hidden()

        await page.get_by_role("button", name="Hang up").click()
        await phone.wait_for("state", call=at, state="DISCONNECTED")
        await expect(page.locator("#dtmf-received")).to_be_hidden()


async def test_the_pages_transfer_button_sends_the_phone_to_another(tmp_path: Path) -> None:
    """alice calls A, types 2001 in "Transfer to" and presses Transfer (blind, REFER): A calls B, the page
    hears the transfer succeed and ends its call quietly ("No call", no error), A and B are connected."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone_a,
        DeskPhone(tmp_path, user="2001", host=DOMAIN, port=5060, tone=880) as phone_b,
        running_gateway(both_phones_config(phone_a, 37000)) as gateway,
        chromium_page() as page,
    ):
        at_a = await page_calls_phone(page, gateway.http_url, phone_a)
        await page.get_by_placeholder("Transfer to…").fill("2001")
        await page.get_by_role("button", name="Transfer", exact=True).click()
        request = await phone_a.wait_for("transfer_request", call=at_a)
        assert request["to"].strip("<>").startswith(f"sip:2001@{DOMAIN}"), request
        at_b = int((await phone_b.wait_for("incoming"))["call"])
        await phone_b.wait_for("state", call=at_b, state="CONFIRMED")
        await expect(page.locator("#call-state")).to_have_text("No call", timeout=15000)
        await expect(page.locator("#error")).to_be_hidden()
        await wait_until(lambda: gateway._health_details()["calls"] == 0, timeout=10)
        await phone_b.hangup(at_b)
