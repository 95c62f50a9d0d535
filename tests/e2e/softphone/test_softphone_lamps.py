"""The softphone page in headless Chromium shows busy lamps and the voicemail light (issue 37 item 1), from a
PBX's notifier played by sipp (peers/scenarios/uas_blf_mwi.xml): alice watches 1002 (Bob, in her
directory) and 1003; the header shows "✉ 2 new · 8 old", then 3 new; Bob's lamp goes Ringing with a
"Pick up" button, On a call, Available; 1003's the same. A click on "Pick up" while Bob rings dials the
pickup code (pbx.pickup_prefix `*8` + 1002) to the PBX, which sipp logs."""

from __future__ import annotations

from pathlib import Path

from peers.binaries import require_binary
from peers.sipp import Sipp
from tests.e2e.harness import ALICE_SECRET, running_gateway
from tests.e2e.sip_interop.test_busy_lamps import lamps_config
from tests.signaling.browser import chromium_page, expect, log_in


async def test_the_page_shows_who_rings_and_talks_and_the_voicemail_count(tmp_path: Path) -> None:
    require_binary("sipp")
    # three subscriptions and the pickup's INVITE; the lamps change, and the voicemail count goes from 2 to
    # 3, 12 s after the gateway subscribed: the page's Chromium starts and logs in meanwhile (it took more
    # than 8 s at the suite's load of 12)
    pbx = Sipp(tmp_path, "uas_blf_mwi", calls=4, duration_ms=12000, timeout=90)
    await pbx.start()
    try:
        async with running_gateway(lamps_config(pbx.address)) as gateway, chromium_page() as page:
            await page.goto(gateway.http_url + "/")
            await log_in(page, "alice", ALICE_SECRET)
            await expect(page.locator("#status")).to_have_text("Registered as Alice")
            voicemail = page.locator("#voicemail")
            await expect(voicemail).to_have_text("✉ 2 new · 8 old")
            await expect(voicemail).to_have_attribute("aria-label", "Voicemail: 2 new, 8 old messages")
            colleagues = page.get_by_role("region", name="Colleagues")
            bob = colleagues.locator('li[data-number="1002"]')
            other = colleagues.locator('li[data-number="1003"]')
            await expect(bob).to_contain_text("Bob (1002)")  # the directory's name for 1002
            await expect(bob).to_contain_text("Available")
            await expect(other).to_contain_text("Available")

            await expect(bob).to_contain_text("Ringing", timeout=30000)
            await expect(bob.locator(".lamp")).to_have_class("lamp lamp-ringing")
            await expect(other).to_contain_text("Ringing")
            await bob.get_by_role("button", name="Pick up the call ringing at Bob").click()
            await expect(bob).to_contain_text("On a call", timeout=5000)
            await expect(bob.get_by_role("button")).to_have_count(0)  # no pickup once answered
            await expect(bob).to_contain_text("Available", timeout=5000)
            await expect(voicemail).to_have_text("✉ 3 new · 8 old", timeout=15000)
    finally:
        result = await pbx.wait(timeout=20)
    assert "pickup dialled *81002" in result.logs, result.logs[-800:]
    assert result.ok, result
