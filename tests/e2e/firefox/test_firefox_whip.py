"""A third-party WHIP client in Firefox ESR: Medooze's WHIPClient (npm whip-whep, unmodified, pinned in
peers/js-softphones) publishes Firefox's microphone to /whip/2000 (RFC 9725) as
tests/e2e/dialects/test_whip_thirdparty.py does from Chromium: the gateway calls the pjsua2 desk phone,
Firefox's sendonly offer (its trickled candidates as PATCH) reaches `connected`, the phone's recording holds
Firefox's 1 kHz, and the client's stop() (a DELETE of the resource) hangs the phone up."""

from __future__ import annotations

from pathlib import Path

from peers.demo import require_desk_phone
from peers.firefox import firefox_page, local_url
from peers.phone import DeskPhone
from peers.softphones import whip_script
from tests.e2e.dialects.test_whip_thirdparty import PUBLISH  # the same page code as in Chromium
from tests.e2e.firefox.softphone import PHONE_HZ, assert_phone_heard_firefox, phone_receives
from tests.e2e.harness import gateway_config, running_gateway, wait_until

API_KEY = "e2e-whip-firefox-0123456789"


def whip_client() -> str:
    """A function that defines ``window.WHIPClient`` in the page from the module's own source (a script
    Marionette runs is no module: its one ``export`` goes)."""
    source = whip_script().replace("export class WHIPClient", "class WHIPClient", 1)
    return "() => {\n" + source + "\nreturn typeof window.WHIPClient;\n}"


async def test_medooze_whip_client_in_firefox_publishes_to_the_phone(tmp_path: Path) -> None:
    require_desk_phone()
    async with DeskPhone(tmp_path, user="2000", tone=PHONE_HZ) as phone:
        config = gateway_config(phone.address, alice_extra={"api_keys": [{"key": API_KEY}]})
        async with running_gateway(config) as gateway, firefox_page() as page:
            base = local_url(gateway.http_url)  # the page's own origin: the WHIP requests are same-origin
            await page.goto(f"{base}/")
            assert await page.evaluate(whip_client()) == "function"
            resource = await page.evaluate(PUBLISH, [f"{base}/whip/2000", API_KEY])
            assert resource.startswith("/whip/sessions/"), resource
            incoming = await phone.wait_for("incoming")
            await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
            await page.wait_for_function("() => window.pc.connectionState === 'connected'")
            await phone_receives(phone, incoming["call"])
            await page.evaluate("() => window.whip.stop()")  # DELETE of the resource
            await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
            assert_phone_heard_firefox(await phone.wait_for_recording(incoming["call"]))
            await wait_until(lambda: gateway.driver.calls == 0)
