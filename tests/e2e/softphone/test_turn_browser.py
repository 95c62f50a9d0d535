"""The page's own client (`/static/webrtc-client.js`) in headless Chromium with TURN REST credentials
(ice.turn): each new RTCPeerConnection gets fresh ones, and with the direct path blocked (every
RTCPeerConnection of the page relay-only) a call to the pjsua2 desk phone is relayed by a real coturn,
audio both ways.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from gateway.signaling.turn_rest import turn_rest_credential
from peers.coturn import running_coturn
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway, wait_until
from tests.e2e.page_audio import assert_beeps, page_tone
from tests.signaling.browser import Page, chromium_page

SECRET = "browser-turn-shared-secret-0123"
PHONE_HZ = 440.0

LOGIN = """async ([user, secret, relayOnly]) => {
  const { GatewayClient } = await import("/static/webrtc-client.js");
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Native {  // the direct path blocked: relay candidates only
    constructor(configuration) {
      super(relayOnly ? { ...configuration, iceTransportPolicy: "relay" } : configuration);
      window.pc = this;
    }
  };
  window.client = new GatewayClient({ reconnect: false });
  const info = await window.client.login({ user, secret });
  return info.ice_servers;
}"""

SELECTED_LOCAL = """async () => {
  const stats = await window.pc.getStats();
  let pair = null;
  stats.forEach((report) => {
    if (report.type === "transport" && report.selectedCandidatePairId) pair = stats.get(report.selectedCandidatePairId);
  });
  return pair ? stats.get(pair.localCandidateId).candidateType : null;
}"""


async def wait_js(page: Page, expression: str, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await page.evaluate(expression):
        assert loop.time() < deadline, f"not true in time: {expression}"
        await asyncio.sleep(0.05)


def expiry(server: dict[str, Any]) -> int:
    return int(str(server["username"]).split(":", 1)[0])


async def test_each_peer_connection_gets_fresh_turn_credentials() -> None:
    config = gateway_config(
        None, ice={"turn": {"urls": ["turn:127.0.0.1:3478"], "shared_secret": SECRET, "ttl": 60}}
    )
    async with running_gateway(config) as gateway, chromium_page() as page:
        await page.goto(f"{gateway.http_url}/")
        [login] = await page.evaluate(LOGIN, ["alice", ALICE_SECRET, False])
        assert 55 <= expiry(login) - time.time() <= 65
        await asyncio.sleep(1.2)  # a later second: a fresh credential has a later expiry
        [fresh] = await page.evaluate(
            "async () => (await window.client._peerConnection()).getConfiguration().iceServers"
        )
        assert expiry(fresh) > expiry(login) and str(fresh["username"]).endswith(":alice")
        assert fresh["credential"] == turn_rest_credential(SECRET.encode(), fresh["username"])


async def test_browser_call_relayed_by_coturn_when_the_direct_path_is_blocked(tmp_path: Path) -> None:
    require_desk_phone()
    with running_coturn(tmp_path, SECRET) as turn:
        async with DeskPhone(tmp_path, user="2000", tone=PHONE_HZ) as phone:
            config = gateway_config(
                phone.address,
                media={"rtp_ports": {"start": 37800}},
                ice={"turn": {"urls": [turn.url], "shared_secret": SECRET, "ttl": 600}},
            )
            async with running_gateway(config) as gateway, chromium_page() as page:
                await page.goto(f"{gateway.http_url}/")
                [server] = await page.evaluate(LOGIN, ["alice", ALICE_SECRET, True])
                assert server["urls"] == [turn.url] and str(server["username"]).endswith(":alice")
                await page.evaluate(
                    """async () => {
                      const call = await window.client.call("2000");
                      call.addEventListener("track", (e) => {
                        document.getElementById("remote-audio").srcObject = e.detail.stream;
                      });
                      window.call = call;
                    }"""
                )
                incoming = await phone.wait_for("incoming")
                await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
                await wait_js(page, "window.pc && window.pc.connectionState === 'connected'", 15)
                assert await page.evaluate(SELECTED_LOCAL) == "relay"
                assert turn.allocations() >= 1, turn.log_text()[-2000:]
                await wait_js(page, "!!document.getElementById('remote-audio').srcObject", 10)
                heard, level = await page_tone(page, PHONE_HZ, seconds=2.0)
                assert heard >= 0.5 and level > 0.01, (
                    f"the page hears the phone: {heard:.2f}, rms {level:.3f}"
                )
                await page.evaluate("window.call.hangup()")
                await phone.wait_for("state", call=incoming["call"], state="DISCONNECTED")
                await wait_until(lambda: gateway._health_details()["calls"] == 0)
            assert_beeps(await phone.wait_for_recording(incoming["call"]), "the phone")
