"""Issue 16 item 6: two web users of one gateway call each other with no PBX at all. Two headless
Chromium pages (alice, bob) on the softphone page; alice dials bob by number, then bob dials alice by
name: the gateway rings the callee itself (its own SIP listener), both legs WebRTC through its bridges,
and each page hears the other's fake-microphone beep. Presence: each sees the other online."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from gateway.app import Gateway
from gateway.media.bridge import MediaBridge
from gateway.runtime.passthrough import PassthroughMedia
from tests.e2e.harness import (
    ALICE_SECRET,
    BOB_SECRET,
    call_ports,
    gateway_config,
    running_gateway,
    wait_until,
)
from tests.signaling.browser import Page, chromium_page, expect, log_in, read_meter

RTP = {"rtp_ports": {"start": 37000}}  # this work's RTP range (37000-37999)


def no_pbx_config(**sections: Any) -> Any:
    return gateway_config(None, media=RTP, **sections)


@asynccontextmanager
async def two_users(gateway: Gateway, full: bool = False) -> AsyncIterator[tuple[Page, Page]]:
    """Alice's and Bob's pages, logged in (in the desktop browser with ``full``: its notifications)."""
    async with AsyncExitStack() as stack:
        pages = []
        for user, secret, name in (("alice", ALICE_SECRET, "Alice"), ("bob", BOB_SECRET, "Bob")):
            page = await stack.enter_async_context(chromium_page(full=full))
            await page.goto(gateway.http_url + "/")
            await log_in(page, user, secret)
            try:  # 20 s: twice a log-in took over 5 and 10 s in the first minute of a run at load 12
                await expect(page.locator("#status")).to_have_text(f"Registered as {name}", timeout=20000)
            except AssertionError as exc:
                error = await page.locator("#error").text_content()
                raise AssertionError(f"{user} not registered; the page's error: {error!r}\n{exc}") from None
            pages.append(page)
        yield pages[0], pages[1]


async def call_and_talk(caller: Page, callee: Page, dialled: str, caller_name: str, tmp_path: Path) -> None:
    await caller.locator("#number").fill(dialled)
    await caller.get_by_role("button", name="Call", exact=True).click()
    await expect(callee.locator("#incoming")).to_be_visible(timeout=10000)
    await expect(callee.locator("#incoming-text")).to_contain_text(caller_name)
    await callee.screenshot(path=str(tmp_path / f"{dialled}-ringing.png"), full_page=True)
    await callee.get_by_role("button", name="Answer", exact=True).click()
    for page in caller, callee:
        await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
    for page in caller, callee:  # each hears the other's fake microphone (a beep every second)
        assert await read_meter(page, "remote-level", 0.02, timeout=15) >= 0.02, (
            "no audio from the other page"
        )
    await caller.screenshot(path=str(tmp_path / f"{dialled}-caller-in-call.png"), full_page=True)
    await callee.screenshot(path=str(tmp_path / f"{dialled}-callee-in-call.png"), full_page=True)
    await callee.get_by_role("button", name="Hang up").click()
    for page in caller, callee:
        await expect(page.locator("#call-state")).to_have_text("No call", timeout=10000)


@asynccontextmanager
async def watching(gateway: Gateway) -> AsyncIterator[tuple[list[frozenset[object]], list[Any]]]:
    """Every 100 ms while the block runs: the RTP ports held, and each call's media object."""
    held: list[frozenset[object]] = []
    media: list[Any] = []

    async def watch() -> None:
        while True:
            held.append(call_ports(gateway))
            media.extend(r.bridge for r in gateway.driver._runtimes.values() if r.bridge is not None)
            await asyncio.sleep(0.1)

    watcher = asyncio.ensure_future(watch())
    try:
        yield held, media
    finally:
        watcher.cancel()


async def test_web_users_call_each_other_without_a_pbx(tmp_path: Path) -> None:
    """Both bridges forward: the loop's SIP leg takes the browsers' codec (Opus), no transcoding."""
    async with running_gateway(no_pbx_config()) as gateway, two_users(gateway) as (alice, bob):
        async with watching(gateway) as (_, media):
            await call_and_talk(alice, bob, "1002", "Alice", tmp_path)
        bridges = {m for m in media if isinstance(m, MediaBridge)}
        assert len(bridges) == 2 and not any(b.stats().transcoding for b in bridges)
        assert {str(b.quality()["sip"]["codec"]).lower() for b in bridges} == {"opus/48000"}
        await call_and_talk(bob, alice, "alice", "Bob", tmp_path)
        await wait_until(lambda: gateway.driver.calls == 0)


async def test_web_users_call_each_other_peer_to_peer(tmp_path: Path) -> None:
    """`calls.web_calls: p2p`: the gateway rings bob itself but carries no media: alice's offer reaches
    bob's page unchanged through the loop (both halves pass the SDP through, trickle ICE crosses as
    INFO), the pages hear each other's beep, and the gateway holds no RTP port and built no bridge."""
    config = no_pbx_config(calls={"web_calls": "p2p"})
    async with running_gateway(config) as gateway, two_users(gateway) as (alice, bob):
        async with watching(gateway) as (held, media):
            await call_and_talk(alice, bob, "1002", "Alice", tmp_path)
        assert media and {type(m) for m in media} == {PassthroughMedia}  # both halves, no bridge
        assert all(not ports for ports in held)  # no RTP port at any moment
        await wait_until(lambda: gateway.driver.calls == 0)


# both descriptions' ICE ufrags of the page's call, and its connection's state
UFRAGS = """() => {
    const pc = window.softphone.call && window.softphone.call.pc;
    const ufrag = (d) => { const m = d ? /^a=ice-ufrag:(\\S+)/m.exec(d.sdp) : null; return m ? m[1] : null; };
    return pc ? { local: ufrag(pc.localDescription), remote: ufrag(pc.remoteDescription), state: pc.connectionState } : null;
}"""


async def p2p_call(alice: Page, bob: Page) -> None:
    """alice's page calls bob's (1002), he answers; both hear each other's beep."""
    await alice.locator("#number").fill("1002")
    await alice.get_by_role("button", name="Call", exact=True).click()
    await expect(bob.locator("#incoming")).to_be_visible(timeout=10000)
    await bob.get_by_role("button", name="Answer", exact=True).click()
    for page in alice, bob:
        await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
        assert await read_meter(page, "remote-level", 0.02, timeout=15) >= 0.02


async def test_a_peer_to_peer_call_keeps_its_media_through_a_lost_socket(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`calls.web_calls: p2p`: alice's WebSocket to the gateway drops mid-call. Her page keeps its
    RTCPeerConnection (the media flows between the browsers, not through the gateway), reconnects, and
    takes the call back without an offer (`end_to_end` in `calls`): the same connection, the beep heard
    all along, and the call is hers to hang up again."""
    caplog.set_level(logging.INFO, logger="gateway.calls")
    config = no_pbx_config(calls={"web_calls": "p2p"})
    async with running_gateway(config) as gateway, two_users(gateway) as (alice, bob):
        await p2p_call(alice, bob)
        await alice.evaluate("window.firstPc = window.softphone.call.pc")
        await alice.evaluate("window.softphone.call.client._ws.close()")
        assert await read_meter(bob, "remote-level", 0.02, timeout=3) >= 0.02, "bob stopped hearing alice"
        await wait_until(lambda: "its media went on end to end" in caplog.text, timeout=15)
        await expect(alice.locator("#call-state")).to_have_text("Connected", timeout=15000)
        assert await alice.evaluate("window.softphone.call.pc === window.firstPc"), "a new connection"
        for page in alice, bob:
            assert await read_meter(page, "remote-level", 0.02, timeout=5) >= 0.02, "no audio after it"
        await alice.screenshot(path=str(tmp_path / "p2p-back.png"), full_page=True)
        await alice.get_by_role("button", name="Hang up").click()
        for page in alice, bob:
            await expect(page.locator("#call-state")).to_have_text("No call", timeout=10000)


async def test_a_peer_to_peer_pages_ice_restart_reaches_the_other_page() -> None:
    """`calls.web_calls: p2p`: alice's page restarts ICE (`call.restartIce()`, as after a network change).
    Its offer crosses the gateway's loop to bob's end of the call, which, seeing new ICE credentials, asks
    bob's page (an `offer`) instead of answering with its old description: both pages end up on the new
    ICE session (each one's new ufrag in the other's remote description), still hearing each other."""
    config = no_pbx_config(calls={"web_calls": "p2p"})
    async with running_gateway(config) as gateway, two_users(gateway) as (alice, bob):
        await p2p_call(alice, bob)
        before = {"alice": await alice.evaluate(UFRAGS), "bob": await bob.evaluate(UFRAGS)}
        assert await alice.evaluate("window.softphone.call.restartIce()") is True

        async def moved() -> bool:
            now = {"alice": await alice.evaluate(UFRAGS), "bob": await bob.evaluate(UFRAGS)}
            fresh = (
                now["alice"]["local"] != before["alice"]["local"]
                and now["bob"]["local"] != before["bob"]["local"]
            )
            crossed = (
                now["bob"]["remote"] == now["alice"]["local"]
                and now["alice"]["remote"] == now["bob"]["local"]
            )
            return fresh and crossed and {now["alice"]["state"], now["bob"]["state"]} == {"connected"}

        for _ in range(100):
            if await moved():
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(
                f"not both on the new ICE session: {before} -> {await alice.evaluate(UFRAGS)}, {await bob.evaluate(UFRAGS)}"
            )
        await asyncio.sleep(1.0)
        for page in alice, bob:
            assert await read_meter(page, "remote-level", 0.02, timeout=5) >= 0.02, (
                "no audio after the restart"
            )
        assert gateway.driver.calls == 2


async def test_a_peer_to_peer_page_reloaded_mid_call_hears_the_other_again(tmp_path: Path) -> None:
    """`calls.web_calls: p2p`: alice reloads her page mid-call. It logs in again with its saved token and
    takes the call back with a new RTCPeerConnection; that offer reaches bob's page (new credentials and
    a new certificate: his end of the call asks him), whose answer comes back in `reattached`: both hear
    each other again, on the same call."""
    config = no_pbx_config(calls={"web_calls": "p2p"})
    async with running_gateway(config) as gateway, two_users(gateway) as (alice, bob):
        alice.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await p2p_call(alice, bob)
        before = await bob.evaluate(UFRAGS)
        await alice.reload()
        await expect(alice.locator("#status")).to_have_text("Registered as Alice", timeout=15000)
        await expect(alice.locator("#call-state")).to_have_text("Connected", timeout=15000)
        now = {"alice": await alice.evaluate(UFRAGS), "bob": await bob.evaluate(UFRAGS)}
        assert now["bob"]["remote"] == now["alice"]["local"] != before["remote"], (before, now)  # bob asked
        for _ in range(100):  # alice's new connection up with bob's
            if (await alice.evaluate(UFRAGS))["state"] == "connected":
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"alice's new connection never came up: {await alice.evaluate(UFRAGS)}")
        for page in alice, bob:
            assert await read_meter(page, "remote-level", 0.02, timeout=10) >= 0.02, (
                "no audio after the reload"
            )
        await alice.screenshot(path=str(tmp_path / "p2p-reloaded.png"), full_page=True)
        assert gateway.driver.calls == 2
        await bob.get_by_role("button", name="Hang up").click()
        await expect(alice.locator("#call-state")).to_have_text("No call", timeout=10000)


async def test_a_peer_to_peer_call_held_and_resumed_by_one_page() -> None:
    """`calls.web_calls: p2p`: alice holds. Her re-offer (sendonly) crosses the gateway's loop to bob's end,
    which offers it to bob's page (a pass-through call's hold reaches the browser, issue 68 item 4): his
    page shows "Held by the other side" and answers recvonly, alice's shows "On hold", and bob hears nothing
    from her. She resumes: both "Connected", each hears the other again, on the same connections."""
    config = no_pbx_config(calls={"web_calls": "p2p"})
    async with running_gateway(config) as gateway, two_users(gateway) as (alice, bob):
        await p2p_call(alice, bob)
        await bob.evaluate("window.firstPc = window.softphone.call.pc")
        await alice.get_by_role("button", name="Hold", exact=True).click()
        await expect(alice.locator("#call-state")).to_have_text("On hold", timeout=10000)
        await expect(bob.locator("#call-state")).to_have_text("Held by the other side", timeout=10000)
        directions = await bob.evaluate(
            "() => [...window.softphone.call.pc.getTransceivers()].map((t) => t.currentDirection)"
        )
        assert "recvonly" in directions, directions
        await asyncio.sleep(1.0)  # (what was on its way)
        assert await read_meter(bob, "remote-level", 0.02, timeout=2) < 0.02, "bob hears alice on hold"
        await alice.get_by_role("button", name="Resume", exact=True).click()
        for page in alice, bob:
            await expect(page.locator("#call-state")).to_have_text("Connected", timeout=10000)
            assert await read_meter(page, "remote-level", 0.02, timeout=10) >= 0.02, "no audio after resume"
        assert await bob.evaluate("window.softphone.call.pc === window.firstPc"), (
            "bob's page made a new connection"
        )
        assert gateway.driver.calls == 2
