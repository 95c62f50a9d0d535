"""The admin REST API, page and webhooks with real peers: a pjsua2 desk phone called by an aiortc web user through a
gateway started as the tests do. The API lists the call with both parties, hangs it up (the phone gets
BYE), transfers it (the phone gets REFER and calls the target); 401 without credentials, 403 for a user
without the admin role. Local aiohttp receivers check that ringing, answered and ended arrive signed
(HMAC-SHA256), and that a receiver answering 500 twice gets the event on the third try; Chromium shows the
call on the admin page, whose Hang up button ends it, and whose call table fits its card at 1280 and 360
px wide."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from gateway.app import Gateway
from gateway.ops.webhooks import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, verify_signature
from peers.demo import require_desk_phone
from peers.phone import DeskPhone
from peers.ports import free_port
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, BOB_SECRET, gateway_config, running_gateway, wait_until
from tests.e2e.sip_interop.test_transfer import DOMAIN
from tests.signaling.browser import chromium_page, expect, log_in

TOKEN = "admin-token-for-the-tests-0123"
HOOK_SECRET = "webhook-secret-0123456789"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


def basic(user: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


@dataclass
class Receiver:
    """A webhook receiver on loopback: each POST's headers and body; answers `statuses` in turn, then 200."""

    statuses: list[int] = field(default_factory=list)
    posts: list[tuple[dict[str, str], bytes, float]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.posts.append((dict(request.headers), await request.read(), time.monotonic()))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)

    def events(self, call_id: str) -> list[dict[str, Any]]:
        """The bodies for `call_id` whose signature verifies (each delivery once)."""
        seen: dict[str, dict[str, Any]] = {}
        for headers, body, _ in self.posts:
            assert verify_signature(HOOK_SECRET.encode(), headers[SIGNATURE_HEADER], body, time.time()), (
                headers
            )
            event = json.loads(body)
            assert headers[EVENT_HEADER] == event["event"] and headers[DELIVERY_HEADER] == event["id"]
            if event["call_id"] == call_id:
                seen.setdefault(event["id"], event)
        return list(seen.values())


@asynccontextmanager
async def receivers(*items: Receiver) -> AsyncIterator[None]:
    runners = []
    try:
        for item in items:
            app = web.Application()
            app.router.add_post("/hook", item.handle)
            runner = web.AppRunner(app)
            await runner.setup()
            port = free_port()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            item.url = f"http://127.0.0.1:{port}/hook"
            runners.append(runner)
        yield
    finally:
        for runner in runners:
            await runner.cleanup()


def admin_config(phone: DeskPhone, hooks: list[dict[str, Any]], rtp_start: int, **sections: Any) -> Any:
    return gateway_config(
        phone.address,
        domain=DOMAIN,
        alice_extra={"roles": ["admin"]},
        admin={"token": TOKEN},
        webhooks=hooks,
        media={"rtp_ports": {"start": rtp_start, "end": rtp_start + 199}},
        **sections,
    )


async def connect(alice: WebUser, peer: WebPeer, phone: DeskPhone) -> tuple[str, int]:
    call_id = await alice.call("2000", await peer.offer())
    connected = await alice.wait_for("connected", call_id=call_id)
    await peer.accept(connected["sdp"])
    incoming = await phone.wait_for("incoming")
    await phone.wait_for("state", call=incoming["call"], state="CONFIRMED")
    return call_id, int(incoming["call"])


async def get(http: aiohttp.ClientSession, gateway: Gateway, path: str, **headers: str) -> tuple[int, Any]:
    async with http.get(gateway.http_url + path, headers=headers) as reply:
        return reply.status, await reply.json()


async def post(
    http: aiohttp.ClientSession, gateway: Gateway, path: str, body: Any = None, **headers: str
) -> tuple[int, Any]:
    async with http.post(gateway.http_url + path, json=body, headers=headers) as reply:
        return reply.status, await reply.json()


async def test_list_hang_up_and_signed_webhooks_with_retries(tmp_path: Path) -> None:
    require_desk_phone()
    everything, flaky = Receiver(), Receiver(statuses=[500, 500])
    async with receivers(everything, flaky), DeskPhone(tmp_path, user="2000", tone=440) as phone:
        hooks = [
            {"url": everything.url, "secret": HOOK_SECRET, "backoff": 0.1},
            {"url": flaky.url, "secret": HOOK_SECRET, "events": ["ended"], "backoff": 0.3, "max_attempts": 4},
        ]
        async with (
            running_gateway(admin_config(phone, hooks, 37400)) as gateway,
            WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
            aiohttp.ClientSession() as http,
        ):
            peer = WebPeer(freq=1000)
            try:
                call_id, number = await connect(alice, peer, phone)
                await wait_until(lambda: peer.heard(440, last=1.0), timeout=10)

                status, body = await get(http, gateway, "/admin/api/calls")
                assert status == 401 and body["code"] == 401, body
                status, body = await get(http, gateway, "/admin/api/calls", **basic("bob", BOB_SECRET))
                assert status == 403 and body["reason"] == "not_admin", body

                status, body = await get(http, gateway, "/admin/api/calls", **ADMIN)
                assert status == 200 and body["instances"] == {"local": "ok"}, body
                [call] = body["calls"]
                assert call["call_id"] == call_id and call["state"] == "connected", call
                assert call["from"] == f"sip:1001@{DOMAIN}" and call["to"] == f"sip:2000@{DOMAIN}", call
                assert call["user"] == "alice" and call["dialect"] == "json" and call["instance"] is None
                assert call["direction"] == "outbound" and call["answered"] is not None
                assert call["legs"]["sip"]["codec"] and call["legs"]["web"]["codec"], call
                assert call["legs"]["sip"]["packets_received"] > 0, call  # the phone's tone, so far
                # alice is an admin herself: her Basic login and a session token from it work too
                status, session = await post(
                    http, gateway, "/admin/api/session", **basic("alice", ALICE_SECRET)
                )
                assert status == 200 and session["user"] == "alice", session
                status, one = await get(
                    http, gateway, f"/admin/api/calls/{call_id}", Authorization=f"Bearer {session['token']}"
                )
                assert status == 200 and one["call_id"] == call_id, one
                status, body = await get(http, gateway, "/admin/api/calls/c-nobody", **ADMIN)
                assert status == 404 and body["field"] == "call_id", body

                status, body = await post(http, gateway, f"/admin/api/calls/{call_id}/hangup", **ADMIN)
                assert status == 200 and body["status"] == "hung_up", body
                await phone.wait_for("state", call=number, state="DISCONNECTED")  # the phone got BYE
                ended = await alice.wait_for("ended", call_id=call_id)
                assert ended["reason"] == "admin_hangup", ended
                status, body = await get(http, gateway, "/admin/api/calls", **ADMIN)
                assert body["calls"] == [], body

                await wait_until(lambda: len(everything.events(call_id)) == 3, timeout=10)
                events = {e["event"]: e for e in everything.events(call_id)}
                assert set(events) == {"ringing", "answered", "ended"}, events
                assert (
                    events["answered"]["data"]["to"] == f"sip:2000@{DOMAIN}"
                    and events["answered"]["data"]["user"] == "alice"
                )
                assert events["ended"]["data"]["end_reason"] == "admin_hangup", events["ended"]
                assert events["ended"]["data"]["hangup_by"] == "gateway"

                # the flaky receiver: 500, 500, then 200 for the one `ended` delivery, backing off between
                await wait_until(lambda: len(flaky.posts) == 3, timeout=10)
                deliveries = {headers[DELIVERY_HEADER] for headers, _, _ in flaky.posts}
                assert deliveries == {events["ended"]["id"]}, flaky.posts
                times = [at for _, _, at in flaky.posts]
                assert times[1] - times[0] >= 0.25 and times[2] - times[1] >= 0.55, times
                assert flaky.events(call_id)[0]["event"] == "ended"
            finally:
                await peer.close()


async def test_transfer_sends_the_phone_a_refer_and_the_call_moves(tmp_path: Path) -> None:
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone_a,
        DeskPhone(tmp_path, user="2001", host=DOMAIN, port=5060, tone=880) as phone_b,
        running_gateway(admin_config(phone_a, [], 37600)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
        aiohttp.ClientSession() as http,
    ):
        peer = WebPeer(freq=1000)
        try:
            call_id, number = await connect(alice, peer, phone_a)
            path = f"/admin/api/calls/{call_id}/transfer"
            status, body = await post(http, gateway, path, {"to": "2001"}, **ADMIN)
            assert status == 400 and body["field"] == "target", body
            async with http.post(gateway.http_url + path, data="target=2001", headers=ADMIN) as reply:
                assert reply.status == 415, await reply.text()
            status, body = await post(http, gateway, path, {"target": "2001"}, **basic("bob", BOB_SECRET))
            assert status == 403, body

            status, body = await post(http, gateway, path, {"target": "2001"}, **ADMIN)
            assert status == 202 and body["status"] == "transferring", body
            request = await phone_a.wait_for("transfer_request", call=number)
            assert request["to"].strip("<>") == f"sip:2001@{DOMAIN}", request
            ended = await alice.wait_for("ended", call_id=call_id, timeout=20)
            assert ended["reason"] == "transferred", ended
            await phone_a.wait_for("state", call=number, state="DISCONNECTED")
            at_b = await phone_b.wait_for("incoming")  # A called B: the call moved
            await phone_b.wait_for("state", call=at_b["call"], state="CONFIRMED")
            await phone_b.hangup(at_b["call"])
            status, body = await get(http, gateway, "/admin/api/calls", **ADMIN)
            assert body["calls"] == [], body
        finally:
            await peer.close()


async def test_a_transfer_to_a_routed_number_refers_to_the_routes_pbx(tmp_path: Path) -> None:
    """`routes` send 9xxx to the trunk PBX `b` without the 9 (issue 67 item 9): the admin's transfer to 9123
    REFERs the phone to sip:123@<b's domain>, where alice's own dial of 9123 goes, not to the default PBX."""
    require_desk_phone()
    trunk = "trunk.invalid"
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone_a,
        running_gateway(
            admin_config(
                phone_a,
                [],
                37800,
                pbxs={"b": {"address": f"127.0.0.1:{free_port()}", "domain": trunk}},
                routes=[{"match": "9.", "pbx": "b", "rewrite": [{"strip": 1}]}],
            )
        ) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
        aiohttp.ClientSession() as http,
    ):
        peer = WebPeer(freq=1000)
        try:
            call_id, number = await connect(alice, peer, phone_a)
            path = f"/admin/api/calls/{call_id}/transfer"
            status, body = await post(http, gateway, path, {"target": "9123"}, **ADMIN)
            assert status == 202, body
            request = await phone_a.wait_for("transfer_request", call=number)
            assert request["to"].strip("<>") == f"sip:123@{trunk}", request
        finally:
            await peer.close()


async def test_the_admin_page_shows_the_call_and_its_button_hangs_it_up(tmp_path: Path) -> None:
    """Chromium (Playwright) on /admin: an admin logs in, sees the live call, downloads its trace, and its
    Hang up button ends it at the phone."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(admin_config(phone, [], 37800, trace={"enabled": True})) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
        chromium_page() as page,
    ):
        peer = WebPeer(freq=1000)
        try:
            await page.goto(gateway.http_url + "/admin")
            await log_in(page, "alice", "not-her-secret")  # 401: said on the page, no browser prompt
            await expect(page.locator("#error")).to_contain_text("wrong user id or secret")
            await log_in(page, "bob", BOB_SECRET)  # no admin role: refused, stays on the login form
            await expect(page.locator("#error")).to_contain_text("has no admin role")
            await log_in(page, "alice", ALICE_SECRET)
            await expect(page.locator("#calls-panel")).to_be_visible()
            await expect(page.locator("#no-calls")).to_be_visible()

            call_id, number = await connect(alice, peer, phone)
            row = page.locator(f'tr[data-call-id="{call_id}"]')
            await expect(row).to_be_visible(timeout=10_000)  # the page polls every 2 s
            await expect(row).to_contain_text(f"sip:1001@{DOMAIN}")
            await expect(row).to_contain_text(f"sip:2000@{DOMAIN}")
            await expect(row.locator("td.state")).to_have_text("connected")
            await expect(row.locator("td.leg").first).to_contain_text("MOS", timeout=10_000)
            async with page.expect_download() as download_info:
                await row.get_by_role("button", name="Trace").click()
            download = await download_info.value
            assert download.suggested_filename == f"{call_id}.trace.txt"
            trace = Path(await download.path()).read_text()
            assert "INVITE sip:2000@" in trace and "SIP/2.0 200 OK" in trace, trace[:2000]
            await row.get_by_role("button", name="Hang up").click()
            await phone.wait_for("state", call=number, state="DISCONNECTED")
            ended = await alice.wait_for("ended", call_id=call_id)
            assert ended["reason"] == "admin_hangup", ended
            await expect(row).to_have_count(0)
            await expect(page.locator("#no-calls")).to_be_visible()
        finally:
            await peer.close()


# Where each button of a call's row lies against the calls card and against the scroll box it sits in (the
# card itself when nothing scrolls); with the page's own width against the window's (no sideways scrolling).
ROW_GEOMETRY = """(callId) => {
  const box = (element) => {
    const r = element.getBoundingClientRect();
    return { left: r.left, right: r.right, top: r.top, bottom: r.bottom };
  };
  const card = document.getElementById("calls-panel");
  const row = document.querySelector(`tr[data-call-id="${callId}"]`);
  let scroller = row.parentElement;
  while (scroller !== card && !["auto", "scroll"].includes(getComputedStyle(scroller).overflowX)) {
    scroller = scroller.parentElement;
  }
  return {
    card: box(card),
    scroller: box(scroller),
    buttons: [...row.querySelectorAll("button")].map((b) => ({ name: b.textContent, ...box(b) })),
    page: document.documentElement.scrollWidth,
    window: window.innerWidth,
  };
}"""


def inside(inner: dict[str, float], outer: dict[str, float]) -> bool:
    return (
        inner["left"] >= outer["left"] - 0.5
        and inner["right"] <= outer["right"] + 0.5
        and inner["top"] >= outer["top"] - 0.5
        and inner["bottom"] <= outer["bottom"] + 0.5
    )


async def test_the_call_table_fits_its_card_at_1280_and_360_px(tmp_path: Path) -> None:
    """Issue 67 item 7: with a live call (both legs' figures shown), every button of its row lies within
    the calls card, and within the box it scrolls in, at 1280 px (a laptop) and 360 px (a phone) wide, and
    the page itself never scrolls sideways; a screenshot of each width is kept in tmp_path."""
    require_desk_phone()
    async with (
        DeskPhone(tmp_path, user="2000", tone=440) as phone,
        running_gateway(admin_config(phone, [], 38400)) as gateway,
        WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice,
        chromium_page() as page,
    ):
        peer = WebPeer(freq=1000)
        try:
            call_id, _ = await connect(alice, peer, phone)
            await page.goto(gateway.http_url + "/admin")
            await log_in(page, "alice", ALICE_SECRET)
            row = page.locator(f'tr[data-call-id="{call_id}"]')
            await expect(row).to_be_visible()
            await expect(row.locator("td.leg").first).to_contain_text("jitter")  # the widest the row gets
            await expect(row.locator("td.leg").last).to_contain_text("jitter")
            for width in (1280, 360):
                await page.set_viewport_size({"width": width, "height": 800})
                await expect(row.get_by_role("button", name="Trace")).to_be_visible()
                geometry = await page.evaluate(ROW_GEOMETRY, call_id)
                assert len(geometry["buttons"]) == 2, geometry
                for button in geometry["buttons"]:
                    assert inside(button, geometry["card"]), (width, button, geometry)
                    assert inside(button, geometry["scroller"]), (width, button, geometry)
                assert geometry["page"] <= geometry["window"], (width, geometry)
                shot = tmp_path / f"admin-calls-{width}px.png"
                await page.screenshot(path=str(shot), full_page=True)
                assert shot.stat().st_size > 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", shot
        finally:
            await peer.close()
