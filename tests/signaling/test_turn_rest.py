"""TURN REST API credentials (ice.turn): minted per login, never a shared static one in the page.

The end-to-end check with a real coturn is tests/e2e/media/test_turn_rest.py.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.cli_check import check
from gateway.config import ConfigError
from gateway.config.rooms import RoomsSection
from gateway.signaling.turn_rest import turn_rest_credential, turn_rest_username
from tests.conftest import REPO
from tests.signaling.harness import ALICE_SECRET, BOB_SECRET, OFFER_SDP, Harness, demo_config, make_harness

Client = TestClient[web.Request, web.Application]

SECRET = "0123456789abcdef-turn-secret"
TURN_ENV = {
    "GATEWAY_ICE__BROWSER": '[{urls: ["stun:stun.example.org"]}]',
    "GATEWAY_ICE__TURN": '{urls: ["turn:turn.example.org:3478?transport=udp"], '
    "shared_secret: {env: TEST_TURN_SECRET}, ttl: 600}",
    "TEST_TURN_SECRET": SECRET,
}


def basic(user: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


async def start(harness: Harness) -> Client:
    client = TestClient(TestServer(harness.app))
    await client.start_server()
    return client


def test_credential_matches_a_vector_computed_by_openssl() -> None:
    # echo -n "1700000000:alice" | openssl dgst -sha1 -hmac "0123456789abcdef-turn-secret" -binary | base64
    username = turn_rest_username(1_700_000_000, "alice")
    assert username == "1700000000:alice"
    assert turn_rest_credential(SECRET.encode(), username) == "VMNcaCjTKegm4E04iUQp+4gIO9A="
    assert turn_rest_credential(b"another secret..", username) != "VMNcaCjTKegm4E04iUQp+4gIO9A="


def _check_minted(server: dict[str, object], user: str, now: float) -> None:
    assert server["urls"] == ["turn:turn.example.org:3478?transport=udp"]
    username = server["username"]
    assert isinstance(username, str)
    expiry, _, owner = username.partition(":")
    assert owner == user and int(expiry) == int(now) + 600
    assert server["credential"] == turn_rest_credential(SECRET.encode(), username)


async def test_iceservers_mints_per_user_credentials_and_none_for_anonymous() -> None:
    harness = make_harness(config=demo_config(**TURN_ENV))
    client = await start(harness)
    try:
        anonymous = await (await client.get("/iceservers")).json()
        assert anonymous == [{"urls": ["stun:stun.example.org"]}]  # no TURN, no credential
        alice = await (await client.get("/iceservers", headers=basic("alice", ALICE_SECRET))).json()
        assert alice[0] == {"urls": ["stun:stun.example.org"]}
        _check_minted(alice[1], "alice", harness.now[0])
        harness.now[0] += 100
        bob = await (await client.get("/iceservers", headers=basic("bob", BOB_SECRET))).json()
        _check_minted(bob[1], "bob", harness.now[0])
        assert bob[1]["credential"] != alice[1]["credential"]
        assert SECRET not in json.dumps([alice, bob])
        response = await client.get("/iceservers", headers=basic("alice", "wrong"))
        assert response.status == 401
    finally:
        await client.close()


async def test_ws_login_reply_carries_fresh_turn_credentials() -> None:
    harness = make_harness(config=demo_config(**TURN_ENV))
    client = await start(harness)
    try:
        for user, secret in (("alice", ALICE_SECRET), ("bob", BOB_SECRET)):
            async with client.ws_connect("/ws") as ws:
                await ws.send_str(json.dumps({"type": "login", "id": 1, "user": user, "secret": secret}))
                reply = json.loads((await ws.receive(timeout=5)).data)
                assert reply["type"] == "registered", reply
                servers = reply["ice_servers"]
                assert len(servers) == 2 and servers[0] == {"urls": ["stun:stun.example.org"]}
                _check_minted(servers[1], user, harness.now[0])
            harness.now[0] += 7
    finally:
        await client.close()


def test_static_turn_credential_beside_ice_turn_is_refused() -> None:
    env = dict(TURN_ENV)
    env["GATEWAY_ICE__BROWSER"] = '[{urls: ["turn:t.example.org"], username: web, credential: pass}]'
    with pytest.raises(ConfigError) as info:
        demo_config(**env)
    assert "ice.browser[0].credential" in str(info.value)


@pytest.mark.parametrize(
    ("turn", "secret", "field"),
    [
        ('{urls: ["stun:s.example.org"], shared_secret: {env: TEST_TURN_SECRET}}', SECRET, "urls[0]"),
        ("{urls: [], shared_secret: {env: TEST_TURN_SECRET}}", SECRET, "urls"),
        ('{urls: ["turn:t.example.org"], shared_secret: {env: TEST_TURN_SECRET}}', "short", "shared_secret"),
        ('{urls: ["turn:t.example.org"], shared_secret: {env: TEST_TURN_SECRET}, ttl: 5}', SECRET, "ttl"),
        ('{urls: ["turn:t.example.org"], shared_secret: {env: TEST_TURN_SECRET}, bad: 1}', SECRET, "bad"),
    ],
)
def test_bad_turn_section_names_the_field(turn: str, secret: str, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        demo_config(GATEWAY_ICE__TURN=turn, TEST_TURN_SECRET=secret)
    assert f"ice.turn.{field}" in str(info.value)
    assert SECRET not in str(info.value)


def test_check_warns_about_static_turn_credentials(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text((REPO / "gateway.yaml").read_text())
    static = {"GATEWAY_ICE__BROWSER": '[{urls: ["turn:t.example.org"], username: web, credential: pass}]'}
    out, err = io.StringIO(), io.StringIO()
    assert check(str(config), static, out, err) == 0
    assert "warning: ice.browser[0].credential is a static TURN credential" in err.getvalue()
    assert "pass" not in out.getvalue() + err.getvalue()
    out, err = io.StringIO(), io.StringIO()
    assert check(str(config), TURN_ENV, out, err) == 0
    assert "warning" not in err.getvalue()
    assert "TURN REST" in out.getvalue() and "600 s" in out.getvalue()
    assert SECRET not in out.getvalue()


async def test_rooms_mint_for_logged_in_peers_only() -> None:
    api_key = "rooms-turn-test-key-0123456789"
    env = {
        **TURN_ENV,
        "GATEWAY_USERS__0__API_KEYS": f'[{{key: "{api_key}"}}]',
        "GATEWAY_ROOMS__ALLOW_ANONYMOUS": "true",
    }
    if "rules" in RoomsSection.__dataclass_fields__:  # rooms with access rules: anyone may open one
        env["GATEWAY_ROOMS__RULES"] = '[{room: "*", public: true}]'
    harness = make_harness(config=demo_config(**env))
    client = await start(harness)
    try:
        async with client.ws_connect(f"/webrtc/signaling/r1/p1?api_key={api_key}") as alice:
            joined = await alice.receive_json(timeout=5)
            assert joined["type"] == "joined" and joined["user"] == "alice", joined
            assert joined["ice_servers"][0] == {"urls": ["stun:stun.example.org"]}
            _check_minted(joined["ice_servers"][1], "alice", harness.now[0])
        async with client.ws_connect("/webrtc/signaling/r2/p2") as anonymous:
            joined = await anonymous.receive_json(timeout=5)
            assert joined["type"] == "joined" and joined["user"] == "anonymous", joined
            assert joined["ice_servers"] == [{"urls": ["stun:stun.example.org"]}]  # no TURN for anyone
    finally:
        await client.close()


async def test_whip_link_headers_carry_a_minted_credential() -> None:
    harness = make_harness(config=demo_config(**TURN_ENV))
    client = await start(harness)
    try:
        headers = {**basic("alice", ALICE_SECRET), "Content-Type": "application/sdp"}
        response = await client.post("/whip/2000", data=OFFER_SDP, headers=headers)
        assert response.status == 201, await response.text()
        links = response.headers.getall("Link")
        assert '<stun:stun.example.org>; rel="ice-server"' in links
        [turn] = [link for link in links if link.startswith("<turn:")]
        username = turn.split('username="', 1)[1].split('"', 1)[0]
        credential = turn.split('credential="', 1)[1].split('"', 1)[0]
        assert username == f"{int(harness.now[0]) + 600}:alice"
        assert credential == turn_rest_credential(SECRET.encode(), username)
    finally:
        await client.close()
