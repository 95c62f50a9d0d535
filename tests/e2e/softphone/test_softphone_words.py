"""Issue 39 item 3 on the softphone page, in headless Chromium against a whole gateway with no PBX (alice
and bob on two pages, tests/e2e/softphone/test_web_to_web.py): what a person reads and sees.

- The video controls ("Add video", the Video checkbox and the camera choice) only when the gateway
  carries video (`codecs.video`, told in `registered`).
Screenshots go to each test's tmp_path.
"""

from __future__ import annotations

from pathlib import Path

from tests.e2e.harness import ALICE_SECRET, running_gateway
from tests.e2e.softphone.test_web_to_web import no_pbx_config
from tests.signaling.browser import Page, chromium_page, expect, log_in


async def logged_in(page: Page, url: str) -> None:
    await page.goto(url + "/")
    await log_in(page, "alice", ALICE_SECRET)
    await expect(page.locator("#status")).to_have_text("Registered as Alice")


async def test_video_controls_only_when_the_gateway_carries_video(tmp_path: Path) -> None:
    async with chromium_page() as page:
        for codecs, shown in (({}, False), ({"video": ["VP8"]}, True)):
            async with running_gateway(no_pbx_config(codecs=codecs)) as gateway:
                await logged_in(page, gateway.http_url)
                controls = (
                    page.get_by_role("checkbox", name="Video"),
                    page.get_by_role("button", name="Add video"),
                    page.get_by_role("combobox", name="Camera"),
                )
                for control in controls:
                    if shown:
                        await expect(control).to_be_visible()
                    else:
                        await expect(control).to_be_hidden()
                await page.screenshot(path=str(tmp_path / f"video-{shown}.png"), full_page=True)
