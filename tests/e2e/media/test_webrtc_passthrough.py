"""Media pass-through (issue 13 item 7): the softphone page in headless Chromium calls 7001, a number whose
route says ``media: passthrough``; the SIP side is a WebRTC endpoint (aiortc behind peers/sip_webrtc.py).
The browser's offer reaches it unchanged in an INVITE with ``Recv-Info``/``Supported: trickle-ice``, its
answer reaches the browser unchanged, and the candidates of both trickle: the browser's `ice` messages as
INFO (RFC 8840, Info-Package trickle-ice, sdpfrag bodies) to the peer, the peer's INFO as `ice` events to
the page. Media flows browser <-> peer directly: Chromium's fake-microphone beep at the peer, the peer's
440 Hz tone in the page, and the gateway allocated no RTP port and built no bridge for the call."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import wave
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import sdp
from gateway.runtime.passthrough import PassthroughMedia
from peers.audio import RATE
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.ports import free_range
from peers.sip_webrtc import SipWebRtcPeer, split_candidates
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.dialects.test_jsonrpc import RpcClient
from tests.e2e.harness import ALICE_SECRET, call_ports, gateway_config, running_gateway, wait_until
from tests.e2e.page_audio import FAKE_MIC_HZ, beeps, expect_page_hears
from tests.signaling.browser import Page, chromium_page, expect, log_in

ROUTES = [{"match": "7xxx", "media": "passthrough"}]


def _json(data: str | bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def write_wav(path: Path, pcm: bytes) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm)
    return path


async def page_calls_7001(page: Page, base: str) -> None:
    """The softphone page at ``base``, logged in as alice, dials 7001 (the pass-through route)."""
    await page.goto(base + "/")
    await log_in(page, "alice", ALICE_SECRET)
    await expect(page.locator("#status")).to_have_text("Registered as Alice")
    await page.locator("#number").fill("7001")
    await page.get_by_role("button", name="Call", exact=True).click()


async def peer_connected(peer: SipWebRtcPeer) -> None:
    """The peer's ICE and DTLS up within 15 s; else what it got by INFO, in order, in the failure."""
    try:
        await peer.media.connected(timeout=15)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; the INFO bodies it got, in order: {peer.infos_received}") from None


async def page_talks_to_7001(page: Page, base: str, peer: SipWebRtcPeer) -> None:
    """The page at ``base`` calls 7001, the peer answers, and the page hears its 440 Hz tone."""
    await page_calls_7001(page, base)
    await peer.wait_for_call()
    await peer.answer()
    await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
    await peer_connected(peer)
    await expect_page_hears(page, 440)


async def page_logged_in(page: Page, base: str) -> list[dict[str, Any]]:
    """The softphone page at ``base``, logged in as alice; the frames its WebSocket receives, kept."""
    frames: list[dict[str, Any]] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda data: frames.append(_json(data))))
    await page.goto(base + "/")
    await log_in(page, "alice", ALICE_SECRET)
    await expect(page.locator("#status")).to_have_text("Registered as Alice")
    return frames


async def expect_peer_hears_the_beep(peer: SipWebRtcPeer, tmp_path: Path, within: float = 8.0) -> None:
    """At least two of Chromium's fake-microphone beeps (one every 500 ms) in what the peer received,
    polled: the aiortc peer decodes in the test's process, late when the machine is loaded."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        matching, loud = beeps(write_wav(tmp_path / "peer.wav", peer.media.pcm.tobytes()), FAKE_MIC_HZ)
        if matching >= 2:
            return
        if loop.time() > deadline:
            raise AssertionError(f"the peer heard {matching} beeps in {loud} loud stretches")
        await asyncio.sleep(0.5)


async def test_chromium_calls_a_webrtc_sip_peer_with_media_passed_through(tmp_path: Path) -> None:
    media = {"rtp_ports": {"start": 37500, "end": 37599}}
    async with (
        SipWebRtcPeer(freq=440, trickle=True, user="7001", addresses=None) as peer,
        running_gateway(gateway_config(peer.address, media=media, routes=ROUTES)) as gateway,
        chromium_page() as page,
    ):
        frames: list[dict[str, Any]] = []  # what the page's WebSocket receives from the gateway
        page.on("websocket", lambda ws: ws.on("framereceived", lambda data: frames.append(_json(data))))
        await page_calls_7001(page, gateway.http_url)

        invite = await peer.wait_for_call()
        assert "trickle-ice" in (invite.headers.get("Recv-Info") or "")
        assert "trickle-ice" in ",".join(invite.headers.get_all("Supported"))
        offer = sdp.parse(invite.body.decode())  # Chromium's own offer: trickle, no candidates yet
        ice = offer.ice_for(0)
        assert offer.media[0].proto == "UDP/TLS/RTP/SAVPF" and ice is not None and "trickle" in ice.options
        assert offer.media[0].setup is sdp.Setup.ACTPASS and not offer.media[0].candidates
        await peer.answer()

        await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
        await peer_connected(peer)
        (call_id,) = list(gateway.driver._runtimes)
        passthrough = gateway.driver._runtimes[call_id].bridge
        assert isinstance(passthrough, PassthroughMedia)
        assert call_ports(gateway) == frozenset()  # no RTP port for this call
        await wait_until(lambda: passthrough.candidates_sent > 0, timeout=10)
        assert peer.infos_received and "a=candidate:" in peer.infos_received[0]
        assert passthrough.candidates_received > 0  # the peer's INFO reached the page as `ice`
        peer_ice = sdp.parse(peer.media.pc.localDescription.sdp).ice_for(0)
        assert peer_ice is not None

        def to_page() -> list[Any]:
            return [f["candidate"] for f in frames if f.get("type") == "ice" and f.get("call_id") == call_id]

        def ended(candidates: list[Any]) -> bool:  # the peer's candidates, then the end of candidates
            return (
                any(c and c["usernameFragment"] == peer_ice.ufrag and c["candidate"] for c in candidates)
                and candidates[-1] is not None
                and candidates[-1]["candidate"] == ""
            )

        # Playwright reports the page's frames a little after the gateway sent them (failed once under load)
        try:
            await wait_until(lambda: ended(to_page()), timeout=10)
        except AssertionError:
            raise AssertionError(frames) from None

        await expect_page_hears(page, 440)
        await expect_peer_hears_the_beep(peer, tmp_path)

        await page.get_by_role("button", name="Hang up").click()
        await asyncio.wait_for(peer.ended.wait(), 10)
        await expect(page.locator("#call-state")).to_have_text("No call")


# The page's call: the ICE ufrags of its two descriptions (the remote one is the SIP peer's, passed through).
UFRAGS = """() => {
    const pc = window.softphone.call && window.softphone.call.pc;
    const ufrag = (d) => { const m = d ? /^a=ice-ufrag:(\\S+)/m.exec(d.sdp) : null; return m ? m[1] : null; };
    return pc ? { local: ufrag(pc.localDescription), remote: ufrag(pc.remoteDescription), state: pc.connectionState } : null;
}"""


async def test_the_pages_ice_restart_reaches_the_webrtc_sip_peer_and_the_call_goes_on(tmp_path: Path) -> None:
    """Issue 34 item 1 for a pass-through call: the page restarts ICE (`call.restartIce()`, as on a network
    change): its new offer goes to the peer as it is in a re-INVITE, the peer restarts ICE in place and
    answers with new credentials, which reach the page as they are; the same call and DTLS association go
    on, both ways, over the new ICE session (the peer nominated a pair of it)."""
    media = {"rtp_ports": {"start": 37600, "end": 37699}}
    async with (
        SipWebRtcPeer(freq=440, trickle=True, user="7001", addresses=None) as peer,
        running_gateway(gateway_config(peer.address, media=media, routes=ROUTES)) as gateway,
        chromium_page() as page,
    ):
        await page_calls_7001(page, gateway.http_url)
        invite = await peer.wait_for_call()
        await peer.answer()
        await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
        await peer_connected(peer)
        await expect_page_hears(page, 440)
        before: dict[str, Any] = await page.evaluate(UFRAGS)

        assert await page.evaluate("window.softphone.call.restartIce()") is True  # in place, not reattached
        (reinvite,) = peer.reinvites
        offered = sdp.parse(reinvite.body.decode()).ice_for(0)
        first = sdp.parse(invite.body.decode()).ice_for(0)
        assert offered is not None and first is not None and offered.ufrag != first.ufrag
        assert offered.ufrag == (await page.evaluate(UFRAGS))["local"]  # the page's own, unchanged
        assert peer.restarts == 1
        after: dict[str, Any] = await page.evaluate(UFRAGS)
        assert after["remote"] != before["remote"], (before, after)  # the peer's new credentials, passed on
        await wait_until(lambda: peer.restarts_done == 1, timeout=10)  # a pair of the new session nominated
        assert gateway.driver.calls == 1 and call_ports(gateway) == frozenset()

        peer.media.clear()
        await expect_page_hears(page, 440)
        await expect_peer_hears_the_beep(peer, tmp_path)
        await page.get_by_role("button", name="Hang up").click()
        await asyncio.wait_for(peer.ended.wait(), 10)


def api_config(peer: SipWebRtcPeer, api_key: str, **sections: Any) -> Any:
    """The gateway with the pass-through route to ``peer`` and alice's API key dialling 7001 by default."""
    return gateway_config(
        peer.address,
        media={"rtp_ports": {"start": free_range()}},
        routes=ROUTES,
        alice_extra={"api_keys": [{"key": api_key, "default_dial": "7001"}]},
        **sections,
    )


async def aiortc_calls_7001(alice: WebUser, media: WebPeer, peer: SipWebRtcPeer) -> str:
    """alice's aiortc page (``media`` at 1000 Hz) calls the peer (440 Hz) on the pass-through route; the
    call's id once each hears the other."""
    call_id = await alice.call("7001", await media.offer())
    await peer.wait_for_call()
    await peer.answer()
    connected = await alice.wait_for("connected", call_id=call_id)
    await media.accept(connected["sdp"])
    await wait_until(lambda: media.heard(440, last=1.0) and peer.media.heard(1000, last=1.0), timeout=10)
    return call_id


async def rpc_calls_7001(
    client: RpcClient, announce: dict[str, Any], media: WebPeer, peer: SipWebRtcPeer
) -> str:
    """A JSON-RPC peer (``media`` at 1000 Hz) announces itself and calls the peer (440 Hz) on the
    pass-through route; the call's id once each hears the other."""
    await client.request("announce", announce)
    calling = asyncio.ensure_future(client.request("offer", {"sdp": await media.offer()}))
    await peer.wait_for_call()
    await peer.answer()
    reply = await calling
    await media.accept(reply["result"]["answer"]["sdp"])
    await wait_until(lambda: media.heard(440, last=1.0) and peer.media.heard(1000, last=1.0), timeout=10)
    return str(reply["result"]["call_id"])


async def test_a_pass_through_call_waits_for_its_browser_and_is_taken_back() -> None:
    """Issue 34 item 2 for a pass-through call: the web user's socket and RTCPeerConnection go (a reload,
    a network change); the call waits `reconnect_grace` instead of ending (the peer sees no BYE); her new
    login is told it in `calls`, and `reattach` with a new RTCPeerConnection's offer goes to the far end in
    a re-INVITE (a new DTLS fingerprint: the peer answers with a new connection), whose answer is
    `reattached`; the audio flows both ways again."""
    async with SipWebRtcPeer(freq=440, user="7001") as peer:
        config = gateway_config(
            peer.address,
            media={"rtp_ports": {"start": 37800, "end": 37899}},
            routes=ROUTES,
            web_auth={"reconnect_grace": 30},
        )
        async with running_gateway(config) as gateway:
            first, second = WebPeer(freq=1000), WebPeer(freq=1300)
            alice = WebUser(gateway.http_url, "alice", ALICE_SECRET)
            await alice.__aenter__()
            try:
                call_id = await aiortc_calls_7001(alice, first, peer)
            finally:
                await asyncio.gather(alice.close(), first.close())  # the page goes, its connection too
            await asyncio.sleep(1.0)
            assert not peer.ended.is_set() and gateway.driver.calls == 1
            try:
                async with WebUser(gateway.http_url, "alice", "", token=alice.token) as again:
                    [summary] = (await again.wait_for("calls"))["calls"]
                    assert summary["call_id"] == call_id and summary["state"] == "connected", summary
                    await again.request({"type": "reattach", "call_id": call_id, "sdp": await second.offer()})
                    reattached = await again.wait_for("reattached", call_id=call_id)
                    (reinvite,) = peer.reinvites
                    # as it is, in the call's session (RFC 3264 §8: the first o= line, its version raised)
                    assert but_origin(reinvite.body.decode()) == but_origin(second.pc.localDescription.sdp)
                    assert peer.renewals == 1
                    await second.accept(reattached["sdp"])
                    await wait_until(lambda: second.heard(440, last=1.0), timeout=10)
                    await wait_until(lambda: peer.media.heard(1300, last=1.0), timeout=10)
                    await again.request({"type": "hangup", "call_id": call_id})
                    await asyncio.wait_for(peer.ended.wait(), 10)
            finally:
                await second.close()


async def test_a_page_reload_keeps_the_pass_through_call(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The softphone page (Chromium) reloads mid-call ("leave page?" accepted): it logs in again with its
    token and takes the pass-through call back; its new RTCPeerConnection's offer reaches the peer in a
    re-INVITE, which the peer answers with a new connection; the page hears the peer's tone and the peer
    Chromium's beeps again, and the peer saw no BYE until the page hung up."""
    caplog.set_level(logging.INFO, logger="gateway")  # a failure shows the call's steps (it failed in CI)
    media = {"rtp_ports": {"start": 37900, "end": 37999}}
    async with (
        SipWebRtcPeer(freq=440, trickle=True, user="7001", addresses=None) as peer,
        running_gateway(gateway_config(peer.address, media=media, routes=ROUTES)) as gateway,
        chromium_page() as page,
    ):
        page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await page_talks_to_7001(page, gateway.http_url, peer)

        await page.reload()
        await expect(page.locator("#status")).to_have_text("Registered as Alice", timeout=15000)
        await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
        assert peer.renewals == 1 and not peer.ended.is_set()
        await peer_connected(peer)  # the peer's new connection
        await expect_page_hears(page, 440)
        await expect_peer_hears_the_beep(peer, tmp_path)
        await page.get_by_role("button", name="Hang up").click()
        await asyncio.wait_for(peer.ended.wait(), 10)


# the page's `reattach` requests, counted (a reload starts again at 0)
COUNT_REATTACHES = """(() => {
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    try { if (JSON.parse(data).type === "reattach") window.__reattaches = (window.__reattaches || 0) + 1; } catch {}
    return send.call(this, data);
  };
})();"""


async def test_a_page_reloaded_during_a_renegotiation_takes_its_call_back_once_it_is_over(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The page holds the pass-through call and reloads before the far end has answered the hold (it takes
    2.5 s here). Its reattach meanwhile is refused for now (`conflict`: the renegotiation is under way);
    the page tries again (REATTACH_WAIT_MS apart) and takes the call back once the hold is done: held, on
    a new connection with the far end, no BYE. Before, the page ended the call on the first refusal while
    the gateway kept it waiting for a browser until the grace ended it."""
    caplog.set_level(logging.INFO, logger="gateway")  # a failure shows the call's steps
    media = {"rtp_ports": {"start": free_range()}}
    async with (
        SipWebRtcPeer(freq=440, trickle=True, user="7001", addresses=None) as peer,
        running_gateway(gateway_config(peer.address, media=media, routes=ROUTES)) as gateway,
        chromium_page() as page,
    ):
        page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await page.add_init_script(COUNT_REATTACHES)
        await page_calls_7001(page, gateway.http_url)
        await peer.wait_for_call()
        await peer.answer()
        await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
        await peer_connected(peer)

        peer.reanswer_delay = 2.5
        await page.get_by_role("button", name="Hold", exact=True).click()
        await wait_until(lambda: len(peer.reinvites) == 1, timeout=5)  # the hold, not answered yet
        await page.reload()
        await expect(page.locator("#status")).to_have_text("Registered as Alice", timeout=15000)
        await expect(page.locator("#call-state")).to_have_text("On hold", timeout=20000)
        assert len(peer.reinvites) == 2 and peer.renewals == 1, "the take-back's offer, after the hold"
        assert await page.evaluate("window.__reattaches") >= 2, "no reattach was refused: nothing tried again"
        assert not peer.ended.is_set()
        peer.reanswer_delay = 0.0
        await page.get_by_role("button", name="Hang up").click()
        await asyncio.wait_for(peer.ended.wait(), 10)


def but_origin(description: str) -> str:
    """``description`` without its o= line."""
    return re.sub(r"(?m)^o=.*\r?\n", "", description)


def with_new_ice(description: str, ufrag: str, pwd: str) -> str:
    """``description`` as an ICE restart's offer would be: new ice-ufrag and ice-pwd (RFC 8839 §4.4.1.1.1)."""
    description = re.sub(r"(?m)^a=ice-ufrag:\S+", f"a=ice-ufrag:{ufrag}", description)
    return re.sub(r"(?m)^a=ice-pwd:\S+", f"a=ice-pwd:{pwd}", description)


async def test_a_jsonrpc_clients_ice_restart_reaches_the_webrtc_sip_peer(tmp_path: Path) -> None:
    """The same for a JSON-RPC client (aiortc, which cannot restart ICE itself: its offer is given new
    credentials, as `restartIce()` would): `offer {call_id, sdp}` for the pass-through call goes to the
    peer as it is in a re-INVITE, and the result is the peer's answer with its new credentials; the call
    goes on both ways (on the pair it had: the client never checks a new one)."""
    api_key = "e2e-jsonrpc-passthrough-key-0123"
    web = WebPeer(freq=1000)
    async with SipWebRtcPeer(freq=440, user="7001") as peer:
        config = gateway_config(
            peer.address,
            media={"rtp_ports": {"start": 37700, "end": 37799}},
            routes=ROUTES,
            alice_extra={"api_keys": [{"key": api_key, "default_dial": "7001"}]},
        )
        async with (
            running_gateway(config) as gateway,
            aiohttp.ClientSession() as http,
            http.ws_connect(f"{gateway.http_url.replace('http', 'ws')}/jsonrpc?api_key={api_key}") as ws,
        ):
            await _jsonrpc_restart(web, peer, ws)


async def _jsonrpc_restart(web: WebPeer, peer: SipWebRtcPeer, ws: aiohttp.ClientWebSocketResponse) -> None:
    client = RpcClient(ws)
    try:
        calling = asyncio.ensure_future(client.request("offer", {"sdp": await web.offer(), "type": "offer"}))
        await peer.wait_for_call()
        await peer.answer()
        reply = await calling
        call_id, first = reply["result"]["call_id"], reply["result"]["answer"]["sdp"]
        await web.accept(first)
        await wait_until(lambda: web.heard(440, last=1.0) and peer.media.heard(1000, last=1.0), timeout=10)

        offer = with_new_ice(web.pc.localDescription.sdp, "rstU", "restartpasswordrestart")
        reply = await client.request("offer", {"call_id": call_id, "sdp": offer, "type": "offer"})
        assert reply["result"]["call_id"] == call_id, reply
        (reinvite,) = peer.reinvites
        assert but_origin(reinvite.body.decode()) == but_origin(offer)  # as it is, in the call's session
        answered = sdp.parse(reply["result"]["answer"]["sdp"]).ice_for(0)
        before = sdp.parse(first).ice_for(0)
        assert answered is not None and before is not None and answered.ufrag != before.ufrag
        assert peer.restarts == 1
        web.clear()
        peer.media.clear()
        await wait_until(lambda: web.heard(440, last=1.0) and peer.media.heard(1000, last=1.0), timeout=10)
        reply = await client.request("disconnect", {"call_id": call_id})
        assert reply["result"]["status"] == "disconnected", reply
        await asyncio.wait_for(peer.ended.wait(), 10)
    finally:
        await web.close()


async def test_an_http_api_clients_ice_restart_reaches_the_webrtc_sip_peer(tmp_path: Path) -> None:
    """The same over the HTTP API: `POST /webrtc/offer` with the session's own `session_id` and the
    restarted offer goes to the peer in a re-INVITE, and the response is the peer's answer with its new
    credentials, for the same session and call (it was 409: the gateway looked for an ICE session of its
    own to restart); the call goes on both ways."""
    api_key = "e2e-http-passthrough-key-01234567"
    web = WebPeer(freq=1000)
    async with SipWebRtcPeer(freq=440, user="7001") as peer:
        config = api_config(peer, api_key)
        headers = {"Authorization": f"Bearer {api_key}"}
        async with running_gateway(config) as gateway, aiohttp.ClientSession(headers=headers) as http:
            url = f"{gateway.http_url}/webrtc/offer"
            body = {"sdp": {"type": "offer", "sdp": await web.offer()}, "session_id": "pt-restart"}
            try:
                posting = asyncio.ensure_future(http.post(url, json=body))
                await peer.wait_for_call()
                await peer.answer()
                async with await posting as response:
                    assert response.status == 200, await response.text()
                    first = await response.json()
                await web.accept(first["sdp"]["sdp"])
                await wait_until(
                    lambda: web.heard(440, last=1.0) and peer.media.heard(1000, last=1.0), timeout=10
                )

                offer = with_new_ice(web.pc.localDescription.sdp, "rstH", "restartpasswordrestart")
                async with http.post(url, json={**body, "sdp": {"type": "offer", "sdp": offer}}) as response:
                    assert response.status == 200, await response.text()
                    second = await response.json()
                assert (second["session_id"], second["call_id"]) == ("pt-restart", first["call_id"]), second
                (reinvite,) = peer.reinvites
                assert but_origin(reinvite.body.decode()) == but_origin(
                    offer
                )  # as it is, in the call's session
                answered = sdp.parse(second["sdp"]["sdp"]).ice_for(0)
                before = sdp.parse(first["sdp"]["sdp"]).ice_for(0)
                assert answered is not None and before is not None and answered.ufrag != before.ufrag
                assert peer.restarts == 1 and peer.renewals == 0
                web.clear()
                peer.media.clear()
                await wait_until(
                    lambda: web.heard(440, last=1.0) and peer.media.heard(1000, last=1.0), timeout=10
                )
                async with http.post(
                    f"{gateway.http_url}/webrtc/close", json={"session_id": "pt-restart"}
                ) as response:
                    assert response.status == 200, await response.text()
                await asyncio.wait_for(peer.ended.wait(), 10)
            finally:
                await web.close()


async def test_a_jsonrpc_peer_resumes_its_pass_through_call_on_a_new_socket(tmp_path: Path) -> None:
    """Issue 34 item 2 for a JSON-RPC peer's pass-through call: its socket closes without `disconnect`;
    the call goes on (the media was never the gateway's: both ends still hear each other); a new socket
    announcing the same `peer_id` resumes the peer with the call, and its new RTCPeerConnection's
    `offer {call_id, sdp}` goes to the far end in a re-INVITE (a new DTLS fingerprint: the far end
    answers with a new connection), whose answer is the result; the audio flows on the new connection."""
    api_key = "e2e-jsonrpc-pt-resume-key-0123456"
    announce = {"peer_id": "alice-pt", "capabilities": {"incoming_calls": True}}
    first, second = WebPeer(freq=1000), WebPeer(freq=1300)
    async with SipWebRtcPeer(freq=440, user="7001") as peer:
        config = api_config(peer, api_key, web_auth={"reconnect_grace": 30})
        url = "/jsonrpc?api_key=" + api_key
        async with running_gateway(config) as gateway, aiohttp.ClientSession() as http:
            try:
                async with http.ws_connect(gateway.http_url.replace("http", "ws") + url) as ws:
                    call_id = await rpc_calls_7001(RpcClient(ws), announce, first, peer)
                await asyncio.sleep(1.0)
                assert not peer.ended.is_set() and gateway.driver.calls == 1
                async with http.ws_connect(gateway.http_url.replace("http", "ws") + url) as ws:
                    client = RpcClient(ws)
                    resumed = await client.request("announce", announce)
                    assert resumed["result"]["resumed"] is True, resumed
                    assert resumed["result"]["call_ids"] == [call_id], resumed
                    await first.close()
                    renewed = await client.request("offer", {"call_id": call_id, "sdp": await second.offer()})
                    assert "result" in renewed, renewed
                    assert peer.renewals == 1
                    await second.accept(renewed["result"]["answer"]["sdp"])
                    await wait_until(lambda: second.heard(440, last=1.0), timeout=10)
                    await wait_until(lambda: peer.media.heard(1300, last=1.0), timeout=10)
                    await client.request("disconnect", {"call_id": call_id})
                    await asyncio.wait_for(peer.ended.wait(), 10)
            finally:
                await asyncio.gather(first.close(), second.close())


@pytest.mark.parametrize("recv_info", [True, False], ids=["recv-info", "no-recv-info"])
async def test_browser_candidates_reach_only_a_peer_that_takes_the_package(recv_info: bool) -> None:
    """The aiortc browser stand-in trickles (its offer without candidates, then `ice` messages): they go
    to the SIP side as trickle-ice INFO when its 200 said `Recv-Info: trickle-ice`, and not at all
    otherwise (RFC 6086 §4.2.1); its own candidates still reach the browser as `ice` events."""
    media = {"rtp_ports": {"start": 37600, "end": 37699}}
    async with (
        SipWebRtcPeer(freq=440, trickle=True, user="7002", recv_info=recv_info) as peer,
        running_gateway(gateway_config(peer.address, media=media, routes=ROUTES)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        browser = WebPeer(freq=1000)
        try:
            offer, mid, candidates = split_candidates(await browser.offer())
            call_id = await alice.call("7002", offer)
            await peer.wait_for_call()
            answering = asyncio.ensure_future(peer.answer())
            for candidate in [*candidates, ""]:
                init = {"candidate": candidate, "sdpMid": mid, "sdpMLineIndex": 0}
                await alice.request({"type": "ice", "call_id": call_id, "candidate": init})
            connected = await alice.wait_for("connected", call_id=call_id)
            await answering
            assert "a=candidate" not in connected["sdp"]  # the peer's answer, as it is
            event = await alice.wait_for("ice", call_id=call_id)
            assert event["candidate"]["candidate"].startswith("candidate:")
            if recv_info:
                await wait_until(lambda: len(peer.infos_received) == len(candidates) + 1, timeout=10)
                fragment = sdp.decode_sdpfrag(peer.infos_received[0])
                assert [str(c.port) in candidates[0] for _, c in fragment.candidates()] == [True]
            else:
                await asyncio.sleep(1.0)
                assert peer.infos_received == []
            assert call_ports(gateway) == frozenset()
            await peer.hangup()
            await alice.wait_for("ended", call_id=call_id)
        finally:
            await browser.close()


async def test_webrtc_sip_peer_calls_chromium_with_media_passed_through(tmp_path: Path) -> None:
    """A call *to* the web user: 7003's route says pass-through and its offer is WebRTC's, so the INVITE's
    offer reaches the page unchanged, the page's answer goes unchanged into the 200 (with Recv-Info and
    Supported: trickle-ice), the peer's candidates (trickled by INFO after the ACK) reach the page as
    `ice` events and the page's candidates reach the peer as INFO, held until the ACK; media flows
    browser <-> peer with no port or bridge on the gateway."""
    media = {"rtp_ports": {"start": 37700, "end": 37799}}
    async with (
        running_gateway(gateway_config(None, media=media, routes=ROUTES)) as gateway,
        SipWebRtcPeer(freq=440, trickle=True, user="7003", addresses=None) as peer,
        chromium_page() as page,
    ):
        frames = await page_logged_in(page, gateway.http_url)
        host, port = gateway.sip_address
        dialing = asyncio.ensure_future(peer.call(f"sip:1001@{host}:{port}"))
        await expect(page.locator("#incoming")).to_be_visible(timeout=10000)
        offered = next(f for f in frames if f.get("type") == "incoming")
        call_id = offered["call_id"]
        await page.get_by_role("button", name="Answer").click()
        final = await asyncio.wait_for(dialing, 15)
        assert final.status == 200, final
        assert "trickle-ice" in (final.headers.get("Recv-Info") or "")
        assert "trickle-ice" in ",".join(final.headers.get_all("Supported"))
        answer = sdp.parse(final.body.decode())  # Chromium's own answer
        assert answer.media[0].proto == "UDP/TLS/RTP/SAVPF" and answer.media[0].setup is sdp.Setup.ACTIVE
        assert not answer.has("ice-lite") and not answer.media[0].candidates  # not the gateway's

        def offers() -> list[dict[str, Any]]:  # the page's frames arrive here a little later
            return [f for f in frames if f.get("type") == "offer" and f.get("call_id") == call_id]

        await wait_until(lambda: bool(offers()), timeout=5)
        assert (
            offers()[-1]["sdp"] == peer.invite_body
        )  # the peer's offer as it sent it  # the peer's offer as it sent it

        await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
        await peer_connected(peer)
        passthrough = gateway.driver._runtimes[call_id].bridge
        assert isinstance(passthrough, PassthroughMedia)
        assert call_ports(gateway) == frozenset()
        await wait_until(lambda: passthrough.candidates_sent > 0 and bool(peer.infos_received), timeout=10)
        assert "a=candidate:" in peer.infos_received[0]
        assert passthrough.candidates_received > 0

        await expect_page_hears(page, 440)
        await expect_peer_hears_the_beep(peer, tmp_path)

        bye = await peer.hangup()
        assert bye.status == 200
        await expect(page.locator("#call-state")).to_have_text("No call")


async def test_plain_rtp_caller_on_a_passthrough_route_is_terminated(tmp_path: Path) -> None:
    """A route says pass-through, but the caller offers plain RTP (a desk phone): a browser cannot take
    that, so the call is bridged as any other (ports held while it lasts)."""
    media = {"rtp_ports": {"start": 37800, "end": 37899}}
    async with (
        running_gateway(gateway_config(None, media=media, routes=ROUTES)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
    ):
        require_desk_phone()
        host, port = gateway.sip_address
        async with DeskPhone(tmp_path, user="7004", tone=440) as phone:
            browser = WebPeer(freq=1000)
            try:
                number = await phone.call(f"sip:1001@{host}:{port}")
                ringing = await alice.wait_for("incoming")
                await alice.answer(ringing["call_id"], browser.answer)
                await wait_until(lambda: browser.heard(440, last=1.0), timeout=10)
                runtime = gateway.driver._runtimes[ringing["call_id"]]
                assert not isinstance(runtime.bridge, PassthroughMedia)
                assert call_ports(gateway) != frozenset()
                await phone.hangup(number)
                await alice.wait_for("ended", call_id=ringing["call_id"])
            finally:
                await browser.close()


# The page's call: the direction of its first m-line in each description.
DIRECTIONS = """() => {
    const pc = window.softphone.call && window.softphone.call.pc;
    const dir = (d) => { const m = d ? /^a=(sendrecv|sendonly|recvonly|inactive)/m.exec(d.sdp) : null; return m ? m[1] : null; };
    return pc ? { local: dir(pc.localDescription), remote: dir(pc.remoteDescription) } : null;
}"""


async def audio_stalls(peer: SipWebRtcPeer, within: float = 8.0) -> None:
    """What the peer receives stops: a second in which less than 0.2 s of audio came (polled)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    marks: list[tuple[float, int]] = []
    while loop.time() < deadline:
        now, size = loop.time(), len(peer.media.pcm)
        marks.append((now, size))
        earlier = [s for t, s in marks if now - t >= 1.0]
        if earlier and size - earlier[-1] < 0.2 * RATE:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the peer still receives audio: {marks[-1][1] - marks[0][1]} samples")


async def test_the_webrtc_sip_peer_holds_and_resumes_a_pass_through_call(tmp_path: Path) -> None:
    """Issue 68 item 4: the SIP side (a WebRTC PBX) holds the pass-through call with a re-INVITE saying
    a=sendonly: the offer reaches the page, whose answer (recvonly) goes into the 200, so Chromium stops
    sending and the page shows the call held by the other side; its resume (a=sendrecv) is answered
    sendrecv and the audio flows both ways again. Before, the 200 said sendrecv at once (the browser's
    old description) and nothing was held."""
    media = {"rtp_ports": {"start": free_range()}}
    async with (
        SipWebRtcPeer(freq=440, trickle=True, user="7001", addresses=None) as peer,
        running_gateway(gateway_config(peer.address, media=media, routes=ROUTES)) as gateway,
        chromium_page() as page,
    ):
        await page_talks_to_7001(page, gateway.http_url, peer)
        await expect_peer_hears_the_beep(peer, tmp_path)

        held = await peer.reinvite("sendonly")
        assert held.status == 200, held
        assert sdp.parse(held.body.decode()).direction_for(0) is sdp.Direction.RECVONLY, held.body.decode()
        await expect(page.locator("#call-state")).to_have_text("Held by the other side", timeout=10000)
        assert await page.evaluate(DIRECTIONS) == {"local": "recvonly", "remote": "sendonly"}
        await audio_stalls(peer)  # Chromium sends nothing to the holder
        assert gateway.driver.calls == 1 and call_ports(gateway) == frozenset()

        resumed = await peer.reinvite("sendrecv")
        assert resumed.status == 200, resumed
        assert sdp.parse(resumed.body.decode()).direction_for(0) is sdp.Direction.SENDRECV
        await expect(page.locator("#call-state")).to_have_text("Connected", timeout=10000)
        assert await page.evaluate(DIRECTIONS) == {"local": "sendrecv", "remote": "sendrecv"}
        peer.media.clear()
        await expect_peer_hears_the_beep(peer, tmp_path)
        await expect_page_hears(page, 440)
        await page.get_by_role("button", name="Hang up").click()
        await asyncio.wait_for(peer.ended.wait(), 10)


async def test_candidates_trickle_both_ways_in_the_early_dialog(tmp_path: Path) -> None:
    """Issue 68 item 4, RFC 8840 §4.1: the peer answers in a 183 (its answer, Recv-Info: trickle-ice)
    and trickles its candidates in an INFO of that early dialog, which the gateway takes (200) and hands
    the page as `ice` events; the page's candidates reach the peer as INFO in the early dialog too
    (before, they waited for the 200), so ICE and DTLS come up browser <-> peer before the call is
    answered; the 200 then connects a call whose audio already flows."""
    media = {"rtp_ports": {"start": free_range()}}
    async with (
        SipWebRtcPeer(freq=440, trickle=True, user="7001", addresses=None) as peer,
        running_gateway(gateway_config(peer.address, media=media, routes=ROUTES)) as gateway,
        chromium_page() as page,
    ):
        frames: list[dict[str, Any]] = []
        page.on("websocket", lambda ws: ws.on("framereceived", lambda data: frames.append(_json(data))))
        await page_calls_7001(page, gateway.http_url)
        await peer.wait_for_call()
        info = await peer.answer_early()
        assert info.status == 200, info
        await expect(page.locator("#call-state")).to_have_text("Ringing (early audio)…", timeout=10000)
        await wait_until(lambda: any("a=candidate:" in body for body in peer.early_infos), timeout=10)
        await wait_until(lambda: any(f.get("type") == "ice" for f in frames), timeout=10)
        await peer_connected(peer)  # ICE and DTLS before the 200
        assert not peer._acked.is_set()

        await peer.answer()
        await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
        await expect_page_hears(page, 440)
        await expect_peer_hears_the_beep(peer, tmp_path)
        assert call_ports(gateway) == frozenset()
        await page.get_by_role("button", name="Hang up").click()
        await asyncio.wait_for(peer.ended.wait(), 10)


async def test_a_callers_candidates_reach_the_ringing_page_in_the_early_dialog(tmp_path: Path) -> None:
    """Issue 68 item 4, the other way: a WebRTC caller on a pass-through route gets a 180 saying
    Recv-Info: trickle-ice (RFC 8840 §4.1), so it trickles its candidates in an INFO of the early
    dialog; the gateway takes it (200) and keeps the candidates for the page, which has them as `ice`
    events with the offer once it answers (before, the 180 named no package and the INFO was refused
    469): the peer trickles nothing after the 200, and the call's ICE comes up on those candidates."""
    media = {"rtp_ports": {"start": free_range()}}
    async with (
        running_gateway(gateway_config(None, media=media, routes=ROUTES)) as gateway,
        SipWebRtcPeer(freq=440, trickle=True, user="7003", addresses=None) as peer,
        chromium_page() as page,
    ):
        frames = await page_logged_in(page, gateway.http_url)
        host, port = gateway.sip_address
        dialing = asyncio.ensure_future(peer.call(f"sip:1001@{host}:{port}", early_trickle=True))
        await expect(page.locator("#incoming")).to_be_visible(timeout=10000)
        await wait_until(lambda: peer.early_info is not None, timeout=10)
        assert peer.early_info is not None and peer.early_info.status == 200, peer.early_info
        ringing = [r for r in peer.responses if r.status == 180]
        assert ringing and "trickle-ice" in (ringing[0].headers.get("Recv-Info") or "")

        def to_page() -> list[Any]:
            return [f["candidate"] for f in frames if f.get("type") == "ice"]

        assert not dialing.done()  # still ringing
        await page.get_by_role("button", name="Answer").click()
        await wait_until(lambda: any(c and c["candidate"] for c in to_page()), timeout=10)
        final = await asyncio.wait_for(dialing, 15)
        assert final.status == 200, final
        await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
        await peer_connected(peer)
        await expect_page_hears(page, 440)
        await expect_peer_hears_the_beep(peer, tmp_path)
        assert peer.infos_sent == 1  # the early INFO only
        bye = await peer.hangup()
        assert bye.status == 200
