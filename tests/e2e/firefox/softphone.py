"""Steps the Firefox tests share: the softphone page (gateway/static) in headless Firefox ESR, as
tests/e2e/softphone/test_browser_phone.py's for Chromium, and the check of Firefox's fake microphone (a
continuous 1 kHz sine, peers/firefox.py FAKE_MIC_HZ) in a desk phone's recording.

The page's own audio is measured by recording what its ``<audio id="remote-audio">`` plays
(``FirefoxPage.expect_hears``): headless Firefox without a sound server has no running AudioContext, so
the page's level meters stay at 0 there.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from gateway.app import Gateway
from peers.audio import read_wav, rms, tone_ratio
from peers.firefox import FAKE_MIC_HZ, FirefoxPage
from peers.phone import DeskPhone
from tests.e2e.harness import ALICE_SECRET, web_media_moved
from tests.e2e.softphone.test_softphone_ice_restart import ICE  # the page's ICE, read in either browser

PHONE_HZ = 440.0  # the desk phones' tone (DeskPhone(tone=440))


async def logged_in(
    page: FirefoxPage, gateway: Gateway, user: str = "alice", secret: str = ALICE_SECRET
) -> None:
    """The page opened on the gateway (at localhost) and logged in."""
    await page.goto(gateway.http_url + "/")
    await page.fill("#login-user", user)
    await page.fill("#login-secret", secret)
    await page.click("#login-button")
    await page.wait_for_text("#status", "Registered as Alice", timeout=15)


async def page_calls(page: FirefoxPage, phone: DeskPhone, number: str) -> int:
    """The page dials ``number`` (answered by ``phone``); the phone's call number once the call is
    connected on both sides and the page hears the phone's tone."""
    await page.fill("#number", number)
    await page.click("#call-button")
    await page.wait_for_text("#call-state", "Connected", timeout=15)
    at = int((await phone.wait_for("incoming"))["call"])
    await phone.wait_for("state", call=at, state="CONFIRMED")
    await page.expect_hears(PHONE_HZ)
    return at


async def phone_calls_page(page: FirefoxPage, phone: DeskPhone, sip_address: tuple[str, int]) -> int:
    """The phone calls alice (1001), the page rings and answers; the phone's call number once both are
    up and the page hears the phone's tone."""
    host, port = sip_address
    number = await phone.call(f"sip:1001@{host}:{port}")
    await page.wait_for_visible("#incoming")
    await page.click("#answer-button")
    await page.wait_for_text("#call-state", "Connected", timeout=15)
    await phone.wait_for("state", call=number, state="CONFIRMED")
    await page.expect_hears(PHONE_HZ)
    return number


def firefox_blocks(wav: Path, *, last: float | None = None) -> tuple[int, int]:
    """(100 ms blocks of ``wav`` (its last ``last`` seconds) that carry Firefox's 1 kHz, loud blocks)."""
    rate, samples = read_wav(wav)
    if last is not None:
        samples = samples[-int(last * rate) :]
    size = rate // 10
    blocks = [samples[i : i + size] for i in range(0, len(samples) - size + 1, size)]
    loud = [block for block in blocks if rms(block) > 300]
    tone = [block for block in loud if tone_ratio(block, rate, FAKE_MIC_HZ) >= 0.5]
    return len(tone), len(loud)


def assert_phone_heard_firefox(wav: Path, *, seconds: float = 1.0, last: float | None = None) -> None:
    """At least ``seconds`` of ``wav`` (in its ``last`` seconds) is Firefox's 1 kHz, and at least two
    thirds of its loud blocks are (a starved phone's clicks make a few others under load)."""
    tone, loud = firefox_blocks(wav, last=last)
    where = f"the last {last} s of {wav}" if last is not None else str(wav)
    assert tone >= seconds * 10 and 3 * tone >= 2 * loud, (
        f"{where}: {tone} of {loud} loud 100 ms blocks are Firefox's {FAKE_MIC_HZ:g} Hz"
    )


async def ice(page: FirefoxPage) -> dict[str, Any]:
    found: dict[str, Any] = await page.evaluate(ICE)
    return found


async def moved(page: FirefoxPage, gateway: Gateway, before: dict[str, Any]) -> dict[str, Any]:
    """After an ICE restart: the page on a pair of the new session (the gateway's new ufrag in its remote
    description), the gateway sending its media there; the page's ICE then."""

    async def pair() -> str | None:
        now = await ice(page)
        fresh = now["remote"] != before["remote"] and now["state"] == "connected"
        return str(now["pair"]) if fresh and now["pair"] else None

    await web_media_moved(gateway, pair, before["pair"])
    return await ice(page)


async def phone_receives(phone: DeskPhone, call: int, packets: int = 100, timeout: float = 10.0) -> None:
    """Poll until the phone has received ``packets`` more RTP packets of ``call`` than now (100: two
    seconds of 20 ms audio), so that its recording holds that much of what was sent."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    first = int((await phone.rtp(call))["received"])
    while True:
        now = int((await phone.rtp(call))["received"])
        if now >= first + packets:
            return
        if loop.time() > deadline:
            raise AssertionError(f"the phone received {now - first} of {packets} RTP packets in {timeout} s")
        await asyncio.sleep(0.1)
