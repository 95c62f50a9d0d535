"""A log-in form used before its page's script has run (a slow phone, a loaded machine) in Chromium.

Every form of the pages is handled by their module scripts, which run only once the document and all
their imports are loaded. Before that, the forms were plain HTML: Enter or a click on "Log in" submitted
them natively, a GET to the page itself with the fields in the query string, so the secret went into
the URL (the browser's history, the gateway's access log) and the page reloaded, still "Offline", with
no error: the log-in a person (or a test) made was lost without a word. Now the submit buttons are
disabled until the script has wired their forms, and the pages' CSP forbids native form submission
(`form-action 'none'`). Each case holds the page's script back 2.5 s, tries to log in meanwhile, and
checks that no request carried the secret, that the page stayed put, and that the log-in then works.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from playwright.async_api import Route

from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway
from tests.signaling.browser import Page, chromium_page, expect

HOLD = 2.5  # seconds the page's own script is held back (ample beside a loaded machine's round trips)


async def hold_back(page: Page, script: str) -> None:
    """Delay the page's module script ``script`` (e.g. softphone.js) by HOLD seconds."""

    async def slow(route: Route) -> None:
        await asyncio.sleep(HOLD)
        await route.continue_()

    await page.route(f"**/static/{script}", slow)


async def fill_softphone(page: Page) -> None:
    await page.get_by_label("User id").fill("alice")
    await page.get_by_label("Secret").fill(ALICE_SECRET)


async def fill_room(page: Page) -> None:
    await page.get_by_label("Peer ID").fill("early-peer")
    await fill_softphone(page)


PAGES: dict[str, tuple[str, str, Callable[[Page], Awaitable[None]], str, str]] = {
    # name: (path, script, fill, submit button, what the page shows once logged in)
    "softphone": ("/", "softphone.js", fill_softphone, "Log in", "#phone-panel"),
    "admin": ("/admin", "admin.js", fill_softphone, "Log in", "#calls-panel"),
    "room": ("/webrtc/client", "room.js", fill_room, "Connect", "#room-panel"),
}


@pytest.mark.parametrize("name", sorted(PAGES))
async def test_a_form_used_before_its_script_runs_sends_no_secret_and_loses_nothing(name: str) -> None:
    path, script, fill, button_name, logged_in = PAGES[name]
    alice_extra = {"roles": ["admin"]} if name == "admin" else None
    config = gateway_config(None, alice_extra=alice_extra, rooms={"enabled": True})
    async with running_gateway(config) as gateway, chromium_page() as page:
        urls: list[str] = []
        page.on("request", lambda request: urls.append(request.url))
        await hold_back(page, script)
        await page.goto(gateway.http_url + path, wait_until="commit")
        await fill(page)
        button = page.get_by_role("button", name=button_name, exact=True)
        await expect(button).to_be_disabled()  # nothing to press until the script handles the form
        await page.get_by_label("Secret").press("Enter")  # implicit submission: none
        await asyncio.sleep(HOLD + 0.5)  # the script has run meanwhile
        leaked = [url for url in urls if ALICE_SECRET in url or "secret=" in url]
        assert leaked == [], f"the secret went into a URL: {leaked}"
        assert page.url == gateway.http_url + path, f"the page navigated away: {page.url}"
        await expect(button).to_be_enabled()
        # what was typed is still there, and the log-in works
        await expect(page.get_by_label("User id")).to_have_value("alice")
        await button.click()
        await expect(page.locator(logged_in)).to_be_visible(timeout=15_000)
