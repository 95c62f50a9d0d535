"""Issue 16 item 2 with three parties: alice and bob on the softphone page (two Chromium pages), a pjsua2
desk phone (2000, playing a 440 Hz tone) calling bob while he talks to alice.

Call waiting: bob's page keeps the call ringing (no 486 from a busy tab) with Answer and hold / Reject /
Ignore and the call-waiting beep; Answer and hold puts alice on hold (her page says "Held by the other
side", not her own hold) and connects the phone; Switch goes back to alice (the phone held); a second
outbound call while one is held. users[].on_busy: reject answers the phone 486 while bob is busy."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from gateway.config import Config
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from tests.e2e.harness import gateway_config, running_gateway, wait_until
from tests.e2e.softphone.test_softphone_page import tone
from tests.e2e.softphone.test_web_to_web import RTP, two_users
from tests.signaling.browser import Page, expect, read_meter


def config_with_phone(address: str, on_busy: str = "ring") -> Config:
    config = gateway_config(address, media=RTP)
    alice, bob = config.users
    return replace(config, users=(alice, replace(bob, on_busy=on_busy)))


async def connect(caller: Page, callee: Page, dialled: str) -> None:
    await caller.locator("#number").fill(dialled)
    await caller.get_by_role("button", name="Call", exact=True).click()
    await callee.get_by_role("button", name="Answer", exact=True).click(timeout=10000)
    for page in caller, callee:
        await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)


async def test_call_waiting_answer_and_hold_switch_and_a_second_call(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(config_with_phone(phone.address)) as gateway,
        two_users(gateway) as (alice, bob),
    ):
        await connect(alice, bob, "bob")
        host, port = gateway.sip_address
        number = await phone.call(f"sip:1002@{host}:{port}")
        dialog = bob.get_by_role("alertdialog")
        await expect(dialog).to_contain_text("Incoming call from", timeout=10000)
        await expect(dialog).to_contain_text("Call waiting")
        assert await tone(bob, "waiting") > 0.01, "no call-waiting beep"
        await bob.screenshot(path=str(tmp_path / "bob-call-waiting.png"), full_page=True)

        await bob.get_by_role("button", name="Answer and hold").click()
        await phone.wait_for("state", call=number, state="CONFIRMED", timeout=15000)
        await expect(alice.locator("#call-state")).to_have_text("Held by the other side", timeout=10000)
        await expect(alice.get_by_role("button", name="Hold", exact=True)).to_be_enabled()  # hers to use
        await expect(bob.locator("#call-state")).to_have_text("Connected", timeout=15000)
        assert await read_meter(bob, "remote-level", 0.02) >= 0.02, "the phone's tone is not heard"
        await expect(bob.locator("#calls li")).to_have_count(2)
        await bob.screenshot(path=str(tmp_path / "bob-two-calls.png"), full_page=True)

        # back to alice: the phone goes on hold, alice is resumed
        await bob.get_by_role("button", name="Switch to the call with Alice").click()
        await expect(alice.locator("#call-state")).to_have_text("Connected", timeout=10000)
        await expect(bob.locator("#call-state")).to_have_text("Connected", timeout=10000)
        await expect(bob.locator("#calls li.current")).to_contain_text("Alice")
        await expect(bob.locator("#calls li").nth(1)).to_contain_text("On hold")
        assert await read_meter(bob, "remote-level", 0.02) >= 0.02, "alice is not heard after the switch"

        # alice holds bob: his page says he is held, not that he held
        await alice.get_by_role("button", name="Hold", exact=True).click()
        await expect(bob.locator("#call-state")).to_have_text("Held by the other side", timeout=10000)
        await expect(alice.locator("#call-state")).to_have_text("On hold")
        await alice.get_by_role("button", name="Resume").click()
        await expect(bob.locator("#call-state")).to_have_text("Connected", timeout=10000)

        # bob ends alice's call; the held phone call is left, and he places a second call while it is held
        await bob.get_by_role("button", name="Hang up").click()
        await expect(alice.locator("#call-state")).to_have_text("No call", timeout=10000)
        await expect(bob.locator("#call-state")).to_have_text("On hold")
        await connect(bob, alice, "1001")
        await expect(bob.locator("#calls li")).to_have_count(2)
        await bob.get_by_role("button", name="Hang up").click()
        await expect(bob.locator("#call-state")).to_have_text("On hold", timeout=10000)
        await bob.get_by_role("button", name="Resume").click()
        await expect(bob.locator("#call-state")).to_have_text("Connected", timeout=10000)
        await bob.get_by_role("button", name="Hang up").click()
        await phone.wait_for("state", call=number, state="DISCONNECTED", timeout=10000)
        await wait_until(lambda: gateway.driver.calls == 0)


async def test_on_busy_reject_answers_486_while_the_user_talks(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000") as phone,
        running_gateway(config_with_phone(phone.address, on_busy="reject")) as gateway,
        two_users(gateway) as (alice, bob),
    ):
        host, port = gateway.sip_address
        await connect(alice, bob, "bob")
        number = await phone.call(f"sip:1002@{host}:{port}")
        state = await phone.wait_for("state", call=number, state="DISCONNECTED", timeout=10000)
        assert state["code"] == 486, state
        await expect(bob.get_by_role("alertdialog")).to_be_hidden()
        await bob.get_by_role("button", name="Hang up").click()
        # not busy any more once the gateway has ended the call (the click only sends the hangup: a
        # phone's INVITE racing it on a loaded machine was refused 486 again): the phone's call rings bob
        await wait_until(lambda: gateway.driver.calls == 0, timeout=10)
        number = await phone.call(f"sip:1002@{host}:{port}")
        await expect(bob.get_by_role("alertdialog")).to_be_visible(timeout=10000)
        await bob.get_by_role("button", name="Reject").click()
        state = await phone.wait_for("state", call=number, state="DISCONNECTED", timeout=10000)
        assert state["code"] == 603, state
