"""RustPBX's "WebRTC SDP Integration Guide" (docs/signaling.md, the HTTP offer/answer API), replayed: each
request body the document shows is sent as it is written there, and every field of the response it shows
is checked, against the gateway's routes with an in-memory offer service (tests/signaling/harness.py).
The same bodies with a real offer against a real phone: tests/e2e/dialects/test_http_offer.py."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests.signaling.harness import ALICE_SECRET, ANSWER_SDP, Harness, demo_config, make_harness

Client = TestClient[web.Request, web.Application]

# The document's bodies, verbatim ("1. SDP Offer/Answer Exchange" ... "4. ICE Servers", "Error Handling").
DOC_OFFER: dict[str, Any] = {
    "sdp": {"type": "offer", "sdp": "v=0\r\no=- 123456789 123456789 IN IP4 192.168.1.1\r\n..."},
    "session_id": "optional-custom-session-id",
    "metadata": {"user_id": "user123", "call_type": "voice"},
}
DOC_CANDIDATE: dict[str, Any] = {
    "session_id": "session-id-from-offer",
    "candidate": {
        "candidate": "candidate:1 1 UDP 2013266431 192.168.1.1 54400 typ host",
        "sdpMLineIndex": 0,
        "sdpMid": "0",
    },
}
DOC_CLOSE: dict[str, Any] = {"session_id": "session-id-to-close", "reason": "User initiated close"}
DOC_ICE_SERVERS: list[dict[str, Any]] = [
    {
        "urls": ["stun:stun.example.com:3478"],
        "username": "optional-username",
        "credential": "optional-credential",
    }
]
API_KEY = "doc-example-key-0123456789"


def basic(user: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


ALICE = basic("alice", ALICE_SECRET)


@pytest.fixture
async def env() -> AsyncIterator[tuple[Harness, Client]]:
    config = demo_config(
        GATEWAY_USERS__0__DEFAULT_DIAL="2000",
        GATEWAY_USERS__0__API_KEYS=f'[{{key: "{API_KEY}", name: doc, default_dial: "3000"}}]',
        GATEWAY_ICE__BROWSER=(
            '[{urls: ["stun:stun.example.com:3478"], username: optional-username, '
            "credential: optional-credential}]"
        ),
    )
    harness = make_harness(config=config)
    client = TestClient(TestServer(harness.app))
    await client.start_server()
    yield harness, client
    await client.close()


async def test_offer_example_is_answered_with_every_field(env: tuple[Harness, Client]) -> None:
    harness, client = env
    response = await client.post("/webrtc/offer", json=DOC_OFFER, headers=ALICE)
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["sdp"] == {"type": "answer", "sdp": ANSWER_SDP}
    assert body["session_id"] == "optional-custom-session-id"  # the caller's choice, honoured
    assert body["ice_candidates"] == []
    assert body["metadata"] == {"user_id": "user123", "call_type": "voice"}  # echoed untouched
    assert harness.offers.dialled == ["2000"]  # no metadata.dial: alice's default destination


async def test_candidate_and_close_examples(env: tuple[Harness, Client]) -> None:
    harness, client = env
    for session_id in ("session-id-from-offer", "session-id-to-close"):
        offer = {**DOC_OFFER, "session_id": session_id}
        assert (await client.post("/webrtc/offer", json=offer, headers=ALICE)).status == 200
    response = await client.post("/webrtc/ice-candidate", json=DOC_CANDIDATE, headers=ALICE)
    assert (response.status, await response.json()) == (
        200,
        {"session_id": "session-id-from-offer", "status": "received"},
    )
    (session_id, candidate) = harness.offers.candidates[0]
    assert session_id == "session-id-from-offer" and candidate is not None
    assert candidate.to_json() == DOC_CANDIDATE["candidate"]
    response = await client.post("/webrtc/close", json=DOC_CLOSE, headers=ALICE)
    assert (response.status, await response.json()) == (
        200,
        {"session_id": "session-id-to-close", "status": "closed"},
    )


async def test_ice_servers_example_is_a_bare_array(env: tuple[Harness, Client]) -> None:
    _, client = env
    response = await client.get("/iceservers", headers=ALICE)
    assert (response.status, await response.json()) == (200, DOC_ICE_SERVERS)


async def test_error_example_shape(env: tuple[Harness, Client]) -> None:
    """`{"error": "Invalid SDP format", "code": 400, "session_id": "optional-session-id"}`: the code is the
    number, and the session named by the request is echoed."""
    _, client = env
    bad = {**DOC_OFFER, "session_id": "optional-session-id", "sdp": {"type": "offer", "sdp": "junk"}}
    response = await client.post("/webrtc/offer", json=bad, headers=ALICE)
    body = await response.json()
    assert response.status == 400
    assert isinstance(body["error"], str) and body["error"]
    assert (body["code"], body["session_id"]) == (400, "optional-session-id")
    response = await client.post("/webrtc/close", json={"session_id": "gone"}, headers=ALICE)
    assert (response.status, (await response.json())["code"]) == (404, 404)
    response = await client.post("/webrtc/offer", json=DOC_OFFER)
    body = await response.json()
    assert (response.status, body["code"]) == (401, 401) and body["error"]  # the body is not read
    assert "Bearer" in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize(
    "headers", [{"X-API-Key": API_KEY}, {"Authorization": f"Bearer {API_KEY}"}], ids=["header", "bearer"]
)
async def test_api_key_dials_its_default(env: tuple[Harness, Client], headers: dict[str, str]) -> None:
    harness, client = env
    response = await client.post("/webrtc/offer", json={"sdp": DOC_OFFER["sdp"]}, headers=headers)
    assert response.status == 200, await response.text()
    assert harness.offers.sessions == {(await response.json())["session_id"]: "alice"}
    assert harness.offers.dialled == ["3000"]  # the key's default_dial wins over alice's
    response = await client.post(
        "/webrtc/offer", json={"sdp": DOC_OFFER["sdp"], "metadata": {"dial": "2001"}}, headers=headers
    )
    assert response.status == 200 and harness.offers.dialled[-1] == "2001"
    response = await client.post("/webrtc/offer", json=DOC_OFFER, headers={"X-API-Key": "wrong-key"})
    assert response.status == 401 and (await response.json())["code"] == 401
