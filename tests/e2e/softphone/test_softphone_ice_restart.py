"""The softphone page restarts ICE in place (issue 34 item 2): headless Chromium on the real page, logged in
as alice, calls the pjsua2 desk phone through a whole gateway. The browser fires `offline` then `online`
(a network change, as a laptop moving from Wi-Fi to wired sees it): the page's client restarts ICE on
the call's RTCPeerConnection (`pc.restartIce()`, `offer {call_id, sdp}` with new credentials), the
gateway answers it at once with new credentials of its own (the gateway's ufrag in the page's remote
description changes) and restarts its web leg's ICE in place: the same call (same call id, the phone's
dialog untouched, no reattach), Chromium on a pair of the new session with the gateway's media sent
there, the phone's tone in the page's meter and Chromium's beeps in the phone's recording afterwards.
Then `call.restartIce()` once more from the page's API: restarted in place again (true)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from tests.e2e.harness import gateway_config, running_gateway, web_media_moved
from tests.e2e.page_audio import assert_beeps
from tests.e2e.softphone.test_browser_phone import page_calls_phone
from tests.e2e.softphone.test_softphone_video_escalation import logged_in
from tests.signaling.browser import Page, chromium_page, expect, read_meter

# The current call's ICE: its id, the ufrags of both descriptions, the connection state and the selected
# pair's local candidate. Chromium names the pair in its "transport" stats; Firefox has none, its
# candidate pairs say `selected` themselves (tests/e2e/firefox/ reads the same script).
ICE = """async () => {
    const call = window.softphone.call;
    const pc = call && call.pc;
    if (!pc) return null;
    const ufrag = (d) => { const m = d ? /^a=ice-ufrag:(\\S+)/m.exec(d.sdp) : null; return m ? m[1] : null; };
    let pair = null;
    const stats = await pc.getStats();
    const take = (selected) => {
        const local = selected && stats.get(selected.localCandidateId);
        if (local) pair = `${local.address}:${local.port}`;
    };
    stats.forEach((s) => {
        if (s.type === 'transport' && s.selectedCandidatePairId) take(stats.get(s.selectedCandidatePairId));
        if (s.type === 'candidate-pair' && s.selected) take(s);
    });
    return { id: call.id, local: ufrag(pc.localDescription), remote: ufrag(pc.remoteDescription),
             state: pc.connectionState, pair };
}"""


async def _moved(page: Page, gateway: Any, before: dict[str, Any]) -> dict[str, Any]:
    """The page on a pair of a new ICE session (the gateway's new ufrag), the gateway sending to it."""

    async def pair() -> str | None:
        now = await page.evaluate(ICE)
        fresh = now["remote"] != before["remote"] and now["state"] == "connected"
        return now["pair"] if fresh else None

    await web_media_moved(gateway, pair, before["pair"])
    now: dict[str, Any] = await page.evaluate(ICE)
    return now


async def test_a_network_change_restarts_ice_in_place_and_the_call_goes_on(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(gateway_config(phone.address)) as gateway,
        chromium_page() as page,
    ):
        await logged_in(gateway, page)
        incoming = await page_calls_phone(page, phone)
        before: dict[str, Any] = await page.evaluate(ICE)
        assert before["state"] == "connected" and before["pair"], before

        await page.evaluate("window.firstPc = window.softphone.call.pc")
        await page.evaluate(
            "window.dispatchEvent(new Event('offline')); window.dispatchEvent(new Event('online'))"
        )
        after = await _moved(page, gateway, before)
        assert await page.evaluate("window.softphone.call.pc === window.firstPc"), "reattached, not restarted"
        assert after["id"] == before["id"] and after["local"] != before["local"], (before, after)
        await expect(page.locator("#call-state")).to_have_text("Connected")
        assert gateway.driver.calls == 1  # the same call: no reattach, no second one
        await asyncio.sleep(1.0)
        assert await read_meter(page, "remote-level", 0.02) >= 0.02, "the phone's tone after the restart"

        restarted = await page.evaluate("window.softphone.call.restartIce()")
        assert restarted is True  # in place, not reattached
        again = await _moved(page, gateway, after)
        assert again["id"] == before["id"], again
        await asyncio.sleep(3.0)  # Chromium's beeps over the new path for the recording's last seconds
        assert await read_meter(page, "remote-level", 0.02) >= 0.02, (
            "the phone's tone after the second restart"
        )
        await page.get_by_role("button", name="Hang up").click()
        await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
        assert_beeps(
            await phone.wait_for_recording(incoming["call"]), "the phone after the restart", last=2.5
        )
