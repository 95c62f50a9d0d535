"""The whole path of the issue: headless Chromium on the softphone page, logged in as alice, a real Kamailio
registrar/proxy and real pjsua2 desk phones registered there; the gateway registers alice's SIP identity
(1001, with pbx_auth) at Kamailio.

* The page calls 2000 through Kamailio: the phone's recording holds the beeps of Chromium's fake
  microphone (400 Hz, found by their strongest frequency), the page hears the phone's 440 Hz (Goertzel on
  an AnalyserNode of the remote stream), keypad digits reach the phone as DTMF, the call timer counts
  from `connected`, the page hangs up and the state line reads just "No call".
* The page calls 2000 again and the phone hangs up: the page reads "The other side hung up" (no error).
* 2000 calls alice's address of record at Kamailio: the page rings, answers, audio both ways as above,
  the phone hangs up: the page reads "The other side hung up".
* Busy (2001 answers 486), no such user (Kamailio: 404) and offline (2003 is known to Kamailio but not
  registered: 480) reach the page as readable messages.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from gateway.app import Gateway
from peers.demo import require_desk_phone
from peers.kamailio import Kamailio, running_kamailio
from peers.phone import DeskPhone
from sipcore import RegState
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway
from tests.e2e.page_audio import assert_phone_heard_the_browser, expect_page_hears
from tests.signaling.browser import Page, chromium_page, expect, log_in

PHONE_HZ = 440.0
ALICE_AOR = "sip:1001@127.0.0.1"


def registered_phone(tmp_path: Path, kamailio: Kamailio, user: str, **options: Any) -> DeskPhone:
    return DeskPhone(
        tmp_path,
        user=user,
        register=kamailio.registrar,
        password=kamailio.users[user],
        **options,
    )


async def dial(page: Page, number: str) -> None:
    await page.locator("#number").fill(number)
    await page.get_by_role("button", name="Call", exact=True).click()


async def expect_page_hears_the_phone(page: Page) -> None:
    # five windows: the first packets may take a moment through the jitter buffer
    await expect_page_hears(page, PHONE_HZ, share=0.8, level=0.0)


async def expect_no_call(page: Page) -> None:
    await expect(page.locator("#call-state")).to_have_text("No call", timeout=10000)
    await expect(page.locator("#call-timer")).to_be_hidden()
    await expect(page.locator(".call-line")).to_have_text("No call")  # no last duration lingering


async def start(gateway: Gateway, page: Page, phones: list[DeskPhone]) -> None:
    for phone in phones:
        await phone.wait_for("registered", code=200)
    assert gateway.sip is not None
    await gateway.sip.registrations.wait_for(ALICE_AOR, RegState.REGISTERED)
    await page.goto(gateway.http_url + "/")
    await log_in(page, "alice", ALICE_SECRET)
    await expect(page.locator("#status")).to_have_text("Registered as Alice")


async def test_softphone_page_and_desk_phones_through_kamailio(tmp_path: Path) -> None:
    require_desk_phone()
    with running_kamailio(tmp_path, users={"1001": "pw1001"}) as kamailio:
        config = gateway_config(kamailio.address, register=True, alice_auth=("1001", "pw1001"))
        async with (
            registered_phone(tmp_path, kamailio, "2000", tone=PHONE_HZ) as phone,
            registered_phone(tmp_path, kamailio, "2001", answer="busy") as busy_phone,
            running_gateway(config) as gateway,
            chromium_page() as page,
        ):
            await start(gateway, page, [phone, busy_phone])
            timer = page.locator("#call-timer")
            await expect(timer).to_be_hidden()

            # 1. the page calls 2000 through Kamailio; the page hangs up
            await dial(page, "2000")
            await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
            incoming = await phone.wait_for("incoming")
            await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
            await expect(timer).to_have_text("0:02", timeout=3500)  # counting from `connected`
            await expect_page_hears_the_phone(page)
            for key in "1", "5", "#":
                await page.locator(f'#dialpad button[data-key="{key}"]').click()
                await phone.wait_for("dtmf", digit=key)
            await asyncio.sleep(1.0)
            await page.get_by_role("button", name="Hang up").click()
            await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
            await expect_no_call(page)
            await expect(page.get_by_role("alert")).to_be_hidden()
            assert_phone_heard_the_browser(await phone.wait_for_recording(incoming["call"]))

            # 2. the page calls 2000 again; the phone hangs up
            await dial(page, "2000")
            await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
            incoming = await phone.wait_for("incoming")
            await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
            await expect_page_hears_the_phone(page)
            await phone.hangup(incoming["call"])
            await expect_no_call(page)
            await expect(page.locator("#notice")).to_have_text("The other side hung up.")

            # 3. 2000 calls alice's address of record at Kamailio; the page answers; the phone hangs up
            number = await phone.call(kamailio.aor("1001"))
            await expect(page.get_by_role("alertdialog")).to_contain_text("Incoming call from", timeout=10000)
            await page.get_by_role("button", name="Answer").click()
            await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
            await expect(timer).to_have_text("0:01", timeout=2500)
            await phone.wait_for("state", call=number, state="CONFIRMED")
            await expect_page_hears_the_phone(page)
            await asyncio.sleep(1.0)
            await phone.hangup(number)
            await expect_no_call(page)
            await expect(page.locator("#notice")).to_have_text("The other side hung up.")
            assert_phone_heard_the_browser(await phone.wait_for_recording(number))

            # 4. busy, no such user, offline: readable messages
            for to, text in (
                ("2001", "The line is busy. (SIP 486)"),
                ("7777", "That number does not exist. (SIP 404)"),
                ("2003", "The person is not available. (SIP 480)"),
            ):
                await dial(page, to)
                await expect(page.get_by_role("alert")).to_have_text(text, timeout=10000)
                await expect_no_call(page)
            assert gateway._health_details()["calls"] == 0
