"""The HTTP offer/answer API, /iceservers and /openapi.json, through aiohttp's test server."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.signaling.limits import SignalingLimits
from tests.signaling.harness import (
    ALICE_SECRET,
    ANSWER_SDP,
    FAILING_NUMBER,
    OFFER_SDP,
    Harness,
    demo_config,
    make_harness,
)

Client = TestClient[web.Request, web.Application]

CANDIDATE = {
    "candidate": "candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host",
    "sdpMid": "0",
    "sdpMLineIndex": 0,
}
OFFER = {"sdp": {"type": "offer", "sdp": OFFER_SDP}, "metadata": {"dial": "2000", "tag": "x"}}


def basic(user: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


ALICE = basic("alice", ALICE_SECRET)


async def start(harness: Harness) -> Client:
    client = TestClient(TestServer(harness.app))
    await client.start_server()
    return client


@pytest.fixture
async def env() -> AsyncIterator[tuple[Harness, Client]]:
    harness = make_harness()
    client = await start(harness)
    yield harness, client
    await client.close()


async def bearer(client: Client) -> dict[str, str]:
    async with client.ws_connect("/ws") as ws:
        await ws.send_json({"type": "login", "user": "alice", "secret": ALICE_SECRET})
        reply = await ws.receive_json(timeout=5)
    return {"Authorization": f"Bearer {reply['token']}"}


async def test_offer_with_basic_and_bearer(env: tuple[Harness, Client]) -> None:
    _harness, client = env
    response = await client.post("/webrtc/offer", json=OFFER, headers=ALICE)
    assert response.status == 200
    body = await response.json()
    assert body == {
        "sdp": {"type": "answer", "sdp": ANSWER_SDP},
        "session_id": "s1",
        "ice_candidates": [],
        "metadata": {"dial": "2000", "tag": "x"},  # echoed untouched
        "call_id": "c-s1",
        "status_url": "/webrtc/sessions/s1",
        "events_url": "/webrtc/sessions/s1/events",
    }
    response = await client.post(
        "/webrtc/offer", json={**OFFER, "session_id": "mine-1"}, headers=await bearer(client)
    )
    assert response.status == 200 and (await response.json())["session_id"] == "mine-1"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "sdp"),
        ({"sdp": "not sdp"}, "sdp"),
        ({"sdp": {"type": "answer", "sdp": OFFER_SDP}}, "sdp.type"),
        ({"sdp": OFFER_SDP, "metadata": []}, "metadata"),
        ({"sdp": OFFER_SDP, "metadata": {"dial": 5}}, "metadata.dial"),
        ({"sdp": OFFER_SDP, "session_id": "a b"}, "session_id"),
        ([], None),
    ],
)
async def test_offer_bad_bodies(env: tuple[Harness, Client], body: object, field: str | None) -> None:
    _, client = env
    response = await client.post("/webrtc/offer", json=body, headers=ALICE)
    assert response.status == 400
    result = await response.json()
    assert (result["code"], result["reason"], result.get("field")) == (400, "bad_request", field)
    assert result["error"]


async def test_offer_not_json_and_too_large(env: tuple[Harness, Client]) -> None:
    _, client = env
    headers = {**ALICE, "Content-Type": "application/json"}
    response = await client.post("/webrtc/offer", data="{", headers=headers)
    assert response.status == 400 and (await response.json())["reason"] == "bad_request"
    response = await client.post("/webrtc/offer", data=b"\xff\xfe{", headers=headers)
    assert response.status == 400 and (await response.json())["reason"] == "bad_request"
    response = await client.post("/webrtc/offer", data="x" * 70000, headers=headers)
    assert response.status == 413 and (await response.json())["reason"] == "too_large"


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
async def test_api_accepts_only_json_bodies(env: tuple[Harness, Client], content_type: str | None) -> None:
    """A cross-site form (no CORS preflight) carrying the browser's cached Basic credentials must not dial."""
    harness, client = env
    headers = dict(ALICE) if content_type is None else {**ALICE, "Content-Type": content_type}
    response = await client.post("/webrtc/offer", data=json.dumps(OFFER), headers=headers)
    assert response.status == 415
    body = await response.json()
    assert (body["code"], body["reason"], body["field"]) == (415, "unsupported_media_type", "Content-Type")
    assert harness.offers.sessions == {}


async def test_offer_service_errors(env: tuple[Harness, Client]) -> None:
    _, client = env
    assert (await client.post("/webrtc/offer", json={**OFFER, "session_id": "taken"}, headers=ALICE)).ok
    response = await client.post("/webrtc/offer", json={**OFFER, "session_id": "taken"}, headers=ALICE)
    assert response.status == 409
    assert await response.json() == {
        "error": "session 'taken' exists already",
        "code": 409,
        "session_id": "taken",
        "reason": "conflict",
        "field": "session_id",
    }
    response = await client.post(
        "/webrtc/offer", json={**OFFER, "metadata": {"dial": FAILING_NUMBER}}, headers=ALICE
    )
    body = await response.json()
    assert response.status == 400 and (body["code"], body["reason"]) == (400, "no_such_number")
    assert "session_id" not in body  # none was given


async def test_offer_timeout_is_408() -> None:
    harness = make_harness(SignalingLimits(service_timeout=0.1))
    harness.offers.delay = 1.0
    client = await start(harness)
    try:
        response = await client.post("/webrtc/offer", json=OFFER, headers=ALICE)
        assert response.status == 408 and (await response.json())["code"] == 408
    finally:
        await client.close()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("alice", "wrong"),
        basic("nobody", "x"),
        {"Authorization": "Basic !!!"},
        {"Authorization": "Basic \u00e9t\u00e9"},  # not ASCII: base64 refuses it with ValueError (was a 500)
        {"Authorization": "Bearer nope"},
        {"Authorization": "Digest x"},
    ],
)
@pytest.mark.parametrize("path", ["/webrtc/offer", "/webrtc/ice-candidate", "/webrtc/close"])
async def test_unauthorized(env: tuple[Harness, Client], headers: dict[str, str], path: str) -> None:
    _, client = env
    response = await client.post(path, json={"session_id": "s1"}, headers=headers)
    assert response.status == 401
    assert "Bearer" in response.headers["WWW-Authenticate"]
    body = await response.json()
    assert (body["code"], body["reason"]) == (401, "unauthorized") and body["error"]


async def test_expired_bearer_is_refused(env: tuple[Harness, Client]) -> None:
    harness, client = env
    headers = await bearer(client)
    harness.now[0] += 43201
    response = await client.post("/webrtc/offer", json=OFFER, headers=headers)
    assert response.status == 401 and "expired" in (await response.json())["error"]


async def test_candidates_and_close(env: tuple[Harness, Client]) -> None:
    harness, client = env
    await client.post("/webrtc/offer", json=OFFER, headers=ALICE)
    response = await client.post(
        "/webrtc/ice-candidate", json={"session_id": "s1", "candidate": CANDIDATE}, headers=ALICE
    )
    assert response.status == 200 and await response.json() == {"session_id": "s1", "status": "received"}
    response = await client.post(
        "/webrtc/ice-candidate", json={"session_id": "s1", "candidate": None}, headers=ALICE
    )
    assert response.status == 200
    assert [c is None for _, c in harness.offers.candidates] == [False, True]
    bob = basic("bob", "bob-demo")  # another user's session is not found
    response = await client.post("/webrtc/close", json={"session_id": "s1"}, headers=bob)
    assert response.status == 404
    response = await client.post(
        "/webrtc/close", json={"session_id": "s1", "reason": "User initiated close"}, headers=ALICE
    )
    assert response.status == 200 and await response.json() == {"session_id": "s1", "status": "closed"}
    assert harness.offers.sessions == {}
    response = await client.post("/webrtc/close", json={"session_id": "s1"}, headers=ALICE)
    assert response.status == 404 and (await response.json())["session_id"] == "s1"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/webrtc/ice-candidate", {"candidate": None}, "session_id"),
        ("/webrtc/ice-candidate", {"session_id": "s1"}, "candidate"),
        (
            "/webrtc/ice-candidate",
            {"session_id": "s1", "candidate": {"candidate": "junk", "sdpMid": "0"}},
            "candidate",
        ),
        ("/webrtc/close", {}, "session_id"),
        ("/webrtc/close", {"session_id": 5}, "session_id"),
        ("/webrtc/close", {"session_id": "s1", "reason": 5}, "reason"),
    ],
)
async def test_candidate_and_close_bad_bodies(
    env: tuple[Harness, Client], path: str, body: object, field: str
) -> None:
    _, client = env
    response = await client.post(path, json=body, headers=ALICE)
    assert response.status == 400 and (await response.json())["field"] == field


async def test_ice_servers_reveal_turn_only_to_logged_in_users() -> None:
    config = demo_config(
        GATEWAY_ICE__BROWSER='[{urls: ["stun:stun.example.org"]}, '
        '{urls: ["turn:turn.example.org"], username: web, credential: turn-pass}]'
    )
    client = await start(make_harness(config=config))
    try:
        anonymous = await (await client.get("/iceservers")).json()
        assert anonymous == [{"urls": ["stun:stun.example.org"]}]  # a bare array, no TURN
        known = await (await client.get("/iceservers", headers=ALICE)).json()
        assert known[0] == {"urls": ["stun:stun.example.org"]}
        assert known[1] == {
            "urls": ["turn:turn.example.org"],
            "username": "web",
            "credential": "turn-pass",
        }
        response = await client.get("/iceservers", headers=basic("alice", "bad"))
        assert response.status == 401
    finally:
        await client.close()


async def test_page_static_and_health(env: tuple[Harness, Client]) -> None:
    _, client = env
    page = await client.get("/")
    assert page.status == 200 and "Softphone" in await page.text()
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    for name in ("webrtc-client.js", "softphone.js", "softphone.css"):
        assert (await client.get(f"/static/{name}")).status == 200
    assert (await client.get("/static/../signaling/routes.py")).status in (403, 404)
    assert (await client.get("/healthz")).status == 200


async def test_openapi_describes_every_route(env: tuple[Harness, Client]) -> None:
    harness, client = env
    document = await (await client.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    paths = document["paths"]
    for method, path in route_paths(harness.app):
        assert path in paths, f"{method} {path} is not in /openapi.json"
        assert method.lower() in paths[path], f"{method} {path} is not in /openapi.json"
    for path, operations in paths.items():
        for operation in operations.values():
            for ref in _refs(operation):
                assert ref.split("/")[-1] in document["components"]["schemas"], (path, ref)


def route_paths(app: web.Application) -> list[tuple[str, str]]:
    """(method, OpenAPI path) of every route of ``app`` but HEAD (a static prefix as ``/prefix/{path}``)."""
    found = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter") or (info["prefix"].rstrip("/") + "/{path}")
        if route.method != "HEAD":
            found.append((route.method, path))
    return found


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if "$ref" in node else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


async def test_basic_login_while_logins_queue_up_is_429(
    env: tuple[Harness, Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.identity import LoginBusy
    from gateway.identity.lookup import IdentityMap

    async def busy(self: IdentityMap, user_id: str, secret: str, client: str = "") -> None:
        raise LoginBusy("more than 32 logins are being checked: try again later")

    monkeypatch.setattr(IdentityMap, "verify_web_login", busy)
    _, client = env
    response = await client.post("/webrtc/offer", json=OFFER, headers=ALICE)
    assert response.status == 429 and (await response.json())["reason"] == "rate_limited"
    response = await client.get("/iceservers", headers=ALICE)
    assert response.status == 429
