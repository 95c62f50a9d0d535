"""The softphone page's video (issue 19), two headless Chromium pages with fake cameras and the whole
gateway (`codecs.video: [VP8, H264]`, no PBX): alice ticks "Video" and calls bob, who ticks it and
answers. A call between web users goes out of the gateway and back in over SIP, so the video crosses
both directions of the media bridge (browser -> SIP offer, then SIP offer -> browser). Each page shows
its own camera in the preview and the other's picture (the fake camera's green) in the remote video."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.harness import running_gateway
from tests.e2e.softphone.test_web_to_web import no_pbx_config, two_users
from tests.media.pictures import picture_script
from tests.signaling.browser import Page, expect

REMOTE = picture_script("document.getElementById('remote-video')")


async def remote_picture(page: Page, frames: int = 30) -> list[float] | None:
    seen = None
    for _ in range(150):
        seen = await page.evaluate(REMOTE)
        if seen is not None and seen[2] >= frames:
            break
        await page.wait_for_timeout(100)
    return seen


async def test_two_pages_call_each_other_with_video(tmp_path: Path) -> None:
    config = no_pbx_config(codecs={"video": ["VP8", "H264"]})
    async with running_gateway(config) as gateway, two_users(gateway) as (alice, bob):
        for page in alice, bob:
            await page.get_by_role("checkbox", name="Video").check()
        await alice.locator("#number").fill("bob")
        await alice.get_by_role("button", name="Call", exact=True).click()
        await expect(bob.locator("#incoming")).to_be_visible(timeout=10000)
        await bob.get_by_role("button", name="Answer", exact=True).click()
        for page in alice, bob:
            await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
            await expect(page.locator("#video-panel")).to_be_visible()
            await expect(page.locator("#local-video")).to_be_visible()
        pictures = {name: await remote_picture(page) for name, page in (("alice", alice), ("bob", bob))}
        await alice.screenshot(path=str(tmp_path / "alice-video.png"), full_page=True)
        await bob.screenshot(path=str(tmp_path / "bob-video.png"), full_page=True)
        for name, seen in pictures.items():
            assert seen is not None and seen[2] >= 30, (name, pictures)
            width, height, _, r, g, b = seen
            assert (width, height) == (640, 480) and g > r + 50 and g > b + 50, (name, pictures)  # green
        await alice.get_by_role("button", name="Hang up").click()
        for page in alice, bob:
            await expect(page.locator("#call-state")).to_have_text("No call", timeout=10000)
            await expect(page.locator("#video-panel")).to_be_hidden()
        assert await alice.evaluate("document.getElementById('local-video').srcObject") is None
