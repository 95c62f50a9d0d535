"""A SIP library's own SUBSCRIBE through the gateway (issue 37 item 1): unmodified JsSIP 3.13 and SIP.js
0.21 in headless Chromium subscribe over SIP WebSocket to extension 1002's dialog state; the gateway
relays it to the PBX (sipp's notifier, peers/scenarios/uas_blf_mwi.xml) and each of the PBX's NOTIFYs
reaches the library: early (ringing), confirmed, terminated. Its unsubscribe (Expires: 0) ends the PBX
side too. A package other than dialog and message-summary gets 489."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from peers.binaries import require_binary
from peers.sipp import Sipp
from peers.softphones import Library, Softphone, require_softphones, softphone_server
from tests.e2e.harness import running_gateway, wait_until
from tests.e2e.websip.test_sip_websocket import ALICE_SIP_PASSWORD, realm_of, websocket_config
from tests.e2e.websip.test_softphone_libraries import allowing
from tests.signaling.browser import chromium_page

SUBSCRIBE: dict[Library, str] = {
    "jssip": """async ({url, uri, password, target, event, accept}) => {
  window.lampNotes = window.lampNotes || [];
  const ua = new JsSIP.UA({sockets: [new JsSIP.WebSocketInterface(url)], uri, password, register: false});
  await new Promise((resolve) => { ua.on("connected", resolve); ua.start(); });
  const subscriber = ua.subscribe(target, event, accept, {expires: 300});
  subscriber.on("notify", (isFinal, request, body, contentType) => window.lampNotes.push(
    {event, body: body || "", contentType: contentType || "", state: request.getHeader("Subscription-State")}));
  subscriber.on("terminated", (code) => window.lampNotes.push({event, terminated: code}));
  subscriber.subscribe();
  window.lampSubscribers = {...(window.lampSubscribers || {}), [event]: () => subscriber.terminate()};
}""",
    "sipjs": """async ({url, uri, password, target, event, accept}) => {
  window.lampNotes = window.lampNotes || [];
  const me = SIP.UserAgent.makeURI(uri);
  const ua = new SIP.UserAgent({uri: me, transportOptions: {server: url}, authorizationUsername: me.user,
                                authorizationPassword: password});
  await ua.start();
  const subscriber = new SIP.Subscriber(ua, SIP.UserAgent.makeURI(target), event, {expires: 300});
  subscriber.delegate = {onNotify: (notification) => {
    notification.accept();
    const request = notification.request;
    window.lampNotes.push({event, body: request.body || "", contentType: request.getHeader("Content-Type") || "",
                           state: request.getHeader("Subscription-State")});
  }};
  subscriber.stateChange.addListener((state) => {
    if (state === SIP.SubscriptionState.Terminated) window.lampNotes.push({event, terminated: true});
  });
  await subscriber.subscribe();
  window.lampSubscribers = {...(window.lampSubscribers || {}), [event]: () => subscriber.unsubscribe()};
}""",
}


@pytest.mark.parametrize("library", ["jssip", "sipjs"])
async def test_library_subscribes_through_the_gateway_and_hears_the_pbxs_notifies(
    library: Library, tmp_path: Path
) -> None:
    require_softphones()
    require_binary("sipp")
    pbx = Sipp(tmp_path, "uas_blf_mwi", calls=1, duration_ms=3000, timeout=60)
    await pbx.start()
    try:
        base = websocket_config(pbx.address)
        config = dataclasses.replace(base, pbx=dataclasses.replace(base.pbx, keepalive_interval=0.0))
        async with (
            softphone_server() as origin,
            running_gateway(allowing(config, origin)) as gateway,
            chromium_page() as page,
        ):
            realm = realm_of(gateway)
            await Softphone(page, library).open(origin)
            url = gateway.http_url.replace("http", "ws", 1) + "/sip"
            options: dict[str, Any] = {
                "url": url,
                "uri": f"sip:alice@{realm}",
                "password": ALICE_SIP_PASSWORD,
            }
            await page.evaluate(SUBSCRIBE[library], {**options, "target": f"sip:1002@{realm}", "event": "dialog",
                                            "accept": "application/dialog-info+xml"})  # fmt: skip

            async def notes() -> list[dict[str, Any]]:
                found: list[dict[str, Any]] = await page.evaluate("window.lampNotes")
                return found

            def states(found: list[dict[str, Any]]) -> list[str]:
                order = ("early", "confirmed", "terminated")
                return [s for n in found for s in order if f"<state>{s}</state>" in n.get("body", "")]

            seen: list[dict[str, Any]] = []

            async def heard_all() -> bool:
                seen[:] = await notes()
                return states(seen) == ["early", "confirmed", "terminated"]

            await wait_until_async(heard_all, timeout=20)
            relayed = [n for n in seen if n.get("body")]
            assert all(n["contentType"] == "application/dialog-info+xml" for n in relayed), relayed
            assert all(n["state"].startswith("active;expires=") for n in relayed), relayed
            assert "ring-1@pbx" in relayed[1]["body"]  # the PBX's body, unchanged

            # a package the gateway does not relay: 489, the library's subscription ends
            await page.evaluate(SUBSCRIBE[library], {**options, "target": f"sip:1002@{realm}", "event": "presence",
                                            "accept": "application/pidf+xml"})  # fmt: skip
            await wait_until_async(
                lambda: _has(notes, lambda n: n.get("event") == "presence" and "terminated" in n), timeout=10
            )
            # the library unsubscribes: the gateway says terminated and unsubscribes at the PBX
            await page.evaluate("window.lampSubscribers.dialog()")
            await wait_until(lambda: "unsubscribed: Expires 0" in _logs(pbx), timeout=10)
    finally:
        result = await pbx.wait(timeout=20)
    assert result.ok, result
    assert result.count("SIP/2.0 400") == 1, result  # the malformed NOTIFY: refused by the gateway


async def _has(notes: Any, predicate: Any) -> bool:
    return any(predicate(n) for n in await notes())


def _logs(pbx: Sipp) -> str:
    path = pbx.workdir / "logs.log"
    return path.read_text(errors="replace") if path.exists() else ""


async def wait_until_async(predicate: Any, timeout: float = 10, interval: float = 0.1) -> None:
    """Poll the coroutine function `predicate()` until it is true (AssertionError after `timeout`)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        if loop.time() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        await asyncio.sleep(interval)
