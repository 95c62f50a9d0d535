"""Headless Chromium (driven by Playwright) uses the softphone page served by the gateway's app.

The app runs with the in-memory fake call service; the page, its JS client library, the WebSocket
protocol and Chromium's real WebRTC stack (offer, trickled candidates) are all real. Under CI=true a
missing chromium or playwright fails the test; elsewhere it skips.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestServer

from gateway.calls.boundary.caller import CallerDetails
from gateway.signaling.events import Connected, Ended, Held, Incoming, Resumed, Ringing, Transfer
from gateway.signaling.session_loop import SOCKETS_KEY
from tests.signaling.browser import Page, chromium_page, expect, read_meter, wait_for
from tests.signaling.browser import log_in as fill_login
from tests.signaling.harness import ALICE_SECRET, FAILING_NUMBER, Harness, make_harness

SCREENSHOTS = os.environ.get("SIGNALING_SCREENSHOTS", "/tmp")


@pytest.fixture
async def served() -> AsyncIterator[tuple[Harness, str]]:
    harness = make_harness()
    server = TestServer(harness.app, host="127.0.0.1")
    await server.start_server()
    yield harness, str(server.make_url("/"))
    await server.close()


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    async with chromium_page() as page:
        yield page


async def log_in(page: Page, secret: str) -> None:
    await fill_login(page, "alice", secret)


async def test_softphone_in_chromium(served: tuple[Harness, str], page: Page) -> None:
    harness, url = served
    await page.goto(url)
    await expect(page).to_have_title("Softphone · SIP-to-WebRTC gateway")
    await expect(page.locator("#status")).to_have_text("Offline")

    # A wrong secret: a readable error, still on the login form.
    await log_in(page, "not-the-secret")
    await expect(page.get_by_role("alert")).to_have_text("Wrong user id or secret.")
    await expect(page.locator("#login-panel")).to_be_visible()

    # The demo user alice logs in: registered state, identity shown.
    await log_in(page, ALICE_SECRET)
    await expect(page.locator("#status")).to_have_text("Registered as Alice (demo)")
    await expect(page.locator("#identity")).to_contain_text("sip:1001@127.0.0.1")
    await expect(page.get_by_role("alert")).to_be_hidden()
    await page.screenshot(path=f"{SCREENSHOTS}/softphone-1280.png", full_page=True)
    session = next(iter(harness.calls.sessions.values()))

    # Dialling a number the (fake) call layer refuses: its message, readably.
    for key in FAILING_NUMBER:
        await page.locator(f"#dialpad button[data-key='{key}']").click()
    await expect(page.locator("#number")).to_have_value(FAILING_NUMBER)
    await page.get_by_role("button", name="Call", exact=True).click()
    await expect(page.get_by_role("alert")).to_have_text("the number 666 is not in service")
    await expect(page.get_by_role("button", name="Call", exact=True)).to_be_enabled()

    # A call that goes out: Chromium's real offer and trickled candidates reach the call service.
    await page.locator("#number").fill("2000")
    await page.get_by_role("button", name="Call", exact=True).click()
    await expect(page.locator("#call-state")).to_have_text("Calling…")
    dial = next(args for name, args in harness.calls.calls if name == "dial")
    assert dial[1] == "2000" and dial[2].startswith("v=0") and "a=ice-ufrag:" in dial[2]
    await wait_for(lambda: any(name == "ice" for name, _ in harness.calls.calls))
    await session.send_event(Ringing("c1"))
    await expect(page.locator("#call-state")).to_have_text("Ringing…")
    await expect(page.get_by_role("button", name="Hang up")).to_be_enabled()
    await session.send_event(Ended("c1", "busy", "Busy Here", 486))
    await expect(page.get_by_role("alert")).to_have_text("The line is busy. (SIP 486)")
    await expect(page.locator("#call-state")).to_have_text("No call")

    # A call that is answered: duration, DTMF from the keypad, mute, hold and resume, hang up.
    await page.locator("#number").fill("2001")
    await page.get_by_role("button", name="Call", exact=True).click()
    await expect(page.locator("#call-state")).to_have_text("Calling…")
    await expect(page.locator("#call-timer")).to_be_hidden()  # no duration before `connected`
    await session.send_event(Connected("c2"))
    await expect(page.locator("#call-state")).to_have_text("Connected")
    await expect(page.locator("#call-timer")).to_have_text("0:01", timeout=5000)
    await page.locator("#dialpad button[data-key='5']").click()
    await wait_for(lambda: ("dtmf", ("c2", "5", None)) in harness.calls.calls)
    # The fake microphone beeps: the AnalyserNode meter moves.
    level = await read_meter(page, "mic-level", 0.01)
    assert level >= 0.01, f"the microphone meter did not move ({level})"
    mute = page.locator("#mute-button")
    await mute.click()
    await expect(mute).to_have_attribute("aria-pressed", "true")
    await expect(mute).to_have_text("Unmute")
    await page.get_by_role("button", name="Hold").click()
    await wait_for(lambda: ("hold", "c2") in harness.calls.calls)
    await session.send_event(Held("c2", "local"))
    await expect(page.locator("#call-state")).to_have_text("On hold")
    await page.screenshot(path=f"{SCREENSHOTS}/softphone-in-call-1280.png", full_page=True)
    await page.get_by_role("button", name="Resume").click()
    await wait_for(lambda: ("resume", "c2") in harness.calls.calls)
    await session.send_event(Resumed("c2", "local"))
    await expect(page.locator("#call-state")).to_have_text("Connected")
    # Blind transfer: the page asks for it, shows how it goes; a refused one leaves the call up.
    await page.get_by_placeholder("Transfer to…").fill("2003")
    await page.get_by_role("button", name="Transfer", exact=True).click()
    await wait_for(lambda: ("transfer", ("c2", "2003", None)) in harness.calls.calls)
    await session.send_event(Transfer("c2", "accepted", 202))
    await expect(page.locator("#transfer-status")).to_have_text("Transfer accepted…")
    await session.send_event(Transfer("c2", "failed", 486, "Busy Here"))
    await expect(page.locator("#transfer-status")).to_have_text(
        "Transfer failed: the call goes on. (SIP 486)"
    )
    await expect(page.locator("#call-state")).to_have_text("Connected")
    await page.get_by_role("button", name="Hang up").click()
    await wait_for(lambda: ("hangup", "c2") in harness.calls.calls)
    await expect(page.locator("#call-state")).to_have_text("No call")
    await expect(page.locator("#call-timer")).to_be_hidden()  # the last duration does not linger
    await expect(page.locator(".call-line")).to_have_text("No call")
    await expect(page.get_by_role("alert")).to_be_hidden()

    # An incoming call rings with the caller's name; Reject declines it (603).
    await session.send_event(Incoming("c77", "sip:2000@127.0.0.1", "Desk phone"))
    await expect(page.get_by_role("alertdialog")).to_contain_text(
        "Incoming call from Desk phone (2000)"  # one name per party (issue 39): never the raw URI
    )
    await page.get_by_role("button", name="Reject").click()
    await wait_for(lambda: ("reject", ("c77", 603)) in harness.calls.calls)
    await expect(page.get_by_role("alertdialog")).to_be_hidden()

    # A diverted call: the PBX's asserted identity is shown, and where the call was forwarded from.
    details = CallerDetails(
        "sip:+15551230100@pbx", "Carol Jones", (("sip:5551000@pbx", "unconditional"), ("sip:1002@pbx", None))
    )
    await session.send_event(Incoming("c78", "sip:100@pbx", "Front Desk", None, details))
    await expect(page.get_by_role("alertdialog")).to_contain_text(
        "Incoming call from Carol Jones (+15551230100), forwarded from 5551000"
    )
    await page.get_by_role("button", name="Reject").click()
    await wait_for(lambda: ("reject", ("c78", 603)) in harness.calls.calls)
    await expect(page.get_by_role("alertdialog")).to_be_hidden()

    # The same page at 360 px wide.
    await page.set_viewport_size({"width": 360, "height": 740})
    await page.screenshot(path=f"{SCREENSHOTS}/softphone-360.png", full_page=True)
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, f"the page scrolls sideways at 360 px ({width} px wide)"

    # The gateway drops the socket: the client reconnects and logs in again with its session token.
    await harness.app[SOCKETS_KEY].close_all()
    await wait_for(lambda: harness.calls.closed == [session.id])
    await wait_for(lambda: len(harness.calls.sessions) == 2)
    await expect(page.locator("#status")).to_have_text("Registered as Alice (demo)")
    await expect(page.locator("#phone-panel")).to_be_visible()
    second = next(s for s in harness.calls.sessions.values() if s.id != session.id)

    # Logging out closes the socket: the call service hears the session close.
    await page.get_by_role("button", name="Log out").click()
    await expect(page.locator("#login-panel")).to_be_visible()
    await wait_for(lambda: harness.calls.closed == [session.id, second.id])


async def test_login_page_at_360(served: tuple[Harness, str], page: Page) -> None:
    _, url = served
    await page.set_viewport_size({"width": 360, "height": 640})
    await page.goto(url)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("alert")).to_have_text("Enter your user id and secret.")
    await page.screenshot(path=f"{SCREENSHOTS}/softphone-login-360.png", full_page=True)
