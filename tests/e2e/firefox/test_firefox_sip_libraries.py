"""The browser SIP libraries people already use, unmodified (JsSIP 3.13, SIP.js 0.21 from npm), in headless
Firefox ESR against a whole gateway over SIP WebSocket (/sip), as tests/e2e/websip/test_softphone_libraries.py
does in Chromium: each registers with digest, calls the pjsua2 desk phone through the gateway (the page
hears the phone's 440 Hz, the phone's recording holds Firefox's 1 kHz), sends a DTMF digit by INFO that
the phone receives once, and hangs up. The libraries' own SDP is Firefox's (its offer goes through
JsSIP's and SIP.js's hands into the gateway's SIP-over-WebSocket side).

The page (peers/js-softphones) is served by ``softphone_server`` on an origin of its own, opened at
localhost (a secure context: Firefox's getUserMedia); one Firefox runs both libraries in turn.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from gateway.app import Gateway
from gateway.config.schema import Config
from peers.demo import require_desk_phone
from peers.firefox import FirefoxPage, firefox_page, local_url
from peers.phone import DeskPhone
from peers.softphones import Library, Softphone, require_softphones, softphone_server
from tests.e2e.firefox.softphone import PHONE_HZ, assert_phone_heard_firefox
from tests.e2e.harness import running_gateway
from tests.e2e.websip.test_sip_websocket import ALICE_SIP_PASSWORD, no_calls, realm_of, websocket_config


def allowing(config: Config, origin: str) -> Config:
    """The config with the softphone site's origin in http.allowed_origins."""
    return dataclasses.replace(config, http=dataclasses.replace(config.http, allowed_origins=(origin,)))


async def library_calls_the_phone(
    page: FirefoxPage, library: Library, origin: str, gateway: Gateway, phone: DeskPhone
) -> None:
    realm = realm_of(gateway)
    softphone = Softphone(page, library)
    await softphone.open(origin)
    await softphone.start(
        gateway.http_url.replace("http", "ws", 1) + "/sip", f"sip:alice@{realm}", ALICE_SIP_PASSWORD
    )
    await softphone.wait_for("registered")

    await softphone.call(f"sip:2000@{realm}")
    incoming = await phone.wait_for("incoming", timeout=15)
    await softphone.wait_for("confirmed")
    await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
    await page.expect_hears(PHONE_HZ, element_id="remote")
    await softphone.dtmf("5")
    await phone.wait_for("dtmf", call=incoming["call"], digit="5")
    await softphone.hangup()
    await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
    await softphone.wait_for("ended")
    assert [e["digit"] for e in phone.seen("dtmf", call=incoming["call"])] == ["5"], library
    assert_phone_heard_firefox(await phone.wait_for_recording(incoming["call"]))
    assert await no_calls(gateway), library


async def test_jssip_and_sipjs_in_firefox_call_the_desk_phone(tmp_path: Path) -> None:
    require_softphones()
    require_desk_phone()
    async with softphone_server() as served, firefox_page() as page:
        origin = local_url(served)
        async with (
            DeskPhone(tmp_path, user="2000", tone=PHONE_HZ) as phone,
            running_gateway(allowing(websocket_config(phone.address), origin)) as gateway,
        ):
            for library in ("jssip", "sipjs"):
                await library_calls_the_phone(page, library, origin, gateway, phone)
