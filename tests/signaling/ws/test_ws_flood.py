"""Idle, never-logged-in WebSockets cannot lock users out (issue 10, item 1): one address gets at most
max_awaiting_login_per_ip of them (then 429, logged once per burst), and a real user from another
address logs in and works during the flood."""

from __future__ import annotations

import logging

import aiohttp
import pytest

from gateway.signaling.limits import SignalingLimits
from peers.web_user import WebUser
from tests.e2e.harness import ALICE_SECRET, gateway_config, running_gateway


async def test_an_idle_websocket_flood_from_one_host_leaves_logins_to_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    per_ip = SignalingLimits().max_awaiting_login_per_ip
    async with running_gateway(gateway_config(None)) as gateway:
        url = gateway.http_url.replace("http://", "ws://") + "/ws"
        connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0), force_close=True)
        async with aiohttp.ClientSession(connector=connector) as attacker:
            idle = [await attacker.ws_connect(url) for _ in range(per_ip)]
            with caplog.at_level(logging.WARNING, logger="gateway.signaling.session_loop"):
                for _ in range(30):
                    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                        await attacker.ws_connect(url)
                    assert refused.value.status == 429
            async with WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice:  # from 127.0.0.1
                assert (await alice.request({"type": "ping"}))["type"] == "pong"
            for ws in idle:
                await ws.close()
    warnings = [r.getMessage() for r in caplog.records if r.name == "gateway.signaling.session_loop"]
    assert warnings and all("127.0.0.2" in w for w in warnings) and len(warnings) <= 10


async def test_a_password_guesser_is_slowed_and_the_user_still_logs_in(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 10, item 3: wrong secrets for alice from 127.0.0.2 are soon refused without a check (with
    how long to wait), one WARNING names the address, and alice logs in from 127.0.0.1 meanwhile."""
    async with running_gateway(gateway_config(None)) as gateway:
        url = gateway.http_url.replace("http://", "ws://") + "/ws"
        connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0), force_close=True)
        replies: list[dict[str, object]] = []
        with caplog.at_level(logging.WARNING, logger="gateway.identity.throttle"):
            async with aiohttp.ClientSession(connector=connector) as attacker:
                for attempt in range(12):
                    async with attacker.ws_connect(url) as ws:
                        await ws.send_json(
                            {"type": "login", "id": attempt, "user": "alice", "secret": f"guess{attempt}"}
                        )
                        replies.append(await ws.receive_json(timeout=5))
                    if attempt == 6:  # mid-attack, the real alice
                        async with WebUser(gateway.http_url, "alice", ALICE_SECRET) as alice:
                            assert (await alice.request({"type": "ping"}))["type"] == "pong"
    codes = [r.get("code") for r in replies]
    assert codes[:5] == ["unauthorized"] * 5 and codes[-1] == "rate_limited", codes
    assert "try again in" in str(replies[-1]["message"])
    warnings = [r.getMessage() for r in caplog.records if r.name == "gateway.identity.throttle"]
    assert len(warnings) == 1 and "127.0.0.2" in warnings[0]
