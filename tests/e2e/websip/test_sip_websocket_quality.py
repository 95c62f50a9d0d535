"""Quality while the call is up over SIP WebSocket (issue 36 item 4): no standard SIP package carries it,
so the gateway sends it only to a library that asked in its INVITE (`Recv-Info: call-quality`, RFC 6086
§5.2.2): an INFO with `Info-Package: call-quality` and the `/ws` `quality` event's JSON. JsSIP 3.13 and
SIP.js 0.21, unmodified in headless Chromium, call the pjsua2 desk phone behind the lossy relay of
tests/e2e/lossy_sip_leg.py: the library that asked gets INFOs naming the phone's leg poor; the same call
placed without the header gets none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from peers.softphones import Library, Softphone, require_softphones, softphone_server
from tests.e2e.harness import running_gateway
from tests.e2e.lossy_sip_leg import RELAY_HOST
from tests.e2e.ops.test_call_quality import lossy_phone
from tests.e2e.websip.test_sip_websocket import ALICE_SIP_PASSWORD, realm_of, websocket_config
from tests.e2e.websip.test_softphone_libraries import allowing
from tests.signaling.browser import chromium_page


@pytest.mark.parametrize("library", ["jssip", "sipjs"])
async def test_a_library_that_asked_gets_the_phones_poor_leg_as_info(
    library: Library, tmp_path: Path
) -> None:
    require_softphones()
    async with lossy_phone(tmp_path) as (phone, _, start):
        sections = {
            "media": {"rtp_ports": {"start": start}, "public_address": [RELAY_HOST]},
            "quality": {"interval": 1.0},
        }
        config = websocket_config(phone.address, sections=sections)
        async with (
            softphone_server() as origin,
            chromium_page() as page,
            running_gateway(allowing(config, origin)) as gateway,
        ):
            softphone = Softphone(page, library)
            await softphone.open(origin)
            realm = realm_of(gateway)
            await softphone.start(gateway.http_url.replace("http", "ws", 1) + "/sip", f"sip:alice@{realm}",
                                      ALICE_SIP_PASSWORD)  # fmt: skip
            await softphone.wait_for("registered")

            # without Recv-Info: no INFO but DTMF ever
            await softphone.call(f"sip:2000@{realm}")
            incoming = await phone.wait_for("incoming", timeout=15)
            await softphone.wait_for("confirmed")
            await page.wait_for_timeout(3000)  # three samples, the first naming the phone's leg
            await softphone.hangup()
            await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
            assert not [e for e in await softphone.events() if e["type"] == "info"]

            # with it: the INFOs, one naming the phone's leg poor
            await softphone.call(f"sip:2000@{realm}", extra_headers=("Recv-Info: call-quality",))
            incoming = await phone.wait_for("incoming", timeout=15)
            while True:
                info = await softphone.wait_for("info", timeout=15)
                assert info["package"] == "call-quality" and info["contentType"] == "application/json", info
                event = json.loads(info["body"])
                if event["poor"] == ["sip"]:
                    break
            # poor: under quality.poor_mos (3.5); a sample is ~50 packets, so the relay's 20 % reads 12.5 % at times
            assert event["type"] == "quality" and event["legs"]["sip"]["mos"] < 3.5, event
            await softphone.hangup()
            await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
