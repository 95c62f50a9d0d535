"""ICE restart in place over JSON-RPC and the HTTP API (issue 34 item 3), with Chromium's own RTCPeerConnection
(aiortc 1.16 cannot restart ICE: its RTCIceTransport starts once) in a page of the gateway, the signaling
done from Python, through a whole gateway to the pjsua2 desk phone.

- HTTP API: `POST /webrtc/offer` (caller-chosen `session_id`) calls the phone; after `pc.restartIce()` the
  new offer POSTed with the same `session_id` is answered 200 for the same session and call, with the
  gateway's new ICE credentials; Chromium moves to a pair of the new session, the gateway's media follows
  it, the tone is heard in the page and Chromium's beeps in the phone's recording afterwards. The same
  offer again restarts nothing (409, as for a taken id), and so does any offer once the session ended
  (the phone hung up).
- JSON-RPC: `offer {to}` calls the phone; `offer {call_id, sdp}` with the restarted offer is answered
  with the gateway's new credentials for the same call, and the call goes on the same way; an `offer`
  for the call that restarts nothing is -32602 naming `sdp`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

import sdp
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.ports import free_range
from tests.e2e.dialects.test_jsonrpc import RpcClient
from tests.e2e.dialects.test_whip_ice_restart import SELECTED, connected_to_phone
from tests.e2e.harness import gateway_config, running_gateway, wait_until, web_media_moved
from tests.e2e.page_audio import assert_beeps, page_tone
from tests.signaling.browser import Page, chromium_page

API_KEY = "e2e-offer-restart-key-0123456789"
BEARER = {"Authorization": f"Bearer {API_KEY}"}
PHONE_HZ = 440.0

# A RTCPeerConnection with the fake microphone; its offer once gathered (`window.offer(restart)`), and a
# description applied (`window.apply(answer)`).
SETUP = """() => {
    const pc = new RTCPeerConnection({ iceServers: [] });
    window.pc = pc;
    pc.ontrack = (e) => { document.getElementById('remote-audio').srcObject = e.streams[0]; };
    window.offer = async (restart) => {
        if (pc.getSenders().length === 0) {
            const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
            for (const track of stream.getTracks()) pc.addTrack(track, stream);
        }
        if (restart) pc.restartIce();
        const gathered = new Promise((resolve) => { pc.onicecandidate = (e) => { if (!e.candidate) resolve(); }; });
        await pc.setLocalDescription(await pc.createOffer());
        await gathered;
        return pc.localDescription.sdp;
    };
    window.apply = (answer) => pc.setRemoteDescription({ type: 'answer', sdp: answer });
}"""


def _ufrag(description: str) -> str:
    parsed = sdp.parse(description)
    ice = parsed.media[0].ice or parsed.ice
    assert ice is not None, description
    return ice.ufrag


async def _setup(page: Page, base: str) -> str:
    await page.goto(f"{base}/")
    await page.evaluate(SETUP)
    offer: str = await page.evaluate("window.offer(false)")
    return offer


async def _goes_on(page: Page, gateway: Any, before: dict[str, Any]) -> None:
    """Chromium on a pair of the new ICE session, the gateway sending there, DTLS as it was, the tone."""

    async def pair() -> str | None:
        now: dict[str, Any] = await page.evaluate(SELECTED)
        return now.get("local") if now.get("state") == "succeeded" else None

    await web_media_moved(gateway, pair, before["local"])
    now: dict[str, Any] = await page.evaluate(SELECTED)
    assert now["dtls"] == "connected", now
    await asyncio.sleep(1.0)
    heard, level = await page_tone(page, PHONE_HZ, seconds=2.0)
    assert heard >= 0.5 and level > 0.01, f"the page hears the phone after the restart: {heard:.2f}"


def _phone_heard(wav: Path) -> None:
    assert_beeps(wav, "the phone after the restart", last=2.5)


def _config(phone: DeskPhone) -> Any:
    return gateway_config(
        phone.address,
        alice_extra={"api_keys": [{"key": API_KEY, "default_dial": "2000"}]},
        media={"rtp_ports": {"start": free_range()}},  # this branch's range
    )


async def test_an_http_offer_for_its_own_session_restarts_ice_in_place(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=PHONE_HZ) as phone,
        running_gateway(_config(phone)) as gateway,
        chromium_page() as page,
        aiohttp.ClientSession(headers=BEARER) as http,
    ):
        url = f"{gateway.http_url}/webrtc/offer"
        offer = await _setup(page, gateway.http_url)
        body = {
            "sdp": {"type": "offer", "sdp": offer},
            "session_id": "restart-1",
            "metadata": {"dial": "2000"},
        }
        async with http.post(url, json=body) as response:
            assert response.status == 200, await response.text()
            first = await response.json()
        assert first["sdp"]["type"] == "answer", first
        await page.evaluate("(answer) => window.apply(answer)", first["sdp"]["sdp"])
        number, before = await connected_to_phone(page, phone)

        restart: str = await page.evaluate("window.offer(true)")
        assert _ufrag(restart) != _ufrag(offer)
        async with http.post(url, json={**body, "sdp": {"type": "offer", "sdp": restart}}) as response:
            assert response.status == 200, await response.text()
            second = await response.json()
        assert (second["session_id"], second["call_id"]) == ("restart-1", first["call_id"]), second
        assert _ufrag(second["sdp"]["sdp"]) != _ufrag(first["sdp"]["sdp"])  # the gateway's new credentials
        await page.evaluate("(answer) => window.apply(answer)", second["sdp"]["sdp"])
        await _goes_on(page, gateway, before)
        assert gateway.driver.calls == 1

        async with http.post(url, json={**body, "sdp": {"type": "offer", "sdp": restart}}) as response:
            assert response.status == 409, await response.text()  # restarts nothing: a taken id, as before
        await asyncio.sleep(2.0)  # Chromium's beeps over the new path for the recording's last seconds
        await phone.hangup(number)  # the session ends, and stays readable for a while
        await phone.wait_for("state", call=number, state="DISCONNECTED")
        await wait_until(lambda: gateway.driver.calls == 0)
        _phone_heard(await phone.wait_for_recording(number))
        fresh: str = await page.evaluate("window.offer(true)")
        async with http.post(url, json={**body, "sdp": {"type": "offer", "sdp": fresh}}) as response:
            assert response.status == 409, await response.text()  # a finished session restarts nothing
    await wait_until(lambda: gateway._health_details()["calls"] == 0)


async def test_a_jsonrpc_offer_for_its_call_restarts_ice_in_place(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=PHONE_HZ) as phone,
        running_gateway(_config(phone)) as gateway,
        chromium_page() as page,
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{gateway.http_url.replace('http', 'ws')}/jsonrpc?api_key={API_KEY}") as ws,
    ):
        client = RpcClient(ws)
        offer = await _setup(page, gateway.http_url)
        reply = await client.request("offer", {"sdp": {"type": "offer", "sdp": offer}, "to": "2000"})
        call_id, answer = reply["result"]["call_id"], reply["result"]["answer"]["sdp"]
        await page.evaluate("(answer) => window.apply(answer)", answer)
        number, before = await connected_to_phone(page, phone)

        restart: str = await page.evaluate("window.offer(true)")
        reply = await client.request("offer", {"call_id": call_id, "sdp": {"type": "offer", "sdp": restart}})
        assert reply["result"]["call_id"] == call_id, reply
        again = reply["result"]["answer"]
        assert again["type"] == "answer" and _ufrag(again["sdp"]) != _ufrag(answer), reply
        await page.evaluate("(answer) => window.apply(answer)", again["sdp"])
        await _goes_on(page, gateway, before)
        assert gateway.driver.calls == 1

        refused = await client.request("offer", {"call_id": call_id, "sdp": restart})
        assert refused["error"]["code"] == -32602 and refused["error"]["data"]["field"] == "sdp", refused
        await asyncio.sleep(2.0)
        reply = await client.request("disconnect", {"call_id": call_id})
        assert "result" in reply, reply
        await phone.wait_for("state", call=number, state="DISCONNECTED")
        _phone_heard(await phone.wait_for_recording(number))
    await wait_until(lambda: gateway._health_details()["calls"] == 0)
