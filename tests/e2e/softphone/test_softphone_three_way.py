"""Three-way calls on the softphone page (issue 37 item 2), what a person sees in headless Chromium: alice
calls pjsua2 phone A (440 Hz), holds it and calls phone B (660 Hz), and a
"Merge" button shows; pressed, the page shows a conference of both parties, each with Split and Hang
up, and alice hears the mix. A hears B (its recording has 660 Hz: the gateway mixes). Split takes B
out (B is held, the call list is back), and hanging up A leaves the held call with B.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from tests.e2e.harness import ALICE_SECRET, wait_until
from tests.e2e.softphone.test_three_way import two_phones, windows_with
from tests.signaling.browser import chromium_page, expect, log_in, read_meter


async def test_the_page_merges_two_calls_shows_the_conference_and_splits_one(tmp_path: Path) -> None:
    async with two_phones(tmp_path) as (phone_a, phone_b, gateway), chromium_page() as page:
        await page.goto(gateway.http_url + "/")
        await log_in(page, "alice", ALICE_SECRET)
        await expect(page.locator("#status")).to_have_text("Registered as Alice")
        merge = page.get_by_role("button", name=re.compile("^Merge with"))
        await page.locator("#number").fill(phone_a.uri)
        await page.get_by_role("button", name="Call", exact=True).click()
        at_a = int((await phone_a.wait_for("incoming", timeout=15))["call"])
        await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
        await expect(merge).to_be_hidden()  # one call: nothing to merge

        await page.get_by_role(
            "button", name="Hold", exact=True
        ).click()  # a second call needs the first held
        await phone_a.wait_for("media", call=at_a, status="remote_hold", timeout=10)
        await expect(page.locator("#call-state")).to_have_text("On hold", timeout=10000)
        await page.locator("#number").fill(phone_b.uri)
        await page.get_by_role("button", name="Call", exact=True).click()
        at_b = int((await phone_b.wait_for("incoming", timeout=15))["call"])
        await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
        await expect(page.locator("#calls li")).to_have_count(2)
        await expect(merge).to_be_visible()
        await page.screenshot(path=str(tmp_path / "before-merge.png"), full_page=True)

        await merge.click()
        conference = page.locator("#conference")
        await expect(conference).to_be_visible(timeout=10000)
        await expect(page.locator("#conference-parties li")).to_have_count(2)
        await expect(page.locator("#call-state")).to_have_text("Conference with 2 parties")
        await expect(page.get_by_role("button", name=re.compile("^Split off"))).to_have_count(2)
        await expect(page.get_by_role("button", name=re.compile("^Hang up "))).to_have_count(2)
        await expect(page.locator("#calls")).to_be_hidden()
        await expect(merge).to_be_hidden()
        await expect(page.get_by_role("button", name="Hold", exact=True)).to_be_disabled()
        await phone_a.wait_for("media", call=at_a, status="active", timeout=10)
        assert await read_meter(page, "remote-level", 0.02) >= 0.02, "the page hears nothing of the mix"
        await asyncio.sleep(2.0)  # A records B through the gateway's mix
        await page.screenshot(path=str(tmp_path / "conference.png"), full_page=True)
        await expect(page.locator("#error")).to_be_hidden()

        # Split B (the call the page talked on last): B is held, A's call is the page's current call
        await (
            page.locator("#conference-parties li")
            .nth(1)
            .get_by_role("button", name=re.compile("^Split"))
            .click()
        )
        await phone_b.wait_for("media", call=at_b, status="remote_hold", timeout=10)
        await expect(conference).to_be_hidden(timeout=10000)
        await expect(page.locator("#calls li")).to_have_count(2)
        await expect(page.locator("#calls li.current")).to_contain_text("Connected")
        await expect(page.locator("#calls li").nth(1)).to_contain_text("On hold")
        await expect(merge).to_be_visible()  # they may be merged again
        assert await read_meter(page, "remote-level", 0.02) >= 0.02, "A is not heard after the split"

        await page.get_by_role("button", name="Hang up", exact=True).click()
        await phone_a.wait_for("state", call=at_a, state="DISCONNECTED", timeout=10)
        await expect(page.locator("#call-state")).to_have_text("On hold", timeout=10000)
        wav_a = await phone_a.wait_for_recording(at_a)
        assert windows_with(wav_a, 660) >= 2, f"A did not hear B through the mix in {wav_a}"
        await page.get_by_role("button", name="Resume").click()
        await phone_b.wait_for("media", call=at_b, status="active", timeout=10)
        await page.get_by_role("button", name="Hang up", exact=True).click()
        await phone_b.wait_for("state", call=at_b, state="DISCONNECTED", timeout=10)
        await wait_until(lambda: gateway.driver.calls == 0)
