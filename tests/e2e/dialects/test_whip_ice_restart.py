"""WHIP ICE restart (RFC 9725 §4.3.3) with headless Chromium as the WHIP client, through a whole gateway to
the pjsua2 desk phone: POST the offer, hear the phone's tone; then `pc.restartIce()`, a new offer, its
credentials and candidates PATCHed as an sdpfrag with `If-Match: *` -> 200 with the gateway's new
credentials and candidates and a new ETag; Chromium applies them and moves to a new pair of the new ICE
session (new local port: Chromium gathers anew), and the media keeps flowing both ways over it (the
page hears the phone's tone, the phone hears Chromium's beeps after the restart). DTLS is not redone.
Refusals on the way: no If-Match 428, a stale one 412."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import sdp
from gateway.media.bridge import MediaBridge
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.ports import free_range
from tests.e2e.harness import gateway_config, running_gateway, wait_until
from tests.e2e.page_audio import assert_beeps, page_tone
from tests.e2e.softphone.test_js_sdp_client import wait_js
from tests.signaling.browser import Page, chromium_page

API_KEY = "e2e-whip-restart-key-0123456789"
PHONE_HZ = 440.0

PUBLISH = """async ([endpoint, token]) => {
    const pc = new RTCPeerConnection({ iceServers: [] });
    window.pc = pc;
    pc.ontrack = (e) => { document.getElementById('remote-audio').srcObject = e.streams[0]; };
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
    for (const track of stream.getTracks()) pc.addTrack(track, stream);
    window.gathered = () => new Promise((resolve) => {
        pc.onicecandidate = (e) => { if (!e.candidate) resolve(); };
    });
    const done = window.gathered();
    await pc.setLocalDescription(await pc.createOffer());
    await done;
    const response = await fetch(endpoint, { method: 'POST', body: pc.localDescription.sdp,
        headers: { 'Content-Type': 'application/sdp', 'Authorization': `Bearer ${token}` } });
    if (response.status !== 201) return { status: response.status, body: await response.text() };
    window.resource = new URL(response.headers.get('Location'), endpoint).href;
    window.etag = response.headers.get('ETag');
    window.answer = await response.text();
    await pc.setRemoteDescription({ type: 'answer', sdp: window.answer });
    return { status: 201, etag: window.etag, resource: window.resource };
}"""

# The selected pair of the connection (RTCTransportStats.selectedCandidatePairId) and audio counters.
SELECTED = """async () => {
    const stats = await window.pc.getStats();
    let pair = null, received = 0;
    stats.forEach((s) => {
        if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
        if (s.type === 'inbound-rtp' && s.kind === 'audio') received = s.bytesReceived;
    });
    if (!pair) return { received };
    const local = stats.get(pair.localCandidateId), remote = stats.get(pair.remoteCandidateId);
    return { local: `${local.address}:${local.port}`, remote: `${remote.address}:${remote.port}`, received,
             state: pair.state, dtls: [...stats.values()].find((s) => s.type === 'transport').dtlsState };
}"""

# RFC 9725 §4.3.3: restartIce(), a new offer, its ICE credentials and gathered candidates in an sdpfrag.
RESTART_OFFER = """async () => {
    const pc = window.pc;
    const done = window.gathered();
    pc.restartIce();
    await pc.setLocalDescription(await pc.createOffer());
    await done;
    const lines = pc.localDescription.sdp.split('\\r\\n');
    const value = (prefix) => lines.find((l) => l.startsWith(prefix)).slice(prefix.length);
    const mid = value('a=mid:');
    return `a=ice-ufrag:${value('a=ice-ufrag:')}\\r\\na=ice-pwd:${value('a=ice-pwd:')}\\r\\n`
        + `m=audio 9 UDP/TLS/RTP/SAVPF 111\\r\\na=mid:${mid}\\r\\n`
        + lines.filter((l) => l.startsWith('a=candidate:')).map((l) => l + '\\r\\n').join('')
        + 'a=end-of-candidates\\r\\n';
}"""

PATCH = """async ([fragment, ifMatch, token]) => {
    const headers = { 'Content-Type': 'application/trickle-ice-sdpfrag', 'Authorization': `Bearer ${token}` };
    if (ifMatch) headers['If-Match'] = ifMatch;
    const response = await fetch(window.resource, { method: 'PATCH', body: fragment, headers });
    return { status: response.status, etag: response.headers.get('ETag'),
             type: response.headers.get('Content-Type'), body: await response.text() };
}"""

# The server's new credentials into the answer (the rest of it still applies, §4.3.3), its candidates
# added as trickled ones.
APPLY = """async (fragment) => {
    const lines = fragment.split('\\r\\n');
    const value = (prefix) => lines.find((l) => l.startsWith(prefix)).slice(prefix.length);
    const mid = value('a=mid:');
    const answer = window.answer.split('\\r\\n')
        .filter((l) => !l.startsWith('a=candidate:') && l !== 'a=end-of-candidates')
        .map((l) => l.startsWith('a=ice-ufrag:') ? `a=ice-ufrag:${value('a=ice-ufrag:')}`
                  : l.startsWith('a=ice-pwd:') ? `a=ice-pwd:${value('a=ice-pwd:')}` : l).join('\\r\\n');
    await window.pc.setRemoteDescription({ type: 'answer', sdp: answer });
    let added = 0;
    for (const line of lines.filter((l) => l.startsWith('a=candidate:'))) {
        await window.pc.addIceCandidate({ candidate: line.slice(2), sdpMid: mid });
        added += 1;
    }
    return added;
}"""


async def connected_to_phone(page: Page, phone: DeskPhone) -> tuple[int, dict[str, Any]]:
    """The phone's call number once both sides are up and the page (its ``window.pc``) hears the
    phone's tone; the page's selected pair (``SELECTED``)."""
    incoming = await phone.wait_for("incoming")
    await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
    await wait_js(page, "window.pc.connectionState === 'connected'", 10)
    heard, _ = await page_tone(page, PHONE_HZ, seconds=1.5)
    assert heard >= 0.5, f"the page hears the phone before the restart: {heard:.2f}"
    before: dict[str, Any] = await page.evaluate(SELECTED)
    assert before.get("local") and before["dtls"] == "connected", before
    return int(incoming["call"]), before


def _web_port(bridge: MediaBridge) -> int | None:
    address = bridge.web_media_address()
    return int(address[1]) if address else None


async def test_chromium_restarts_ice_over_whip_and_the_call_goes_on(tmp_path: Path) -> None:
    require_desk_phone()
    async with DeskPhone(tmp_path, user="2000", tone=PHONE_HZ) as phone:
        config = gateway_config(
            phone.address,
            alice_extra={"api_keys": [{"key": API_KEY}]},
            media={"rtp_ports": {"start": free_range()}},  # this branch's range
        )
        async with running_gateway(config) as gateway, chromium_page() as page:
            base = gateway.http_url
            await page.goto(f"{base}/")
            published: dict[str, Any] = await page.evaluate(PUBLISH, [f"{base}/whip/2000", API_KEY])
            assert published["status"] == 201, published
            number, before = await connected_to_phone(page, phone)

            fragment: str = await page.evaluate(RESTART_OFFER)
            offered = sdp.decode_sdpfrag(fragment)
            assert offered.ice is not None and offered.media[0].candidates, fragment
            refused = await page.evaluate(PATCH, [fragment, None, API_KEY])
            assert refused["status"] == 428, refused  # a restart carries If-Match: *
            refused = await page.evaluate(PATCH, [fragment, '"stale"', API_KEY])
            assert refused["status"] == 412, refused
            restarted: dict[str, Any] = await page.evaluate(PATCH, [fragment, "*", API_KEY])
            assert restarted["status"] == 200, restarted
            assert restarted["type"].startswith("application/trickle-ice-sdpfrag"), restarted
            assert restarted["etag"] and restarted["etag"] != published["etag"], restarted
            answer = sdp.decode_sdpfrag(restarted["body"])
            old = sdp.parse(await page.evaluate("window.answer"))
            old_ice = old.media[0].ice or old.ice
            assert answer.ice is not None and old_ice is not None
            assert answer.ice.ufrag != old_ice.ufrag and answer.ice.pwd != old_ice.pwd
            assert answer.media and answer.media[0].candidates and answer.media[0].end_of_candidates

            assert await page.evaluate(APPLY, restarted["body"]) == len(answer.media[0].candidates)
            moved = "(async () => { const s = await (%s)(); return s.local && s.local !== %r && s.state === 'succeeded'; })()"
            await wait_js(page, moved % (SELECTED, before["local"]), 15)
            await wait_js(page, "['connected', 'completed'].includes(window.pc.iceConnectionState)", 10)
            after: dict[str, Any] = await page.evaluate(SELECTED)
            assert after["dtls"] == "connected" and after["local"] != before["local"], (before, after)
            # the gateway sends to Chromium's new candidate: Python's path and the fast lane's
            bridge = next(iter(gateway.driver.runtimes)).bridge
            assert isinstance(bridge, MediaBridge)
            new_port = int(after["local"].rsplit(":", 1)[1])
            await wait_until(lambda: _web_port(bridge) == new_port, timeout=5)

            # media over the new pair, both ways, with the old candidates of Chromium gone
            await asyncio.sleep(1.0)
            start = (await page.evaluate(SELECTED))["received"]
            heard, level = await page_tone(page, PHONE_HZ, seconds=2.0)
            assert heard >= 0.5 and level > 0.01, f"the page hears the phone after the restart: {heard:.2f}"
            end: dict[str, Any] = await page.evaluate(SELECTED)
            assert end["received"] - start > 8000, (start, end)  # ~2 s of audio came in meanwhile
            assert end["local"] == after["local"], (after, end)  # still on the new pair

            stale = await page.evaluate(PATCH, [fragment, published["etag"], API_KEY])
            assert stale["status"] == 412, stale  # the first ICE session's ETag is gone
            deleted = await page.evaluate(
                """async (token) => (await fetch(window.resource, { method: 'DELETE',
                    headers: { 'Authorization': `Bearer ${token}` } })).status""",
                API_KEY,
            )
            assert deleted == 200
            await phone.wait_for("state", call=number, state="DISCONNECTED")
            assert_beeps(await phone.wait_for_recording(number), "the phone after the restart", last=2.5)
        await wait_until(lambda: gateway._health_details()["calls"] == 0)
