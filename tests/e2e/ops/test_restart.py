"""Restarts strand no one: the session key is kept in the state directory, so a Chromium page logged in
before a gateway restart logs in again by itself (no reload) and can call a desk phone after it, with
the phone's tone heard; a restart that lost the key (another state directory) sends the page back to
its login form with a readable message, never leaving it on "Reconnecting…"."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from gateway.app import Gateway
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway
from tests.e2e.softphone.test_browser_phone import page_calls_phone
from tests.signaling.browser import chromium_page, expect, log_in


async def test_a_logged_in_page_recovers_from_a_restart_and_calls(tmp_path: Path) -> None:
    require_desk_phone()
    async with DeskPhone(tmp_path, user="2000", tone=440) as phone, chromium_page() as page:
        config = gateway_config(phone.address, state_dir=str(tmp_path / "state"))
        first = Gateway(config)
        try:
            await first.start()
            await page.goto(first.http_url + "/")
            await log_in(page, "alice", ALICE_SECRET)
            await expect(page.locator("#status")).to_have_text("Registered as Alice")
        finally:
            await first.close()
        await expect(page.locator("#status")).to_have_text("Reconnecting…")

        async with running_gateway(config):  # same addresses, same state directory
            await expect(page.locator("#status")).to_have_text("Registered as Alice", timeout=15000)
            await expect(page.locator("#phone-panel")).to_be_visible()
            await expect(page.locator("#error")).to_be_hidden()
            incoming = await page_calls_phone(page, phone)
            await page.get_by_role("button", name="Hang up").click()
            await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")

        # the key is lost (a new state directory): the saved session is refused, back to the login form
        lost = dataclasses.replace(config, state_dir=str(tmp_path / "other-state"))
        async with running_gateway(lost):
            await expect(page.locator("#login-panel")).to_be_visible(timeout=15000)
            await expect(page.locator("#phone-panel")).to_be_hidden()
            await expect(page.get_by_role("alert")).to_have_text(
                "Your session has ended. Please log in again."
            )
            await expect(page.locator("#status")).to_have_text("Offline")
            await log_in(page, "alice", ALICE_SECRET)
            await expect(page.locator("#status")).to_have_text("Registered as Alice")
