"""The softphone page (headless Chromium) and a call's recording (issue 37 item 3), with a pjsua2 desk
phone: with `recording.mode: on_demand` the page shows a Record button and no indicator; Record shows
"● Recording", Pause recording "Recording paused", Resume recording "● Recording" again, Stop recording
hides it; the file the gateway wrote has the two recorded spans."""

from __future__ import annotations

import json
from pathlib import Path

from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from tests.e2e.harness import ALICE_SECRET, running_gateway, wait_until
from tests.e2e.ops.test_admin_api import admin_config
from tests.signaling.browser import chromium_page, expect, log_in


async def test_the_page_records_pauses_resumes_and_stops_with_its_indicator(tmp_path: Path) -> None:
    require_desk_phone()
    directory = tmp_path / "recordings"
    async with DeskPhone(tmp_path, user="2000", tone=440) as phone:
        config = admin_config(phone, [], 38800, recording={"mode": "on_demand", "directory": str(directory)})
        async with running_gateway(config) as gateway, chromium_page() as page:
            await page.goto(gateway.http_url + "/")
            await log_in(page, "alice", ALICE_SECRET)
            await expect(page.locator("#status")).to_have_text("Registered as Alice")
            indicator = page.locator("#recording-indicator")
            record = page.locator("#record-button")
            pause = page.locator("#record-pause-button")
            await expect(record).to_be_hidden()
            await page.locator("#number").fill("2000")
            await page.get_by_role("button", name="Call", exact=True).click()
            at = int((await phone.wait_for("incoming", timeout=15))["call"])
            await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)

            await expect(record).to_have_text("Record", timeout=10000)
            await expect(indicator).to_be_hidden()
            await expect(pause).to_be_hidden()
            await record.click()
            await expect(indicator).to_have_text("● Recording")
            await expect(indicator).to_have_attribute("data-state", "recording")
            await expect(record).to_have_text("Stop recording")
            await page.screenshot(path=str(tmp_path / "recording.png"))
            await pause.click()
            await expect(indicator).to_have_text("Recording paused")
            await expect(pause).to_have_text("Resume recording")
            await pause.click()
            await expect(indicator).to_have_text("● Recording")
            await record.click()
            await expect(indicator).to_be_hidden()
            await expect(record).to_have_text("Record")
            await expect(pause).to_be_hidden()

            await page.get_by_role("button", name="Hang up").click()
            await phone.wait_for("state", call=at, state="DISCONNECTED")

    [path] = sorted(directory.rglob("*.wav"))
    sidecar = path.with_suffix(".json")
    await wait_until(sidecar.exists, timeout=10)
    data = json.loads(sidecar.read_text())
    assert data["user"] == "alice" and data["mode"] == "on_demand" and len(data["spans"]) == 2, data
