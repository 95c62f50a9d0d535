"""Issue 16 on the softphone page, in headless Chromium against a whole gateway with no PBX: alice and bob
are two pages (calls between web users go through the gateway itself, tests/e2e/softphone/test_web_to_web.py).

- Ringing: bob's page plays the WebAudio ringtone (a tone on the page's audio graph, measured), shows the
  caller, changes the title and favicon, and shows a notification with Answer and Reject (permission
  granted); alice's page plays ringback while bob's rings, and stops when he answers.
- Contacts and presence (GET /contacts), click-to-call; the history (missed, answered) and redial.
- Errors in plain words with a hint, gone at the next action; /docs, /favicon.ico; 360 px; axe-core.
Screenshots go to each test's tmp_path.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from peers.softphones import axe_script
from tests.e2e.harness import ALICE_SECRET, running_gateway
from tests.e2e.softphone.test_web_to_web import no_pbx_config, two_users
from tests.signaling.browser import Page, chromium_page, expect, read_meter


async def tone(page: Page, name: str, timeout: float = 8.0) -> float:
    """The loudest level of the page's tone `name` over a few cadences (0 when another plays)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    loudest = 0.0
    while loop.time() < deadline:
        playing, level = await page.evaluate(
            "[window.softphone.tones.playing, window.softphone.tones.level()]"
        )
        if playing == name:
            loudest = max(loudest, float(level))
            if loudest > 0.02:
                break
        await asyncio.sleep(0.05)
    return loudest


async def notifications(page: Page) -> list[dict[str, object]]:
    return list(
        await page.evaluate(
            """async () => {
                const registration = await navigator.serviceWorker.getRegistration("/static/");
                if (!registration) return [];
                const shown = await registration.getNotifications();
                return shown.map((n) => ({title: n.title, body: n.body, actions: n.actions.map((a) => a.action)}));
            }"""
        )
    )


async def test_ringing_ringback_notification_and_history(tmp_path: Path) -> None:
    # the desktop browser: the headless shell shows no notifications
    async with running_gateway(no_pbx_config()) as gateway, two_users(gateway, full=True) as (alice, bob):
        # Chromium 156: a grant replaces the origin's grants, so the microphone goes with it (else denied)
        await bob.context.grant_permissions(["microphone", "notifications"], origin=gateway.http_url)
        # contacts with presence: bob is online, and alice calls him with a click
        contact = alice.locator('#contacts li[data-user="bob"]')
        await expect(contact.locator(".presence-text")).to_have_text("online", timeout=15000)
        await alice.get_by_role("button", name="Call Bob").click()

        await expect(bob.get_by_role("alertdialog")).to_contain_text(
            "Incoming call from Alice", timeout=10000
        )
        assert await tone(bob, "ringtone") > 0.02, "no ringtone on bob's audio graph"
        assert (await bob.title()).startswith("Incoming call: Alice")
        assert (await bob.locator("#favicon").get_attribute("href")) == "/static/favicon-ringing.svg"
        await expect(alice.locator("#call-state")).to_have_text("Ringing…", timeout=10000)
        assert await tone(alice, "ringback") > 0.02, "no ringback while bob's page rings"
        for _ in range(50):
            shown = await notifications(bob)
            if shown:
                break
            await asyncio.sleep(0.1)
        assert shown and shown[0]["title"] == "Incoming call" and shown[0]["actions"] == ["answer", "reject"]
        await bob.screenshot(path=str(tmp_path / "bob-ringing.png"), full_page=True)
        await alice.screenshot(path=str(tmp_path / "alice-ringback.png"), full_page=True)

        await bob.get_by_role("button", name="Answer", exact=True).click()
        for page in alice, bob:
            await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
        assert await bob.evaluate("window.softphone.tones.playing") is None
        assert await alice.evaluate("window.softphone.tones.playing") is None
        assert await bob.title() == "Softphone · SIP-to-WebRTC gateway"
        assert await notifications(bob) == []
        await alice.get_by_role("button", name="Hang up").click()
        await expect(bob.locator("#call-state")).to_have_text("No call", timeout=10000)

        # a call bob lets ring out (alice gives up): missed, with a badge; he calls back from the history
        await alice.locator("#number").fill("bob")
        await alice.get_by_role("button", name="Call", exact=True).click()
        await expect(bob.get_by_role("alertdialog")).to_be_visible(timeout=10000)
        await bob.get_by_role("button", name="Ignore").click()  # silenced here: still ringing for alice
        await expect(bob.get_by_role("alertdialog")).to_be_hidden()
        await expect(alice.locator("#call-state")).to_have_text("Ringing…")
        await alice.get_by_role("button", name="Hang up").click()
        missed = bob.locator("#history li").first
        await expect(missed).to_contain_text("Missed", timeout=10000)
        await expect(bob.locator("#missed-badge")).to_have_text("1 missed")
        await expect(bob.locator("#history li").nth(1)).to_contain_text("Incoming")
        await bob.screenshot(path=str(tmp_path / "bob-history.png"), full_page=True)
        await missed.get_by_role("button").click()  # Call back
        await expect(alice.get_by_role("alertdialog")).to_contain_text(
            "Incoming call from Bob", timeout=10000
        )
        await alice.get_by_role("button", name="Reject").click()
        await expect(bob.locator("#call-state")).to_have_text("No call", timeout=10000)
        await expect(bob.get_by_role("alert")).to_have_text("The call was declined. (SIP 603)")
        # the next action clears the stale error
        await bob.locator("#number").fill("1001")
        await bob.get_by_role("button", name="Call", exact=True).click()
        await expect(bob.get_by_role("alert")).to_be_hidden()
        await bob.get_by_role("button", name="Hang up").click()


async def test_plain_errors_docs_favicon_small_screen_and_accessibility(tmp_path: Path) -> None:
    async with running_gateway(no_pbx_config()) as gateway, chromium_page() as page:
        async with aiohttp.ClientSession() as http, http.get(gateway.http_url + "/favicon.ico") as response:
            assert response.status == 200 and response.content_type == "image/svg+xml"
            assert b"<svg" in await response.read()
        await page.set_viewport_size({"width": 360, "height": 740})
        await page.goto(gateway.http_url + "/")
        axe = axe_script()
        await check_accessibility(page, axe, "login")
        # keyboard only: Tab to the fields, Enter logs in
        await page.keyboard.press("Tab")
        await page.keyboard.type("alice")
        await page.keyboard.press("Tab")
        await page.keyboard.type(ALICE_SECRET)
        await page.keyboard.press("Enter")
        await expect(page.locator("#status")).to_have_text("Registered as Alice")
        await expect(page.locator("#contacts-panel")).to_be_visible(timeout=10000)
        # typed digits go to the number field from anywhere on the page
        await page.locator("body").click(position={"x": 5, "y": 5})
        await page.keyboard.type("12")
        await expect(page.locator("#number")).to_have_value("12")

        await page.locator("#number").fill("a b")  # neither a number nor an address
        await page.get_by_role("button", name="Call", exact=True).click()
        await expect(page.get_by_role("alert")).to_have_text("That is not a number or address you can call.")
        await expect(page.locator("#error-hint")).to_contain_text("Dial digits")
        await page.screenshot(path=str(tmp_path / "phone-360.png"), full_page=True)
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"the page scrolls sideways at 360 px ({width} px wide)"
        await check_accessibility(page, axe, "phone")

        # audio settings: the microphone test's meter moves (the fake microphone beeps), the choices stay
        await page.get_by_text("Audio settings").click()
        await expect(page.locator("#speaker-row")).to_be_visible()  # Chromium has setSinkId
        await expect(page.locator("#mic-select option")).not_to_have_count(1)  # the fake microphone listed
        await page.get_by_label("Echo cancellation").uncheck()
        await page.get_by_label("Call volume").fill("0.5")
        await page.get_by_role("button", name="Test microphone").click()
        assert await read_meter(page, "test-level", 0.02) >= 0.02, "the microphone test shows no level"
        await page.screenshot(path=str(tmp_path / "audio-settings.png"), full_page=True)
        await page.get_by_role("button", name="Stop test").click()
        saved = await page.evaluate("JSON.parse(localStorage.getItem('gateway.audio-settings'))")
        assert saved["echoCancellation"] is False and saved["volume"] == 0.5, saved
        assert await page.evaluate("document.getElementById('remote-audio').volume") == 0.5
        await page.get_by_role("button", name="Log out").click()
        await expect(page.get_by_role("alert")).to_be_hidden()  # logging out clears the stale error

        # the footer's HTTP API link: /docs rendered from /openapi.json by the gateway's own script
        await page.set_viewport_size({"width": 1280, "height": 800})
        await page.get_by_role("link", name="HTTP API").click()
        await expect(page).to_have_url(gateway.http_url + "/docs")
        await expect(page.locator("#docs-paths")).to_contain_text("/contacts")
        await expect(page.locator("#docs-paths")).to_contain_text("/webrtc/offer")
        await page.screenshot(path=str(tmp_path / "docs.png"), full_page=True)
        await check_accessibility(page, axe, "docs")


async def check_accessibility(page: Page, axe: str, name: str) -> None:
    """axe-core (WCAG 2.0/2.1 A and AA rules) finds no serious or critical violation on the page."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.evaluate(axe)
    result = await page.evaluate(
        """async () => {
            const result = await axe.run(document, {runOnly: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]});
            return result.violations.map((v) => ({id: v.id, impact: v.impact,
                                                  nodes: v.nodes.map((n) => n.target.join(" "))}));
        }"""
    )
    serious = [v for v in result if v["impact"] in ("serious", "critical")]
    assert serious == [], f"axe-core on the {name} page: {serious}"
