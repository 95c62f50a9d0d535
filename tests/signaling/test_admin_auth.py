"""`require_admin` (gateway/signaling/admin_auth.py) guarding a route of the real signaling app: the admin
token, an admin user's session token, Basic login and API key; 401 and 403 with JSON bodies."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.config.admin import AdminSection
from gateway.config.secret import Secret, SecretSource
from gateway.signaling.admin_auth import require_admin
from tests.signaling.harness import ALICE_SECRET, demo_config, make_harness

Client = TestClient[web.Request, web.Application]
TOKEN = "admin-token-0123456789"


def basic(user: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    config = demo_config()
    alice = dataclasses.replace(config.users[0], roles=("admin",))
    config = dataclasses.replace(
        config,
        users=(alice, *config.users[1:]),
        admin=AdminSection(Secret(SecretSource.INLINE, "", TOKEN)),
    )
    harness = make_harness(config=config)

    async def guarded(request: web.Request) -> web.Response:
        return web.json_response({"admin": await require_admin(request)})

    harness.app.router.add_get("/guarded", guarded)
    test_client = TestClient(TestServer(harness.app))
    await test_client.start_server()
    yield test_client
    await test_client.close()


async def session_token(client: Client, user: str, secret: str) -> str:
    async with client.ws_connect("/ws") as ws:
        await ws.send_json({"type": "login", "user": user, "secret": secret})
        reply = await ws.receive_json(timeout=5)
    return str(reply["token"])


async def test_admin_credentials_pass(client: Client) -> None:
    response = await client.get("/guarded", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status == 200 and await response.json() == {"admin": "token"}
    response = await client.get("/guarded", headers=basic("alice", ALICE_SECRET))
    assert response.status == 200 and await response.json() == {"admin": "alice"}
    token = await session_token(client, "alice", ALICE_SECRET)
    response = await client.get("/guarded", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 200 and await response.json() == {"admin": "alice"}


async def test_no_or_bad_credentials_401_and_a_user_without_the_role_403(client: Client) -> None:
    response = await client.get("/guarded")
    assert response.status == 401 and "Bearer" in response.headers["WWW-Authenticate"]
    body = await response.json()
    assert (
        body["code"] == 401 and body["reason"] == "unauthorized" and "credentials required" in body["error"]
    )
    response = await client.get("/guarded", headers={"Authorization": f"Bearer {TOKEN}x"})
    assert response.status == 401
    response = await client.get("/guarded", headers=basic("bob", "bob-demo"))
    assert response.status == 403
    assert await response.json() == {
        "error": "user 'bob' has no admin role",
        "code": 403,
        "reason": "not_admin",
    }
    # a forged cluster assertion is no admin: without a cluster nothing checks it, and it counts for nothing
    response = await client.get(
        "/guarded", headers={"X-Gateway-User": "admin:x", "X-Gateway-Forwarded": "a;1;b"}
    )
    assert response.status == 401
