"""A third-party WHIP client against the gateway (issue 17 item 4): Medooze's WHIPClient (npm whip-whep
1.2.0, unmodified, pinned in peers/js-softphones) publishes Chromium's microphone to /whip/2000 and the
pjsua2 desk phone hears Chromium's beep; its trickled candidates go as PATCH; its stop() is a DELETE that
hangs the phone up."""

from __future__ import annotations

from pathlib import Path

from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.ports import free_range
from peers.softphones import whip_script
from tests.e2e.harness import gateway_config, running_gateway
from tests.e2e.page_audio import assert_beeps
from tests.e2e.softphone.test_js_sdp_client import wait_js
from tests.signaling.browser import chromium_page

API_KEY = "e2e-whip-thirdparty-0123456789"

PUBLISH = """async ([url, token]) => {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const pc = new RTCPeerConnection();
    pc.addTransceiver(stream.getAudioTracks()[0], { direction: "sendonly" });
    const whip = new window.WHIPClient();
    await whip.publish(pc, url, token);
    window.pc = pc;
    window.whip = whip;
    return whip.resourceURL.pathname;
}"""


async def test_medooze_whip_client_publishes_to_the_phone(tmp_path: Path) -> None:
    require_desk_phone()
    script = whip_script()
    async with DeskPhone(tmp_path, user="2000", tone=440) as phone:
        config = gateway_config(
            phone.address,
            alice_extra={"api_keys": [{"key": API_KEY}]},
            media={"rtp_ports": {"start": free_range()}},  # this branch's range
        )
        async with running_gateway(config) as gateway, chromium_page() as page:
            base = gateway.http_url
            await page.goto(f"{base}/")
            # served as a same-origin script (the gateway's pages allow no inline script: CSP 'self')
            await page.route(
                "**/third-party/whip.js",
                lambda route: route.fulfill(body=script, content_type="text/javascript"),
            )
            await page.add_script_tag(url="/third-party/whip.js", type="module")
            await wait_js(page, "typeof window.WHIPClient === 'function'", 5)
            resource = await page.evaluate(PUBLISH, [f"{base}/whip/2000", API_KEY])
            assert resource.startswith("/whip/sessions/"), resource
            incoming = await phone.wait_for("incoming")
            await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
            await wait_js(page, "window.pc.connectionState === 'connected'", 10)
            await page.wait_for_timeout(3000)  # three of Chromium's beeps
            await page.evaluate("window.whip.stop()")  # DELETE of the resource
            await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
            assert_beeps(await phone.wait_for_recording(incoming["call"]), "the phone", at_least=3)
