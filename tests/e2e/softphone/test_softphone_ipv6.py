"""The softphone page on an IPv6-only and on a dual-stack network (issue 68 item 2): headless Chromium in
a network namespace of its own (peers/netns.py) whose only addresses are IPv6, the gateway on the other
end of its veth pair (its page served on the IPv6 address), the pjsua2 desk phone on IPv4 loopback as the
PBX. The gateway's web leg offers host candidates of both families; the browser's ICE takes the IPv6 pair
and audio flows both ways (the phone's 440 Hz in the page, Chromium's beep in the phone's recording),
when the page calls the phone and when the phone calls the page. With the direct path blocked, a coturn
on the IPv6 address relays the call (TURN over IPv6); a browser with both families connects too."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from gateway.app import Gateway
from gateway.signaling.turn_rest import turn_rest_credential, turn_rest_username
from peers.coturn import running_coturn
from peers.demo import require_desk_phone
from peers.netns import ClientNetwork, require_netns
from peers.phone import DeskPhone
from peers.ports import free_port
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway
from tests.e2e.page_audio import assert_phone_heard_the_browser, expect_page_hears
from tests.signaling.browser import (
    RECORD_PEER_CONNECTIONS,
    Page,
    audio_flowing,
    chromium_binary,
    chromium_page,
    expect,
    log_in,
)  # fmt: skip

PHONE_HZ = 440.0
SECRET = "ipv6-turn-shared-secret-0123456"
SITE = 202  # this file's namespaces (10.202.<band>.0/24, fd42:202:<band>::/64): not the network change test's

# What the page's peer connection uses: the candidates of the gateway it was told (remote description)
# and the selected pair's local and remote candidates (address, type; the TURN server's URL of a relay).
ICE_VIEW = """async () => {
  const pc = window.__pcs[window.__pcs.length - 1];
  const remote = (pc.remoteDescription ? pc.remoteDescription.sdp : "").split(/\\r?\\n/)
    .filter((line) => line.startsWith("a=candidate:"))
    .map((line) => { const f = line.split(" "); return { address: f[4], type: f[7] }; });
  const stats = await pc.getStats();
  let pair = null;
  stats.forEach((report) => {
    if (report.type === "transport" && report.selectedCandidatePairId) pair = stats.get(report.selectedCandidatePairId);
  });
  const side = (id) => {
    const c = stats.get(id);
    return c.url ? { address: c.address, type: c.candidateType, url: c.url } : { address: c.address, type: c.candidateType };
  };
  return { remote, local: pair ? side(pair.localCandidateId) : null, peer: pair ? side(pair.remoteCandidateId) : null };
}"""


# Every RTCPeerConnection of the page relay-only (added before RECORD_PEER_CONNECTIONS): the direct path
# blocked, as behind a firewall that lets only the TURN server's port out.
RELAY_ONLY = """(() => {
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = function (configuration, ...rest) {
    return new Native({ ...(configuration || {}), iceTransportPolicy: "relay" }, ...rest);
  };
  window.RTCPeerConnection.prototype = Native.prototype;
  Object.setPrototypeOf(window.RTCPeerConnection, Native);
})();"""


def version(address: str) -> int:
    return ipaddress.ip_address(address).version


@asynccontextmanager
async def page_on(
    tmp_path: Path,
    network: ClientNetwork,
    phone: DeskPhone,
    *,
    http_host: str | None = None,
    scripts: Sequence[str] = (),
    **sections: Any,
) -> AsyncIterator[tuple[Page, Gateway]]:
    """Alice's page in ``network``'s namespace (``scripts`` run before the page's own), logged in to a
    gateway whose HTTP listens on ``http_host`` (default: the IPv6 address of the veth's root side), the
    desk phone its PBX."""
    host = http_host or network.host_ip6
    config = gateway_config(phone.address, http={"host": host, "port": free_port()}, **sections)
    async with running_gateway(config) as gateway:
        base = gateway.http_url
        assert base.startswith(f"http://[{host}]:" if ":" in host else f"http://{host}:"), base
        # the desktop browser: the headless shell keeps http:// insecure despite the flag below
        chromium = network.wrapper(chromium_binary(full=True), tmp_path)
        flags = [f"--unsafely-treat-insecure-origin-as-secure={base}"]  # getUserMedia on http://
        async with chromium_page(flags=flags, executable=chromium) as page:
            for script in (*scripts, RECORD_PEER_CONNECTIONS):
                await page.add_init_script(script)
            await page.goto(base + "/")
            await log_in(page, "alice", ALICE_SECRET)
            await expect(page.locator("#status")).to_have_text("Registered as Alice", timeout=15000)
            yield page, gateway


async def ice_view(page: Page) -> dict[str, Any]:
    view: dict[str, Any] = await page.evaluate(ICE_VIEW)
    return view


async def page_calls_phone(page: Page, phone: DeskPhone) -> tuple[int, dict[str, Any]]:
    """The page dials the phone; once connected and the phone's tone is heard in the page, the phone's
    call number and what the page's ICE uses (``ICE_VIEW``)."""
    await page.locator("#number").fill("2000")
    await page.get_by_role("button", name="Call", exact=True).click()
    incoming = await phone.wait_for("incoming")
    await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
    await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
    await audio_flowing(page, 10.0)
    await expect_page_hears(page, PHONE_HZ)
    return int(incoming["call"]), await ice_view(page)


async def page_hangs_up(page: Page, phone: DeskPhone, call: int) -> None:
    """The page hangs up; the phone heard Chromium's beep (audio from the browser too)."""
    await page.get_by_role("button", name="Hang up", exact=True).click()
    await phone.wait_for("state", call=call, state="DISCONNECTED")
    await expect(page.locator("#call-state")).to_have_text("No call", timeout=10000)
    assert_phone_heard_the_browser(await phone.wait_for_recording(call))


async def test_an_ipv6_only_browser_and_an_ipv4_phone_call_each_other(tmp_path: Path) -> None:
    require_desk_phone()
    require_netns()
    with ClientNetwork(families=("IP6",), site=SITE) as network:
        async with (
            DeskPhone(tmp_path, user="2000", tone=PHONE_HZ) as phone,
            page_on(tmp_path, network, phone) as (page, gateway),
        ):
            # the page calls the phone
            call, view = await page_calls_phone(page, phone)
            families = {version(c["address"]) for c in view["remote"] if c["type"] == "host"}
            assert families == {4, 6}, view  # the gateway offers host candidates of both families
            assert view["local"] == {"address": network.address6, "type": "host"}, view
            assert view["peer"] == {"address": network.host_ip6, "type": "host"}, view
            await page_hangs_up(page, phone, call)

            # the phone calls the page
            host, port = gateway.sip_address
            number = await phone.call(f"sip:1001@{host}:{port}")
            await expect(page.locator("#incoming")).to_be_visible(timeout=10000)
            await page.get_by_role("button", name="Answer").click()
            await expect(page.locator("#call-state")).to_have_text("Connected", timeout=15000)
            await phone.wait_for("state", call=number, state="CONFIRMED")
            await audio_flowing(page, 10.0)
            view = await ice_view(page)
            assert view["peer"] == {"address": network.host_ip6, "type": "host"}, view
            await expect_page_hears(page, PHONE_HZ)
            await phone.hangup(number)
            await expect(page.locator("#call-state")).to_have_text("No call", timeout=10000)
            assert_phone_heard_the_browser(await phone.wait_for_recording(number))


async def test_an_ipv6_only_browser_is_relayed_by_turn_over_ipv6(tmp_path: Path) -> None:
    """ice.turn names a coturn by its IPv6 address: the page, relay-only, allocates there over IPv6 (its
    namespace has no IPv4) and the call's media goes through the relay. Chromium asks for the default
    relay family, IPv4 (RFC 6156 §4.2): the TURN server relays from an IPv4 address as well."""
    require_desk_phone()
    require_netns()
    with (
        ClientNetwork(families=("IP6",), site=SITE) as network,
        running_coturn(
            tmp_path, SECRET, host=network.host_ip6, relays=(network.host_ip6, "127.0.0.1")
        ) as turn,
    ):
        assert turn.url.startswith(f"turn:[{network.host_ip6}]:"), turn.url
        turn_section = {"turn": {"urls": [turn.url], "shared_secret": SECRET, "ttl": 600}}
        async with (
            DeskPhone(tmp_path, user="2000", tone=PHONE_HZ) as phone,
            page_on(tmp_path, network, phone, scripts=[RELAY_ONLY], ice=turn_section) as (page, _),
        ):
            call, view = await page_calls_phone(page, phone)
            assert view["local"] == {"address": "127.0.0.1", "type": "relay", "url": turn.url}, view
            assert turn.allocations() >= 1, turn.log_text()[-2000:]
            await page_hangs_up(page, phone, call)


async def test_the_gateway_reaches_its_turn_server_by_an_ipv6_address(tmp_path: Path) -> None:
    """ice.gateway: `turn:[fd42:202::1]:PORT` (RFC 7065 §3.1's IP-literal host), a TURN server the
    gateway reaches over IPv6 that relays on IPv4. The gateway gathers its host candidate on 127.0.0.1
    only (ice.host_addresses), which the browser's namespace cannot reach: the call connects through the
    gateway's relayed candidate. aiortc's own URL parser took no bracketed host: every call failed as its
    web leg was made."""
    require_desk_phone()
    require_netns()
    with (
        ClientNetwork(families=("IP4", "IP6"), site=SITE) as network,
        running_coturn(tmp_path, SECRET, host=network.host_ip6, relays=(network.host_ip,)) as turn,
    ):
        username = turn_rest_username(int(time.time()) + 600, "gateway")
        server = {
            "urls": [turn.url],
            "username": username,
            "credential": turn_rest_credential(SECRET.encode(), username),
        }
        ice = {"gateway": [server], "host_addresses": ["127.0.0.1"]}
        async with (
            DeskPhone(tmp_path, user="2000", tone=PHONE_HZ) as phone,
            page_on(tmp_path, network, phone, http_host=network.host_ip, ice=ice) as (page, _),
        ):
            call, view = await page_calls_phone(page, phone)
            relayed = [c["address"] for c in view["remote"] if c["type"] == "relay"]
            assert relayed == [network.host_ip], view  # the gateway's relayed candidate, on coturn
            assert view["peer"] == {"address": network.host_ip, "type": "relay"}, view
            assert turn.allocations() >= 1, turn.log_text()[-2000:]
            await page_hangs_up(page, phone, call)


async def test_a_dual_stack_browser_reaches_the_gateway_on_its_configured_addresses(tmp_path: Path) -> None:
    """A browser with IPv4 and IPv6 (its page loaded over IPv4); ice.host_addresses names the gateway's
    address of each family on the browser's network: only those (and 127.0.0.1, a gateway on loopback)
    are offered, the browser connects on one of them and audio flows both ways."""
    require_desk_phone()
    require_netns()
    with ClientNetwork(families=("IP4", "IP6"), site=SITE) as network:
        ice = {"host_addresses": [network.host_ip, network.host_ip6]}
        async with (
            DeskPhone(tmp_path, user="2000", tone=PHONE_HZ) as phone,
            page_on(tmp_path, network, phone, http_host=network.host_ip, ice=ice) as (page, _),
        ):
            call, view = await page_calls_phone(page, phone)
            offered = {c["address"] for c in view["remote"] if c["type"] == "host"}
            assert offered == {network.host_ip, network.host_ip6, "127.0.0.1"}, view
            mine = {4: network.address, 6: network.address6}
            assert view["peer"]["address"] in (network.host_ip, network.host_ip6), view
            assert view["local"]["address"] == mine[version(view["peer"]["address"])], view
            await page_hangs_up(page, phone, call)
