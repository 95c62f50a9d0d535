"""The softphone page (headless Chromium) shows "Poor connection: the phone's side" while the phone's leg
loses 20 % of its RTP (the relay of tests/e2e/lossy_sip_leg.py, pjsua2 desk phone; issue 36 item 4), and
hides it once that leg recovers, while the call goes on."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.harness import ALICE_SECRET, running_gateway
from tests.e2e.lossy_sip_leg import Impairer, Impairment
from tests.e2e.ops.test_call_quality import lossy_phone, quality_config
from tests.signaling.browser import chromium_page, expect, log_in


async def test_the_page_names_the_phones_side_poor_then_clears_it(tmp_path: Path) -> None:
    async with (
        lossy_phone(tmp_path) as (phone, relay, start),
        running_gateway(quality_config(phone, start)) as gateway,
        chromium_page() as page,
    ):
        await page.goto(gateway.http_url + "/")
        await log_in(page, "alice", ALICE_SECRET)
        await expect(page.locator("#status")).to_have_text("Registered as Alice")
        warning = page.locator("#quality-warning")
        await expect(warning).to_be_hidden()
        await page.locator("#number").fill("2000")
        await page.get_by_role("button", name="Call", exact=True).click()
        at = int((await phone.wait_for("incoming", timeout=15))["call"])
        await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
        await expect(warning).to_have_text("Poor connection: the phone's side", timeout=15000)
        await expect(warning).to_have_attribute("data-legs", "sip")

        relay.impairer = Impairer(Impairment("clean"))  # the phone's path recovers
        await expect(warning).to_be_hidden(timeout=15000)
        await expect(page.locator("#call-state")).to_have_text("Connected")

        await page.get_by_role("button", name="Hang up").click()
        await phone.wait_for("state", call=at, state="DISCONNECTED")
