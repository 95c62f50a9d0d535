"""The softphone page (gateway/static) in headless Firefox ESR, logged in as alice, with real pjsua2 desk
phones through a whole gateway: Firefox's own WebRTC stack and SDP (mids "0", a=ssrc lines, its extmap
ids, a=setup:actpass, rtcp candidates beside rtcp-mux) on the web leg, as
tests/e2e/softphone/test_browser_phone.py and its neighbours check for Chromium.

One Firefox, one gateway and two phones serve the whole walk, to keep the suite fast (a Firefox start
costs about 4.5 CPU-seconds):

- the page calls phone A: connected, the page hears A's 440 Hz, keypad DTMF reaches A once per key,
  Hold and Resume (A sees the hold), chat both ways on the call's data channel, a reload takes the call
  back (the phone sees no BYE), hang up; A's recording holds Firefox's 1 kHz tone before and after the
  reload;
- A calls alice: the page rings, answers, hears A; A hangs up and the page says so;
- the page calls A again and transfers it blind to B (2001): A calls B, the page's call ends quietly.
"""

from __future__ import annotations

from pathlib import Path

from peers.demo import require_desk_phone
from peers.firefox import FirefoxPage, firefox_page
from peers.phone import DeskPhone
from peers.ports import free_range
from tests.e2e.firefox.softphone import (
    PHONE_HZ,
    assert_phone_heard_firefox,
    ice,
    logged_in,
    moved,
    page_calls,
    phone_calls_page,
)
from tests.e2e.harness import running_gateway, wait_until
from tests.e2e.sip_interop.test_transfer import DOMAIN, both_phones_config


async def chat_both_ways(page: FirefoxPage, phone: DeskPhone, number: int, tag: str) -> None:
    """The phone's MESSAGE shows in the page's chat; a line typed in the page reaches the phone and
    shows "delivered" once the phone answered 200."""
    await page.wait_for_function("() => !document.getElementById('chat-text').disabled")
    await phone.send("message", call=number, body=f"Hello Firefox ({tag}) ☎")
    await page.wait_for_text("#chat-log", f"Hello Firefox ({tag}) ☎", contains=True)
    assert (await phone.wait_for("message_status", call=number))["code"] == 200

    await page.fill("#chat-text", f"Hello phone ({tag})")
    await page.click("#chat-button")
    got = await phone.wait_for("message", call=number)
    assert got["body"] == f"Hello phone ({tag})" and got["content_type"].startswith("text/plain"), got
    await page.wait_for_text("#chat-log li.mine:last-child", "delivered", contains=True)


async def test_firefox_softphone_calls_holds_chats_reloads_and_transfers(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=PHONE_HZ) as phone_a,
        DeskPhone(tmp_path, user="2001", host=DOMAIN, port=5060, tone=880) as phone_b,
        running_gateway(both_phones_config(phone_a, free_range())) as gateway,
        firefox_page() as page,
    ):
        await logged_in(page, gateway)

        # the page calls A
        at = await page_calls(page, phone_a, phone_a.uri)
        await page.click("#hold-button")
        await phone_a.wait_for("media", call=at, status="remote_hold", timeout=10)
        await page.wait_for_text("#call-state", "On hold")
        await page.click("#hold-button")  # now "Resume"
        await phone_a.wait_for("media", call=at, status="active", timeout=10)
        await page.wait_for_text("#call-state", "Connected")

        await chat_both_ways(page, phone_a, at, "called")

        await page.reload()
        await page.wait_for_text("#status", "Registered as Alice", timeout=15)
        await page.wait_for_text("#call-state", "Connected", timeout=15)
        assert not phone_a.seen("state", call=at, state="DISCONNECTED")
        await page.expect_hears(PHONE_HZ)

        # a network change (offline, online): the page restarts ICE on the call's RTCPeerConnection, the
        # gateway answers with new credentials of its own, media moves to the new pair, the call goes on
        before = await ice(page)
        assert before["state"] == "connected" and before["pair"], before
        await page.evaluate(
            """() => {
                window.firstPc = window.softphone.call.pc;
                window.dispatchEvent(new Event('offline'));
                window.dispatchEvent(new Event('online'));
            }"""
        )
        after = await moved(page, gateway, before)
        assert await page.evaluate("() => window.softphone.call.pc === window.firstPc"), "reattached"
        assert after["id"] == before["id"] and after["local"] != before["local"], (before, after)
        await page.wait_for_text("#call-state", "Connected")
        assert gateway.driver.calls == 1
        await page.expect_hears(PHONE_HZ)

        # keypad DTMF last: a re-INVITE (hold) while a digit's packets still flow makes pjsua, whose
        # stream starts anew, report that digit again
        for key in "5", "9":
            await page.click(f'#dialpad button[data-key="{key}"]')
            await phone_a.wait_for("dtmf", call=at, digit=key)
        await page.wait_for_text("#dtmf-sent", "Sent 59")
        await page.click("#hangup-button")
        await phone_a.wait_for("state", call=at, state="DISCONNECTED")
        await page.wait_for_text("#call-state", "No call")
        wav = await phone_a.wait_for_recording(at)
        assert_phone_heard_firefox(wav, seconds=2.0)
        assert_phone_heard_firefox(wav, last=1.5, seconds=1.0)  # after the reload and the ICE restart
        assert [e["digit"] for e in phone_a.seen("dtmf", call=at)] == ["5", "9"]  # once each

        # A calls alice
        number = await phone_calls_page(page, phone_a, gateway.sip_address)
        await phone_a.hangup(number)
        await page.wait_for_text("#call-state", "No call", timeout=10)
        await page.wait_for_text("#notice", "The other side hung up.")
        assert_phone_heard_firefox(await phone_a.wait_for_recording(number), seconds=0.5)

        # the page calls A again and transfers it to B
        at = await page_calls(page, phone_a, phone_a.uri)
        await page.fill("#transfer-to", "2001")
        await page.click("#transfer-button")
        request = await phone_a.wait_for("transfer_request", call=at)
        assert request["to"].strip("<>").startswith(f"sip:2001@{DOMAIN}"), request
        at_b = int((await phone_b.wait_for("incoming"))["call"])
        await phone_b.wait_for("state", call=at_b, state="CONFIRMED")
        await page.wait_for_text("#call-state", "No call", timeout=15)
        assert not await page.visible("#error")
        await wait_until(lambda: gateway._health_details()["calls"] == 0, timeout=10)
        await phone_b.hangup(at_b)
