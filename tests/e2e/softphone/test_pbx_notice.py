"""The softphone page tells its user that the phone system is unreachable before they dial (issue 15
item 2): headless Chromium logged in on a gateway whose PBX (a sipp UAS answering OPTIONS) stops answering
the keep-alive shows "The phone system is unreachable", and hides it again when the PBX is back."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from peers.binaries import require_binary
from peers.sipp import Sipp
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway
from tests.signaling.browser import chromium_page, expect, log_in

NOTICE = "The phone system is unreachable"


async def test_the_page_says_when_the_phone_system_is_unreachable(tmp_path: Path) -> None:
    require_binary("sipp")
    pbx = Sipp(tmp_path, "uas_basic_call", calls=None, auto_answer=True)  # -aa: 200 to OPTIONS
    await pbx.start()
    try:
        base = gateway_config(pbx.address, media={"rtp_ports": {"start": 36900, "end": 0}})
        config = dataclasses.replace(base, pbx=dataclasses.replace(base.pbx, keepalive_interval=0.5))
        async with running_gateway(config) as gateway, chromium_page() as page:
            await page.goto(gateway.http_url + "/")
            await log_in(page, "alice", ALICE_SECRET)
            await expect(page.locator("#status")).to_have_text("Registered as Alice")
            notice = page.get_by_text(NOTICE)
            await expect(notice).to_be_hidden()
            await pbx.stop()
            await expect(notice).to_be_visible(timeout=15000)
            await expect(page.get_by_role("status").filter(has_text=NOTICE)).to_be_visible()
            await expect(page.locator("#call-button")).to_be_enabled()  # told, not stopped from dialing
            pbx = Sipp(tmp_path, "uas_basic_call", calls=None, auto_answer=True, port=pbx.port)
            await pbx.start()
            await expect(notice).to_be_hidden(timeout=15000)
            # a page opened while the PBX is down hears it at login (the gateway tells every new session)
            await pbx.stop()
            await expect(notice).to_be_visible(timeout=15000)
            await page.reload()
            await expect(page.locator("#status")).to_have_text("Registered as Alice", timeout=15000)
            await expect(notice).to_be_visible()
    finally:
        await pbx.stop()
