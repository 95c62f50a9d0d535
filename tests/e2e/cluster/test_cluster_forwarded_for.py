"""Behind the shipped HAProxy front (deploy/haproxy.cfg, `option forwardfor`) with `http.trusted_proxies`
naming it, the gateways tell browsers apart by X-Forwarded-For (issue 32 items 4-5 behind a proxy): a
client guessing alice's secret from 127.0.0.2 is throttled, and alice's own login from 127.0.0.3 through
the same HAProxy succeeds at once. Without the setting both arrive from HAProxy's address, and alice
waits with the guesser (the control: the same cluster and front without the setting)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from tests.e2e.cluster.cluster_harness import cluster
from tests.e2e.harness import ALICE_SECRET


async def login(front: str, local: str, secret: str) -> dict[str, Any]:
    url = front.replace("http://", "ws://") + "/ws"
    connector = aiohttp.TCPConnector(local_addr=(local, 0), force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http, http.ws_connect(url) as ws:
        await ws.send_json({"type": "login", "id": 1, "user": "alice", "secret": secret})
        reply: dict[str, Any] = await ws.receive_json(timeout=60)
        return reply


async def guess_then_login(front: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """14 wrong secrets from 127.0.0.2, then its correct one, then alice's from 127.0.0.3."""
    for n in range(14):
        await login(front, "127.0.0.2", f"guess{n}")
    return await login(front, "127.0.0.2", ALICE_SECRET), await login(front, "127.0.0.3", ALICE_SECRET)


async def test_behind_haproxy_the_guesser_waits_and_alice_gets_in(tmp_path: Path) -> None:
    async with cluster(tmp_path, 3, fronts=True, http={"trusted_proxies": ["127.0.0.1/32"]}) as c:
        guesser, alice = await guess_then_login(c.front.url)
        assert guesser.get("code") == "rate_limited", guesser
        assert alice["type"] == "registered", alice


async def test_without_trusted_proxies_everyone_is_haproxy(tmp_path: Path) -> None:
    async with cluster(tmp_path, 3, fronts=True) as c:
        guesser, alice = await guess_then_login(c.front.url)
        assert guesser.get("code") == "rate_limited", guesser
        assert alice.get("code") == "rate_limited", alice  # what trusted_proxies is for
