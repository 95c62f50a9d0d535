"""Issue 39 item 3 on the softphone page, in headless Chromium against a whole gateway with no PBX (alice
and bob on two pages, tests/e2e/softphone/test_web_to_web.py): what a person reads and sees.

- The video controls ("Add video", the Video checkbox and the camera choice) only when the gateway
  carries video (`codecs.video`, told in `registered`).
- DTMF feedback: the digits sent in this call ("Sent 123"), gone when the call ends.
- The other side's hang-up is news in neutral words (a status), not a red error; errors stay alerts.
- One name per party in the incoming banner, the list of calls and the history: bob is "Bob (1002)"
  from the directory whether he called or was dialled as "1002" or "bob"; never a raw SIP URI.
- The "Transfer to…" placeholder is whole (wide and narrow screens); the Video checkbox sits beside its
  label.
- A reload with two calls up gives both back as they were: each listed with who holds it, the one the
  user was talking in current (not the held one), with audio.
Screenshots go to each test's tmp_path.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.e2e.harness import ALICE_SECRET, running_gateway
from tests.e2e.softphone.test_call_waiting import connect
from tests.e2e.softphone.test_web_to_web import no_pbx_config, two_users
from tests.signaling.browser import Page, chromium_page, expect, log_in, read_meter


async def logged_in(page: Page, url: str) -> None:
    await page.goto(url + "/")
    await log_in(page, "alice", ALICE_SECRET)
    await expect(page.locator("#status")).to_have_text("Registered as Alice")


# How much of a field's placeholder its box cuts off (px; 0: none), measured in the field's own font.
CUT_OFF = """(id) => {
    const field = document.getElementById(id);
    const style = getComputedStyle(field);
    const context = document.createElement("canvas").getContext("2d");
    context.font = style.font;
    const room = field.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    return Math.max(0, context.measureText(field.placeholder).width - room);
}"""

# The gap between the checkbox and its label's words (px), and the checkbox's width.
BESIDE = """(id) => {
    const box = document.getElementById(id);
    const words = document.createRange();
    words.selectNodeContents(box.closest("label").lastChild);
    const text = words.getBoundingClientRect();
    const edge = box.getBoundingClientRect();
    return [text.left - edge.right, edge.width];
}"""


async def test_video_controls_only_when_the_gateway_carries_video(tmp_path: Path) -> None:
    async with chromium_page() as page:
        for codecs, shown in (({}, False), ({"video": ["VP8"]}, True)):
            async with running_gateway(no_pbx_config(codecs=codecs)) as gateway:
                await logged_in(page, gateway.http_url)
                controls = (
                    page.get_by_role("checkbox", name="Video"),
                    page.get_by_role("button", name="Add video"),
                    page.get_by_role("combobox", name="Camera"),
                )
                for control in controls:
                    if shown:
                        await expect(control).to_be_visible()
                    else:
                        await expect(control).to_be_hidden()
                await page.screenshot(path=str(tmp_path / f"video-{shown}.png"), full_page=True)


async def test_dtmf_feedback_shows_the_call_s_digits_until_it_ends(tmp_path: Path) -> None:
    async with running_gateway(no_pbx_config()) as gateway, two_users(gateway) as (alice, bob):
        await connect(alice, bob, "1002")
        sent = alice.locator("#dtmf-sent")
        await alice.locator('#dialpad button[data-key="1"]').click()
        await expect(sent).to_have_text("Sent 1")
        await expect(sent).to_have_role("status")  # read out as it changes
        await alice.locator('#dialpad button[data-key="2"]').click()
        await alice.locator("body").click(position={"x": 5, "y": 5})
        await alice.keyboard.type("3#")  # typed keys send DTMF too
        await expect(sent).to_have_text("Sent 123#")
        await alice.screenshot(path=str(tmp_path / "dtmf-in-call.png"), full_page=True)
        await bob.get_by_role("button", name="Hang up").click()
        await expect(alice.locator("#call-state")).to_have_text("No call", timeout=10000)
        await expect(sent).to_be_hidden()
        await alice.screenshot(path=str(tmp_path / "dtmf-after-call.png"), full_page=True)
        await connect(alice, bob, "1002")  # a new call starts with no digits
        await expect(sent).to_be_hidden()
        await alice.get_by_role("button", name="Hang up").click()


async def test_the_other_side_hanging_up_is_no_error(tmp_path: Path) -> None:
    async with running_gateway(no_pbx_config()) as gateway, two_users(gateway) as (alice, bob):
        await connect(alice, bob, "1002")
        await bob.get_by_role("button", name="Hang up").click()
        await expect(alice.locator("#call-state")).to_have_text("No call", timeout=10000)
        notice = alice.locator("#notice")
        await expect(notice).to_have_text("The other side hung up.")
        await expect(notice).to_have_role("status")
        await expect(alice.get_by_role("alert")).to_be_hidden()
        await alice.screenshot(path=str(tmp_path / "remote-hangup.png"), full_page=True)
        # a call the other side declines is still an error, and the old news goes
        await alice.locator("#number").fill("1002")
        await alice.get_by_role("button", name="Call", exact=True).click()
        await expect(notice).to_be_hidden()
        await bob.get_by_role("button", name="Reject").click(timeout=10000)
        await expect(alice.get_by_role("alert")).to_have_text("The call was declined. (SIP 603)")
        await expect(notice).to_be_hidden()


async def test_one_name_per_party_in_the_calls_and_the_history(tmp_path: Path) -> None:
    async with running_gateway(no_pbx_config()) as gateway, two_users(gateway) as (alice, bob):
        bob_is = "Bob (1002)"
        await expect(alice.locator("#contacts li")).to_have_count(1, timeout=10000)
        await connect(bob, alice, "alice")  # from sip:1002@...: the banner names him as the directory does
        await alice.get_by_role("button", name="Hold", exact=True).click()
        await expect(alice.locator("#call-state")).to_have_text("On hold", timeout=10000)
        await alice.locator("#number").fill("1002")
        await alice.get_by_role("button", name="Call", exact=True).click()
        dialog = bob.get_by_role("alertdialog")
        await expect(dialog).to_contain_text("Incoming call from Alice (1001)", timeout=10000)
        await bob.get_by_role("button", name="Answer and hold").click()
        await expect(alice.locator("#call-state")).to_have_text("Connected", timeout=15000)
        listed = alice.get_by_role("list", name="Your calls").get_by_role("listitem")
        await expect(listed).to_have_text(
            [f"{bob_is}: On hold (both sides)Switch", f"{bob_is}: Connectedcurrent"]
        )
        await expect(alice.get_by_role("button", name=f"Switch to the call with {bob_is}")).to_be_visible()
        await alice.screenshot(path=str(tmp_path / "names-call-list.png"), full_page=True)
        for _ in range(2):  # the current call, then the held one (current once the other ends)
            await alice.get_by_role("button", name="Hang up").click()
            await expect(listed).to_have_count(0, timeout=10000)
        await expect(alice.locator("#call-state")).to_have_text("No call", timeout=10000)
        await connect(alice, bob, "bob")
        await alice.get_by_role("button", name="Hang up").click()
        await expect(alice.locator("#call-state")).to_have_text("No call", timeout=10000)

        names = alice.locator("#history li strong")
        await expect(names).to_have_text([bob_is] * 3)
        await expect(alice.get_by_role("button", name=f"Call {bob_is} back")).to_have_count(3)
        assert "sip:" not in await alice.locator("#history").inner_text()
        await alice.screenshot(path=str(tmp_path / "names-history.png"), full_page=True)
        # Call back dials what was dialled ("bob"), and rings him
        await alice.get_by_role("button", name=f"Call {bob_is} back").first.click()
        await expect(bob.get_by_role("alertdialog")).to_contain_text(
            "Incoming call from Alice (1001)", timeout=10000
        )
        await alice.get_by_role("button", name="Hang up").click()


async def test_transfer_field_and_video_checkbox_read_whole(tmp_path: Path) -> None:
    config = no_pbx_config(codecs={"video": ["VP8"]})
    async with running_gateway(config) as gateway, chromium_page() as page:
        await logged_in(page, gateway.http_url)
        for width in 1280, 360:
            await page.set_viewport_size({"width": width, "height": 800})
            transfer = page.get_by_role("textbox", name="Transfer to")
            await expect(transfer).to_have_attribute("placeholder", "Transfer to…")
            assert await page.evaluate(CUT_OFF, "transfer-to") == 0, f"placeholder cut off at {width} px"
            await expect(page.get_by_role("checkbox", name="Video")).to_be_visible()
            gap, size = await page.evaluate(BESIDE, "video-toggle")
            assert 0 <= gap <= 10 and size <= 24, f"the checkbox is {gap} px from its label, {size} px wide"
            await page.screenshot(path=str(tmp_path / f"layout-{width}.png"), full_page=True)


async def test_a_reload_gives_every_kept_call_back_as_it_was(tmp_path: Path) -> None:
    async with running_gateway(no_pbx_config()) as gateway, two_users(gateway) as (alice, bob):
        alice.on("dialog", lambda dialog: dialog.accept())  # "leave page?" while calls are up
        await connect(alice, bob, "1002")
        await alice.get_by_role("button", name="Hold", exact=True).click()
        await expect(alice.locator("#call-state")).to_have_text("On hold", timeout=10000)
        await alice.locator("#number").fill("bob")
        await alice.get_by_role("button", name="Call", exact=True).click()
        await bob.get_by_role("button", name="Answer and hold").click(timeout=10000)
        await expect(alice.locator("#call-state")).to_have_text("Connected", timeout=15000)
        listed = alice.get_by_role("list", name="Your calls").get_by_role("listitem")
        two = ["Bob (1002): On hold (both sides)Switch", "Bob (1002): Connectedcurrent"]
        await expect(listed).to_have_text(two)

        await alice.reload()
        await expect(alice.locator("#status")).to_have_text("Registered as Alice", timeout=15000)
        await expect(listed).to_have_text(two, timeout=15000)
        await expect(alice.locator("#call-state")).to_have_text("Connected")
        await expect(alice.get_by_role("button", name="Hold", exact=True)).to_be_enabled()
        assert await read_meter(alice, "remote-level", 0.02, timeout=15) >= 0.02, "no audio after the reload"
        await alice.screenshot(path=str(tmp_path / "reload-two-calls.png"), full_page=True)
        # the held one is as it was: switching to it holds the other and resumes it (bob still holds it)
        await alice.get_by_role("button", name="Switch to the call with Bob (1002)").click()
        await expect(alice.locator("#call-state")).to_have_text("Held by the other side", timeout=10000)
        await expect(listed.first).to_have_text("Bob (1002): Held by the other sidecurrent")
        await expect(listed.nth(1)).to_have_text("Bob (1002): On holdSwitch", timeout=10000)
        for _ in range(2):
            await alice.get_by_role("button", name="Hang up").click()
            await alice.wait_for_timeout(300)
        await expect(alice.locator("#call-state")).to_have_text("No call", timeout=10000)


async def test_recent_calls_says_when_there_are_none(tmp_path: Path) -> None:
    """Issue 67 item 13: an empty "Recent calls" card says "No calls yet." instead of standing blank;
    the line goes with the first call and comes back when the history is cleared."""
    async with running_gateway(no_pbx_config()) as gateway, two_users(gateway) as (alice, bob):
        recent = alice.get_by_role("region", name="Recent calls")
        await expect(recent).to_be_visible()
        await expect(recent.get_by_role("listitem")).to_have_text(["No calls yet."])
        await alice.screenshot(path=str(tmp_path / "history-empty.png"), full_page=True)
        await connect(alice, bob, "1002")
        await alice.get_by_role("button", name="Hang up").click()
        await expect(alice.locator("#call-state")).to_have_text("No call", timeout=10000)
        await expect(alice.locator("#history li strong")).to_have_text(["Bob (1002)"])
        await expect(recent).not_to_contain_text("No calls yet.")
        await alice.get_by_role("button", name="Clear").click()
        await expect(recent.get_by_role("listitem")).to_have_text(["No calls yet."])


async def test_an_answered_incoming_call_shows_its_duration_or_where_it_went(tmp_path: Path) -> None:
    """Issue 67 item 13: bob rings alice, logged in on two devices; she answers on the second. There the
    history shows the call's duration as an outgoing call's does; on the first, where it only rang, it
    says "Answered on another device" instead of passing for an answered call without one."""
    async with (
        running_gateway(no_pbx_config()) as gateway,
        two_users(gateway) as (alice, bob),
        chromium_page() as other_device,
    ):
        await logged_in(other_device, gateway.http_url)
        await bob.locator("#number").fill("1001")
        await bob.get_by_role("button", name="Call", exact=True).click()
        await expect(alice.get_by_role("alertdialog")).to_contain_text("Incoming call from Bob (1002)")
        await other_device.get_by_role("button", name="Answer", exact=True).click(timeout=10000)
        await expect(other_device.locator("#call-timer")).to_have_text("0:01", timeout=15000)
        await bob.get_by_role("button", name="Hang up").click()
        await expect(other_device.locator("#call-state")).to_have_text("No call", timeout=10000)

        answered = other_device.locator("#history li small")
        await expect(answered).to_have_text([re.compile(r"^Incoming · .+ · 0:0[1-9]$")])
        await expect(alice.locator("#history li strong")).to_have_text(["Bob (1002)"])
        await expect(alice.locator("#history li small")).to_have_text(
            [re.compile(r"^Incoming · Answered on another device · ")]
        )
        await alice.screenshot(path=str(tmp_path / "answered-elsewhere.png"), full_page=True)
        await other_device.screenshot(path=str(tmp_path / "answered-here.png"), full_page=True)
