"""Redis is not trusted (issue 32 item 11): two gateway instances (127.0.0.2, 127.0.0.3) in this process
share a real Redis, and the test plays whoever can write to that Redis without knowing cluster.secret.

- a fake instance written into Redis (its record unsigned, or signed wrongly), named as the owner of a
  session: alice's request for that session is answered where it landed (404), the fake's HTTP server
  receives nothing, the gateway logs the record it ignored;
- a legitimate forward (to an instance whose record is signed) carries no Authorization, Cookie or
  API key: the user authenticated where the request landed, and a signed assertion of her id (valid
  only for that request) stands in for her credentials; the owner serves it as her, and refuses an
  assertion tampered with (403);
- a logout is not undone by deleting its revocation from Redis, on either instance;
- deleting the login-throttle records in Redis leaves this instance's own count in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from gateway.cluster import ClusterNode
from gateway.cluster.sessions import SessionOwners
from gateway.identity.throttle import LoginThrottle
from gateway.signaling.cluster_http import FORWARDED, USER, WATCH, sign, verify
from peers.ports import free_port
from peers.web_user import WebUser, WebUserError
from tests.cluster.test_cluster_state import settings as node_settings
from tests.e2e.cluster.cluster_harness import CLUSTER_SECRET, cluster
from tests.e2e.dialects.test_http_offer import AUTH
from tests.e2e.harness import ALICE_SECRET, wait_until

FAR = 4_000_000_000_000  # a lease expiry far away (Unix ms)


@dataclass
class Capture:
    """An HTTP server standing for the attacker's (or a legitimate peer's) instance: what reaches it."""

    url: str = ""
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.path == WATCH:  # the instances' watch on every live one (cluster/peer_watch.py), not
            return web.Response(status=404)  # a forward: refused as an instance without watches would
        self.requests.append((request.method, request.path_qs, dict(request.headers), body))
        return web.json_response({"state": "answered", "from": "capture"})


@contextlib.asynccontextmanager
async def capture_server() -> AsyncIterator[Capture]:
    capture = Capture()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", capture.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    capture.url = f"http://127.0.0.1:{port}"
    try:
        yield capture
    finally:
        await runner.cleanup()


async def test_a_fake_instance_written_into_redis_receives_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        cluster(tmp_path, 2) as c,
        capture_server() as fake,
        aiohttp.ClientSession() as http,
    ):
        writer = aioredis.Redis.from_url(c.redis.url, decode_responses=True)
        try:
            record: dict[Any, Any] = {
                "sip": "127.0.0.1:5999",
                "http": fake.url,
                "draining": "0",
            }
            await writer.hset("gw:instance:evil", mapping=record)  # unsigned
            await writer.hset("gw:instance:forged", mapping={**record, "sig": "0" * 64})  # signed wrongly
            await writer.zadd("gw:instances", {"evil": FAR, "forged": FAR})
            await writer.set("gw:http:alice/stolen-1", "evil")  # an owner without a signature
            await writer.set("gw:http:alice/stolen-2", "forged;" + "0" * 64)  # one signed wrongly
            # (owner records are by user and session id: gateway/signaling/service.py session_key)
            # a real session of the second instance, its owner record rewritten to the fake
            assert c.gateways[1].cluster is not None
            await c.gateways[1].cluster.owners.claim("alice/real-session")
            await writer.set("gw:http:alice/real-session", "evil")
            await writer.zadd("gw:online:alice", {"evil": FAR})  # calls for alice: "she is on evil"
            with caplog.at_level(logging.WARNING, logger="gateway.cluster.signing"):
                for session_id in ("stolen-1", "stolen-2", "real-session"):
                    url = f"{c.urls[0]}/webrtc/sessions/{session_id}"
                    async with http.get(url, headers={"Authorization": AUTH}) as response:
                        body = await response.json()
                        assert response.status == 404, body  # answered here: no such session
                node = c.gateways[0].cluster.node if c.gateways[0].cluster else None
                assert node is not None
                # never the fakes (their leases are far off); the real ones unless a heartbeat slipped past
                # the harness's lease (a CI run under load lost gw1's 2 s one so)
                listed = set(await node.instances())
                assert listed and listed <= {"gw1", "gw2"}, listed
                assert await node.records(("evil", "forged", "gw2")) == {"gw2": (await node.instance("gw2"))}
                assert await node.holders("route", ("gw:online:alice",)) == ["evil"]  # an id, no address
            assert fake.requests == []  # never reached: no request, no Authorization header
            ignored = " ".join(r.getMessage() for r in caplog.records)
            for key in (
                "gw:instance:evil",
                "gw:instance:forged",
                "gw:http:alice/stolen-1",
                "gw:http:alice/real-session",
            ):
                assert key in ignored, (key, ignored)
            first = c.gateways[0].cluster
            assert first is not None and first.http is not None and first.http.forwarded == 0
        finally:
            await writer.aclose()


async def test_a_forward_carries_no_web_secret(tmp_path: Path) -> None:
    async with (
        cluster(tmp_path, 2) as c,
        capture_server() as peer,
        aiohttp.ClientSession() as http,
    ):
        # an instance holding the cluster secret (its record signed), whose HTTP is the capture server
        advertise = {"sip": "127.0.0.9:5070", "http": peer.url}
        node = ClusterNode(
            node_settings(c.redis.url, "gw9", secret=CLUSTER_SECRET, advertise=advertise, lease=30.0)
        )
        await node.start()
        try:
            await SessionOwners(node, lambda: ()).claim("alice/held-by-gw9")
            url = f"{c.urls[0]}/webrtc/sessions/held-by-gw9?after=0"
            secrets = {
                "Authorization": AUTH,
                "Cookie": "sid=alice-cookie",
                "Proxy-Authorization": "Basic eA==",
            }
            async with http.get(url, headers=secrets) as response:
                assert response.status == 200, await response.text()
                assert (await response.json())["from"] == "capture"  # relayed from the owner
            assert len(peer.requests) == 1
            method, path, headers, body = peer.requests[0]
            lowered = {k.lower(): v for k, v in headers.items()}
            for secret in ("authorization", "cookie", "proxy-authorization", "x-api-key"):
                assert secret not in lowered, (secret, headers)
            assert AUTH not in str(headers) and "alice-cookie" not in str(headers)
            assert lowered[USER.lower()] == "alice"
            assert verify(CLUSTER_SECRET.encode(), lowered[FORWARDED.lower()], method, path, time.time(),
                          "alice", body) == "gw1"  # fmt: skip
            # the assertion is bound to the user: another name with the same signature fails
            assert verify(CLUSTER_SECRET.encode(), lowered[FORWARDED.lower()], method, path, time.time(),
                          "bob", body) is None  # fmt: skip
            # wrong credentials: 401 where the request landed, nothing forwarded
            bad = {"Authorization": "Basic " + "YWxpY2U6d3Jvbmc="}  # alice:wrong
            async with http.get(url, headers=bad) as response:
                assert response.status == 401, await response.text()
            async with http.get(url) as response:
                assert response.status == 401
            assert len(peer.requests) == 1
        finally:
            await node.close()


async def test_the_owner_serves_the_asserted_user_and_refuses_a_tampered_one(tmp_path: Path) -> None:
    async with cluster(tmp_path, 2) as c, aiohttp.ClientSession() as http:
        second = c.gateways[1].cluster
        assert second is not None
        await second.owners.claim(
            "alice/on-gw2"
        )  # signed by gw2; no such session there (404 once authenticated)
        async with http.get(
            f"{c.urls[0]}/webrtc/sessions/on-gw2", headers={"Authorization": AUTH}
        ) as response:
            body = await response.json()
            assert response.status == 404, body  # gw2 took the assertion as alice (not 401)
        first = c.gateways[0].cluster
        assert first is not None and first.http is not None and first.http.forwarded == 1
        path = "/webrtc/sessions/on-gw2"
        header = sign(CLUSTER_SECRET.encode(), "gw1", "GET", path, time.time(), "alice")
        async with http.get(c.urls[1] + path, headers={FORWARDED: header, USER: "bob"}) as response:
            assert response.status == 403  # signed for alice, presented as bob
        async with http.get(c.urls[1] + path, headers={USER: "alice"}) as response:
            assert response.status == 401  # an assertion without a signature is no credential
        async with http.get(c.urls[1] + path, headers={FORWARDED: header, USER: "alice"}) as response:
            assert response.status == 404  # the genuine one


async def test_deleting_a_revocation_in_redis_revives_no_token(tmp_path: Path) -> None:
    async with cluster(tmp_path, 2) as c, aiohttp.ClientSession() as http:
        for gateway in c.gateways:
            assert gateway.cluster is not None
            await asyncio.wait_for(gateway.cluster.revocations.subscribed.wait(), 30)

        async def contacts(url: str, token: str) -> int:
            async with http.get(url + "/contacts", headers={"Authorization": f"Bearer {token}"}) as response:
                return response.status

        async with WebUser(c.urls[0], "alice", ALICE_SECRET) as alice:
            token = alice.token
            assert token is not None
            assert [await contacts(url, token) for url in c.urls] == [200, 200]
            await alice.request({"type": "logout"})
        second = c.gateways[1].cluster
        assert second is not None
        await wait_until(lambda: second.revocations.heard >= 1, timeout=30)  # the signed message
        assert [await contacts(url, token) for url in c.urls] == [401, 401]
        writer = aioredis.Redis.from_url(c.redis.url, decode_responses=True)
        try:
            keys = [k async for k in writer.scan_iter(match="gw:revoked:*")]
            assert keys and await writer.delete(*keys) == len(keys)
            # a forged revocation message for another family is ignored (and a forged one cannot revive)
            await writer.publish("gw:revoked", "someone;99999999999999;" + "0" * 64)
        finally:
            await writer.aclose()
        assert [await contacts(url, token) for url in c.urls] == [401, 401]  # still logged out
        with pytest.raises(WebUserError, match="session ended by a logout"):
            async with WebUser(c.urls[1], "alice", "", token=token):
                pass


async def test_deleting_the_throttle_records_keeps_the_local_count(tmp_path: Path) -> None:
    free = LoginThrottle().free_per_pair
    async with cluster(tmp_path, 2) as c:
        for n in range(free + 1):  # all on the first instance
            with pytest.raises(WebUserError, match="'unauthorized'"):
                async with WebUser(c.urls[0], "alice", f"wrong-{n}"):
                    pass
        writer = aioredis.Redis.from_url(c.redis.url, decode_responses=True)
        try:
            keys = [k async for k in writer.scan_iter(match="gw:throttle:*")]
            assert keys and await writer.delete(*keys) == len(keys)
        finally:
            await writer.aclose()
        with pytest.raises(WebUserError, match=r"'rate_limited'.*too many failed logins"):
            async with WebUser(c.urls[0], "alice", "wrong-again"):
                pass
