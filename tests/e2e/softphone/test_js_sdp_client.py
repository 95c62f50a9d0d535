"""The JavaScript `WebRTCSDPClient` (`/static/webrtc-sdp-client.js`) in headless Chromium against a whole
gateway and the pjsua2 desk phone, running the RustPBX document's own JavaScript: its `main()` (ICE
servers, getUserMedia, offer, `exchangeSdp`, `setRemoteDescription`, `closeSession`) calls the phone, the
phone hears Chromium's 400 Hz beep and the page hears the phone's 440 Hz tone; its error handling
snippet sees `error.code` as a number; every other method's fields are checked.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.ports import free_range
from tests.e2e.harness import gateway_config, running_gateway, wait_until
from tests.e2e.page_audio import assert_beeps, page_tone
from tests.signaling.browser import Page, chromium_page

API_KEY = "e2e-js-client-key-0123456789"
PHONE_HZ = 440.0

# The document's main(), verbatim but for the server URL and two lines marked "test:" (the test gets the
# remote stream and the connection, and the close waits until the test has listened).
DOCUMENT_MAIN = """async (server) => {
    async function main() {
        // Create client
        const client = new WebRTCSDPClient(server);

        // Get ICE servers
        const iceServers = await client.getIceServers();

        // Create peer connection
        const pc = new RTCPeerConnection({ iceServers });
        pc.ontrack = (e) => { window.remote = e.streams[0]; window.pc = pc; };  // test:

        // Add media stream
        const stream = await navigator.mediaDevices.getUserMedia({
            audio: true,
            video: false
        });

        for (const track of stream.getTracks()) {
            pc.addTrack(track, stream);
        }

        // Create offer
        const offer = await pc.createOffer();
        await pc.setLocalDescription(offer);

        // Send to server
        const { sessionId, answerSdp } = await client.exchangeSdp(offer.sdp);

        // Set remote description
        await pc.setRemoteDescription({
            type: 'answer',
            sdp: answerSdp
        });

        console.log('WebRTC connection established!');

        // Later, close the session
        await new Promise((resolve) => { window.closeNow = resolve; });  // test:
        await client.closeSession(sessionId, 'User ended call');
    }

    window.mainDone = main().then(() => "closed", (error) => `failed: ${error.message} ${error.code}`);
    return true;
}"""

# The document's "JavaScript Error Handling", with an offer the gateway cannot take.
DOCUMENT_ERRORS = """async (server) => {
    const client = new WebRTCSDPClient(server);
    const offerSdp = "v=0 not an SDP";
    const seen = {};
    try {
        const result = await client.exchangeSdp(offerSdp);
        console.log('Success:', result.sessionId);
    } catch (error) {
        console.error('WebRTC error:', error.message);
        if (error.code) {
            console.error('Error code:', error.code);
        }
        Object.assign(seen, { name: error.name, message: error.message, code: error.code, reason: error.reason,
                              field: error.field, isError: error instanceof Error });
    }
    return seen;
}"""

OTHER_METHODS = """async (server) => {
    const anonymous = new WebRTCSDPClient(server, {});
    const out = { version: WebRTCSDPClient.VERSION };
    try { await anonymous.getIceServers(); out.ice = "no credentials: accepted"; }
    catch (error) { out.ice = Array.isArray(error) ? "array" : "rejected"; }
    try { await anonymous.exchangeSdp("v=0"); } catch (error) { out.unauthorized = [error.code, error.reason]; }
    const client = new WebRTCSDPClient(server);
    try { await client.closeSession("no-such-session", "bye"); }
    catch (error) { out.unknown = [error.code, error.reason, error.sessionId]; }
    try { await client.sendIceCandidate("no-such-session", null); }
    catch (error) { out.candidate = [error.code, error.sessionId]; }
    out.servers = await client.getIceServers();
    return out;
}"""


async def wait_js(page: Page, expression: str, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await page.evaluate(expression):
        assert loop.time() < deadline, f"not true in time: {expression}"
        await asyncio.sleep(0.05)


async def test_document_javascript_calls_the_phone(tmp_path: Path) -> None:
    require_desk_phone()
    async with DeskPhone(tmp_path, user="2000", tone=PHONE_HZ) as phone:
        config = gateway_config(
            phone.address,
            alice_extra={"default_dial": "2000", "api_keys": [{"key": API_KEY, "name": "js"}]},
            media={"rtp_ports": {"start": free_range()}},  # this branch's range
        )
        async with running_gateway(config) as gateway, chromium_page() as page:
            base = gateway.http_url
            await page.goto(f"{base}/")
            await page.add_script_tag(url="/static/webrtc-sdp-client.js")
            await page.evaluate(f"WebRTCSDPClient.defaults = {{ apiKey: {API_KEY!r} }}")
            assert await page.evaluate(DOCUMENT_MAIN, base)
            incoming = await phone.wait_for("incoming")
            await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
            connected = "window.pc && window.pc.connectionState === 'connected'"
            await wait_js(page, connected, 10)
            await page.evaluate("document.getElementById('remote-audio').srcObject = window.remote")
            heard, level = await page_tone(page, PHONE_HZ, seconds=2.0)
            assert heard >= 0.5 and level > 0.01, (
                f"the page hears the phone: {heard:.2f} of blocks, rms {level:.3f}"
            )
            await page.evaluate("window.closeNow()")
            assert await page.evaluate("window.mainDone") == "closed"
            await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
            assert_beeps(await phone.wait_for_recording(incoming["call"]), "the phone")
            errors: dict[str, Any] = await page.evaluate(DOCUMENT_ERRORS, base)
            assert errors["isError"] and errors["name"] == "WebRTCSDPError"
            assert (errors["code"], errors["reason"], errors["field"]) == (400, "bad_request", "sdp"), errors
            others: dict[str, Any] = await page.evaluate(OTHER_METHODS, base)
            assert others["version"] == "1.0.0"
            assert others["unauthorized"] == [401, "unauthorized"]
            assert others["unknown"] == [404, "not_found", "no-such-session"]
            assert others["candidate"] == [404, "no-such-session"]
            assert isinstance(others["servers"], list)
        await wait_until(lambda: gateway._health_details()["calls"] == 0)
