"""A page reload mid-call keeps the call (web_auth.reconnect_grace): headless Chromium on the softphone page
calls a pjsua2 desk phone, asks "leave page?" while the call is up, reloads, logs in again with its saved
token and takes the call back with a new RTCPeerConnection. Audio both ways after the reload: the page
hears the phone's 440 Hz, the phone's recording ends with the page's fake-microphone beeps. The phone
sees no BYE until the page hangs up; with no call up, a reload asks nothing. A Hang up while the page's
socket is down reaches the phone once the page is back."""

from __future__ import annotations

import asyncio
from pathlib import Path

from playwright.async_api import Dialog, Page

from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway
from tests.e2e.page_audio import assert_beeps, page_tone
from tests.e2e.softphone.test_browser_phone import page_calls_phone
from tests.signaling.browser import chromium_page, expect, log_in, read_meter


async def test_reload_mid_call_gets_the_call_back_with_audio_both_ways(tmp_path: Path) -> None:
    require_desk_phone()
    async with DeskPhone(tmp_path, user="2000", tone=440) as phone:
        config = gateway_config(phone.address, media={"rtp_ports": {"start": 36800}})
        async with running_gateway(config) as gateway, chromium_page() as page:
            dialogs: list[str] = []

            async def leave(dialog: Dialog) -> None:
                dialogs.append(dialog.type)
                await dialog.accept()

            page.on("dialog", leave)
            await page.goto(gateway.http_url + "/")
            await log_in(page, "alice", ALICE_SECRET)
            await expect(page.locator("#status")).to_have_text("Registered as Alice")
            incoming = await page_calls_phone(page, phone)
            number = incoming["call"]

            await page.reload()
            assert dialogs == ["beforeunload"], dialogs  # "leave page?" while the call is up
            await expect(page.locator("#status")).to_have_text("Registered as Alice", timeout=15000)
            await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
            assert not phone.seen("state", call=number, state="DISCONNECTED")
            assert await read_meter(page, "remote-level", 0.02) >= 0.02, "no sound after the reload"
            heard, level = await page_tone(page, 440.0)
            assert heard >= 0.5 and level >= 0.01, f"the phone's 440 Hz after the reload: {heard=} {level=}"
            await expect(page.locator("#call-timer")).to_be_visible()
            await asyncio.sleep(3.0)  # the page's beeps after the reload in the phone's recording
            await page.get_by_role("button", name="Hang up").click()
            await phone.wait_for("state", call=number, state="DISCONNECTED")
            await expect(page.locator("#call-state")).to_have_text("No call")
            wav = await phone.wait_for_recording(number)
            assert_beeps(wav, "the page's beeps after the reload", last=2.5)

            await page.reload()  # no call: no question, and the page logs in again by itself
            await expect(page.locator("#status")).to_have_text("Registered as Alice", timeout=15000)
            assert dialogs == ["beforeunload"], dialogs


async def test_a_hang_up_while_the_socket_is_down_reaches_the_phone(tmp_path: Path) -> None:
    """The page's socket goes (as when its check of the socket gives up under load) and the user hangs up
    before the page has logged in again: the call ends on the page at once, and once the page is back the
    gateway hangs it up (the phone gets BYE). Before, the page's login took the call back: it came alive
    again and the phone never heard the hang up (a CI failure of the page-reload test)."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(gateway_config(phone.address)) as gateway,
        chromium_page() as page,
    ):
        number = await hang_up_with_the_socket_down(page, gateway.http_url, phone)
        await expect(page.locator("#call-state")).to_have_text("No call", timeout=5000)
        await phone.wait_for("state", call=number, state="DISCONNECTED", timeout=15)
        await expect(page.locator("#status")).to_have_text("Registered as Alice", timeout=15000)
        await asyncio.sleep(1.0)  # nothing takes the call back meanwhile
        await expect(page.locator("#call-state")).to_have_text("No call")
        assert gateway.driver.calls == 0, "the gateway still holds the call"


async def test_a_hang_up_while_the_socket_is_down_survives_a_reload(tmp_path: Path) -> None:
    """The page hangs up with its socket down and reloads before it could log in again: the reloaded page,
    logging in with its saved token, hangs the call up (the call's id kept in the tab's sessionStorage)
    instead of taking it back."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(gateway_config(phone.address)) as gateway,
        chromium_page() as page,
    ):
        number = await hang_up_with_the_socket_down(page, gateway.http_url, phone, reconnect=False)
        await asyncio.sleep(1.0)  # no reconnect: the gateway still waits for the page
        assert not phone.seen("state", call=number, state="DISCONNECTED")
        await page.reload()
        await expect(page.locator("#status")).to_have_text("Registered as Alice", timeout=15000)
        await phone.wait_for("state", call=number, state="DISCONNECTED", timeout=15)
        await expect(page.locator("#call-state")).to_have_text("No call")
        assert gateway.driver.calls == 0, "the gateway still holds the call"


async def hang_up_with_the_socket_down(page: Page, url: str, phone: DeskPhone, reconnect: bool = True) -> int:
    """The page logs in and calls the phone; its socket closes and Hang up is clicked before the reconnect
    (0.5 s later, or never: `reconnect` False) is under way. The phone's call number."""
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.goto(url + "/")
    await log_in(page, "alice", ALICE_SECRET)
    await expect(page.locator("#status")).to_have_text("Registered as Alice")
    incoming = await page_calls_phone(page, phone)
    sent = await page.evaluate(
        """(reconnect) => {
            const client = window.softphone.call.client;
            if (!reconnect) client._scheduleReconnect = () => {};
            client._ws.close();
            document.getElementById("hangup-button").click();
            return client.connected;
        }""",
        reconnect,
    )
    assert sent is False, "the socket was still up when Hang up was clicked"
    return int(incoming["call"])
