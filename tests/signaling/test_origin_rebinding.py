"""A DNS-rebinding page cannot use the gateway: its Origin is compared with the configured origins,
never with the Host header it also controls (issue 32 item 10).

A whole gateway on loopback. A page of http://evil.example whose name was re-pointed at the gateway
sends `Origin: http://evil.example` and `Host: evil.example`: the WebSocket upgrades (`/ws`, `/jsonrpc`)
get 403 and the HTTP offer API 403 with no call placed; the gateway's own page origin passes. With
`http.public_origins` the configured public URL passes and the loopback defaults no longer do.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import aiohttp
import pytest

from gateway.config import Config
from peers.web_user import WebUser
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway

EVIL = {"Origin": "http://evil.example", "Host": "evil.example"}
AUTH = {"Authorization": aiohttp.encode_basic_auth("alice", ALICE_SECRET)}
OFFER = {"sdp": {"type": "offer", "sdp": "v=0\r\n"}, "metadata": {"dial": "2000"}}


async def _upgrade(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> int:
    try:
        async with http.ws_connect(url, headers=headers):
            return 101
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status


async def _offer(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> tuple[int, Any]:
    async with http.post(url, json=OFFER, headers={**AUTH, **headers}) as response:
        return response.status, await response.json()


async def test_a_rebinding_page_is_refused_the_own_page_passes() -> None:
    async with running_gateway(gateway_config(None)) as gateway, aiohttp.ClientSession() as http:
        base = gateway.http_url
        ws = base.replace("http", "ws", 1)
        for path in ("/ws", "/jsonrpc"):
            assert await _upgrade(http, ws + path, EVIL) == 403, path
            assert await _upgrade(http, ws + path, {"Origin": base}) == 101, path
        status, body = await _offer(http, f"{base}/webrtc/offer", EVIL)
        assert (status, body["code"]) == (403, 403), body
        # the own origin reaches the API (which then judges the offer itself: 400 for this one)
        status, body = await _offer(http, f"{base}/webrtc/offer", {"Origin": base})
        assert (status, body.get("field")) == (400, "sdp"), body
        async with WebUser(base, "alice", ALICE_SECRET, origin=base) as alice:
            assert alice.session_id


@pytest.mark.parametrize(("origin", "upgraded"), [("https://phone.example.org", 101), ("own", 403)])
async def test_public_origins_are_the_gateways_own(origin: str, upgraded: int) -> None:
    config = gateway_config(None)
    async with (
        running_gateway(_with_public(config, "https://phone.example.org")) as gateway,
        aiohttp.ClientSession() as http,
    ):
        base = gateway.http_url
        header = base if origin == "own" else origin
        assert await _upgrade(http, base.replace("http", "ws", 1) + "/ws", {"Origin": header}) == upgraded


def _with_public(config: Config, origin: str) -> Config:
    return dataclasses.replace(config, http=dataclasses.replace(config.http, public_origins=(origin,)))
