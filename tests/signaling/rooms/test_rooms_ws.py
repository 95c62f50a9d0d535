"""`/webrtc/signaling/{room_id}/{peer_id}`, `/webrtc/rooms`, `/webrtc/rooms/{room_id}/peers` and
`/webrtc/client` through aiohttp's test server: the document's messages between two sockets, credentials
at the upgrade or in `login`, refusals (room full, peer id taken, bad credentials), the rate limit."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer

from gateway.signaling.limits import SignalingLimits
from tests.signaling.harness import ALICE_SECRET, BOB_SECRET, demo_config, make_harness

Client = TestClient[web.Request, web.Application]
API_KEY = "rooms-test-key-0123456789"
ALICE = {"Authorization": "Basic " + base64.b64encode(f"alice:{ALICE_SECRET}".encode()).decode()}
BOB = {"Authorization": "Basic " + base64.b64encode(f"bob:{BOB_SECRET}".encode()).decode()}
GRACE = 1.0  # rooms.rejoin_grace here
SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    config = demo_config(
        GATEWAY_USERS__0__API_KEYS=f'[{{key: "{API_KEY}"}}]',
        GATEWAY_ROOMS__MAX_PEERS="3",
        GATEWAY_ROOMS__RATE="5",
        GATEWAY_ROOMS__BURST="10",
        GATEWAY_ROOMS__RULES='[{room: "*", public: true}]',  # a lab's open rooms: alice and bob in one
        GATEWAY_ROOMS__REJOIN_GRACE=str(GRACE),
    )
    harness = make_harness(SignalingLimits(login_timeout=0.5, max_rate_limited=20), config=config)
    test_client = TestClient(TestServer(harness.app))
    await test_client.start_server()
    yield test_client
    await test_client.close()


async def _next(ws: Any, kind: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = await ws.receive_json(timeout=5)
    if kind is not None:
        assert message["type"] == kind, message
    return message


async def test_document_flow_between_two_peers(client: Client) -> None:
    async with client.ws_connect(f"/webrtc/signaling/room1/peer1?api_key={API_KEY}") as peer1:
        joined = await _next(peer1, "joined")
        assert (joined["room_id"], joined["peer_id"], joined["user"]) == ("room1", "peer1", "alice")
        assert isinstance(joined["ice_servers"], list)
        assert await _next(peer1) == {"type": "existing_peers", "peers": []}
        async with client.ws_connect("/webrtc/signaling/room1/peer2") as peer2:  # credentials in `login`
            await peer2.send_json({"type": "login", "user": "bob", "secret": BOB_SECRET})
            assert (await _next(peer2, "joined"))["user"] == "bob"
            assert await _next(peer2) == {"type": "existing_peers", "peers": ["peer1"]}
            assert await _next(peer1) == {"type": "peer_joined", "peer_id": "peer2"}
            # The document's JavaScript: sendOffer(targetPeerId, offer)
            await peer2.send_str(json.dumps({"type": "offer", "offer": {"type": "offer", "sdp": SDP},
                                             "target_peer_id": "peer1"}))  # fmt: skip
            offer = await _next(peer1)
            assert offer == {"type": "offer", "offer": {"type": "offer", "sdp": SDP}, "target_peer_id": "peer1",
                             "from_peer_id": "peer2"}  # fmt: skip
            await peer1.send_json({"type": "answer", "answer": {"type": "answer", "sdp": SDP},
                                   "target_peer_id": "peer2"})  # fmt: skip
            assert (await _next(peer2, "answer"))["from_peer_id"] == "peer1"
            candidate = {
                "candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host",
                "sdpMLineIndex": 0,
                "sdpMid": "0",
            }
            await peer2.send_json(
                {"type": "ice_candidate", "candidate": candidate, "target_peer_id": "peer1"}
            )
            relayed = await _next(peer1, "ice_candidate")
            assert (relayed["candidate"], relayed["from_peer_id"]) == (candidate, "peer2")
            rooms = await (await client.get("/webrtc/rooms", headers=ALICE)).json()
            assert rooms == {"rooms": [{"room_id": "room1", "peers": 2, "owner": "alice"}]}
            peers = await (
                await client.get("/webrtc/rooms/room1/peers", headers={"X-API-Key": API_KEY})
            ).json()
            assert peers == {"room_id": "room1", "peers": ["peer1", "peer2"]}
            await peer2.send_json(
                {"type": "offer", "offer": {"type": "offer", "sdp": SDP}, "target_peer_id": "x"}
            )
            error = await _next(peer2, "error")
            assert (error["code"], error["field"]) == ("not_found", "target_peer_id")
            await peer2.send_json({"type": "ping"})
            assert await _next(peer2) == {"type": "pong"}
        assert await _next(peer1) == {"type": "peer_left", "peer_id": "peer2"}
    response = await client.get("/webrtc/rooms/room1/peers", headers=ALICE)
    assert response.status == 404 and (await response.json())["code"] == 404


async def test_refusals(client: Client) -> None:
    response = await client.get("/webrtc/signaling/room1/peer1?api_key=wrong-wrong-wrong-wrong")
    assert response.status == 401 and (await response.json())["code"] == 401
    assert (await client.get("/webrtc/rooms")).status == 401
    response = await client.get("/webrtc/signaling/room1/bad%20id", headers=ALICE)
    assert response.status == 400 and (await response.json())["field"] == "peer_id"
    response = await client.get("/webrtc/signaling/room1/gateway", headers=ALICE)  # the gateway's own peer
    assert response.status == 400 and (await response.json())["field"] == "peer_id"
    async with client.ws_connect("/webrtc/signaling/r/dialler", headers=ALICE) as dialler:
        await _next(dialler, "joined")
        await _next(dialler, "existing_peers")
        await dialler.send_json({"type": "dial", "to": "2000"})  # this app has no media: no SIP parties
        error = await _next(dialler, "error")
        assert (error["code"], error["field"]) == ("not_implemented", "type")
    sockets = [await client.ws_connect(f"/webrtc/signaling/r/p{n}", headers=ALICE) for n in range(3)]
    try:
        async with client.ws_connect("/webrtc/signaling/r/p0", headers=BOB) as taken:  # alice's peer id
            error = await _next(taken, "error")
            assert (error["code"], error["field"]) == ("conflict", "peer_id")
            assert (await taken.receive(timeout=5)).type is WSMsgType.CLOSE and taken.close_code == 4009
        async with client.ws_connect("/webrtc/signaling/r/p3", headers=ALICE) as extra:
            assert (await _next(extra, "error"))["code"] == "room_full"
            await extra.receive(timeout=5)
            assert extra.close_code == 4009
    finally:
        for ws in sockets:
            await ws.close()
    async with client.ws_connect("/webrtc/signaling/r/late") as late:  # no login in time
        await late.send_json({"type": "offer", "offer": {"type": "offer", "sdp": SDP}})
        assert (await _next(late, "error"))["code"] == "conflict"  # not in the room before the login
        await late.send_json({"type": "login", "user": "alice", "secret": "wrong"})
        assert (await _next(late, "error"))["code"] == "unauthorized"
        assert (await _next(late, "error"))["code"] == "login_timeout"
        await late.receive(timeout=5)
        assert late.close_code == 4008


def _lose(ws: Any) -> None:
    """The socket's network goes: its TCP connection is cut, no close frame (a phone leaving Wi-Fi)."""
    ws._conn.transport.abort()


async def test_a_peer_whose_socket_was_lost_takes_its_place_back(client: Client) -> None:
    """A lost socket keeps its peer in the room for `rooms.rejoin_grace`: the others are told nothing, what
    they send it waits for it, and its new socket (same peer id, same user) gets `joined {resumed: true}`
    and what waited; a socket of the same peer that arrives while the old one still holds the place
    replaces it (4010 to the old one); after the grace, or after a clean close, the others get
    `peer_left` at once."""
    async with client.ws_connect("/webrtc/signaling/back/stay", headers=BOB) as stay:
        await _next(stay, "joined")
        await _next(stay, "existing_peers")
        lost = await client.ws_connect("/webrtc/signaling/back/mover", headers=ALICE)
        assert (await _next(lost, "joined"))["resumed"] is False
        await _next(lost, "existing_peers")
        await _next(stay, "peer_joined")
        _lose(lost)
        await asyncio.sleep(0.3)  # (the gateway notices the loss)
        offer = {"type": "offer", "offer": {"type": "offer", "sdp": SDP}, "target_peer_id": "mover"}
        await stay.send_json(offer)  # the mover is still in the room: no error, kept for it
        async with client.ws_connect("/webrtc/signaling/back/mover", headers=ALICE) as back:
            assert (await _next(back, "joined"))["resumed"] is True
            assert (await _next(back, "offer"))["from_peer_id"] == "stay"  # what waited for it
            # its socket is replaced before the gateway noticed it lost: the old one gets 4010
            async with client.ws_connect("/webrtc/signaling/back/mover", headers=ALICE) as again:
                assert (await _next(again, "joined"))["resumed"] is True
                assert (await back.receive(timeout=5)).type is WSMsgType.CLOSE and back.close_code == 4010
                await stay.send_json({"type": "ping"})
                assert await _next(stay) == {
                    "type": "pong"
                }  # nothing else came: no peer_left, no peer_joined
                _lose(again)
                started = time.monotonic()
                assert await _next(stay) == {"type": "peer_left", "peer_id": "mover"}  # after the grace
                assert GRACE - 0.2 < time.monotonic() - started < GRACE + 2
        async with client.ws_connect("/webrtc/signaling/back/mover", headers=ALICE) as late:
            assert (await _next(late, "joined"))["resumed"] is False  # too late: a join as any other
            await _next(late, "existing_peers")
            assert (await _next(stay, "peer_joined"))["peer_id"] == "mover"
        assert await _next(stay) == {"type": "peer_left", "peer_id": "mover"}  # a clean close: at once


async def test_rate_limit(client: Client) -> None:
    async with client.ws_connect("/webrtc/signaling/fast/p1", headers=ALICE) as ws:
        await _next(ws, "joined")
        await _next(ws, "existing_peers")
        for _ in range(12):
            await ws.send_json({"type": "ping"})
        replies = [(await _next(ws))["type"] for _ in range(12)]
        assert replies.count("pong") in (10, 11) and "error" in replies  # burst 10 (refilled at 5/s)


async def test_demo_client_page(client: Client) -> None:
    page = await client.get("/webrtc/client")
    assert page.status == 200 and "/static/room.js" in await page.text()
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    script = await client.get("/static/room.js")
    assert script.status == 200 and "/webrtc/signaling/" in await script.text()


async def test_anonymous_rooms_and_rooms_disabled() -> None:
    """`rooms.allow_anonymous`: the document's client, without credentials, works unmodified (its URL, its
    messages); `rooms.enabled: false` takes every room route away."""
    harness = make_harness(
        config=demo_config(
            GATEWAY_ROOMS__ALLOW_ANONYMOUS="true", GATEWAY_ROOMS__RULES='[{room: "*", public: true}]'
        )
    )
    async with TestClient(TestServer(harness.app)) as anonymous:
        async with anonymous.ws_connect("/webrtc/signaling/room1/peer1") as peer1:
            joined = await _next(peer1, "joined")
            assert joined["user"] == "anonymous"
            assert await _next(peer1) == {"type": "existing_peers", "peers": []}
        assert (await anonymous.get("/webrtc/rooms")).status == 200
    harness = make_harness(config=demo_config(GATEWAY_ROOMS__ENABLED="false"))
    async with TestClient(TestServer(harness.app)) as disabled:
        for path in (
            "/webrtc/signaling/room1/peer1",
            "/webrtc/rooms",
            "/webrtc/rooms/r/peers",
            "/webrtc/client",
        ):
            assert (await disabled.get(path, headers=ALICE)).status == 404


async def test_a_room_of_another_instance_is_relayed_there_once_the_login_is_checked() -> None:
    """A cluster's rooms (gateway/cluster/room_owners.py) with `RoomsContext.place` standing in for
    Redis: instance A says the room lives on B. A socket with credentials at the upgrade is relayed at
    once and meets B's peer there; one logging in by message is relayed only after A checked its login
    (a bad one stays at A, refused, and B never hears of it); B serves a relayed socket for a room it
    holds, and refuses (1013) one for a room its own `place` says is elsewhere."""
    from gateway.signaling.rooms.endpoint import ROOMS_KEY

    config = demo_config(
        GATEWAY_USERS__0__API_KEYS=f'[{{key: "{API_KEY}"}}]',
        GATEWAY_ROOMS__RULES='[{room: "*", public: true}]',
    )
    apps = [make_harness(config=config).app for _ in range(2)]
    servers = [TestClient(TestServer(app)) for app in apps]
    for server in servers:
        await server.start_server()
    a, b = servers
    b_url = str(b.make_url("")).rstrip("/")
    asked: list[str] = []

    async def place_a(room_id: str, unreachable: str | None) -> str | None:
        asked.append(room_id)
        return b_url

    async def place_b(room_id: str, unreachable: str | None) -> str | None:
        return None if room_id == "lab" else "http://elsewhere.invalid"

    apps[0][ROOMS_KEY].place, apps[1][ROOMS_KEY].place = place_a, place_b
    try:
        async with b.ws_connect(f"/webrtc/signaling/lab/at-b?api_key={API_KEY}") as at_b:
            await _next(at_b, "joined")
            await _next(at_b, "existing_peers")
            async with a.ws_connect(f"/webrtc/signaling/lab/via-a?api_key={API_KEY}") as via_a:
                assert (await _next(via_a, "joined"))["peer_id"] == "via-a"  # served by B, through A
                assert await _next(via_a) == {"type": "existing_peers", "peers": ["at-b"]}
                assert await _next(at_b) == {"type": "peer_joined", "peer_id": "via-a"}
            assert await _next(at_b) == {"type": "peer_left", "peer_id": "via-a"}  # its relay closed too
            assert asked == ["lab"]
            async with a.ws_connect("/webrtc/signaling/lab/late") as late:
                await late.send_json({"type": "login", "user": "bob", "secret": "wrong"})
                assert (await _next(late, "error"))["code"] == "unauthorized"
                assert asked == ["lab"]  # the bad login was never relayed: no place asked for it
                await late.send_json({"type": "login", "user": "bob", "secret": BOB_SECRET})
                assert (await _next(late, "joined"))["user"] == "bob"
                assert await _next(late) == {"type": "existing_peers", "peers": ["at-b"]}
                assert await _next(at_b) == {"type": "peer_joined", "peer_id": "late"}
            assert await _next(at_b) == {"type": "peer_left", "peer_id": "late"}
            assert "lab" not in apps[0][ROOMS_KEY].registry.rooms()
            # a relayed socket lost at A: its relay tells B so (1012), and B keeps the peer's place
            lost = await a.ws_connect(f"/webrtc/signaling/lab/moving?api_key={API_KEY}")
            await _next(lost, "joined")
            await _next(lost, "existing_peers")
            assert await _next(at_b) == {"type": "peer_joined", "peer_id": "moving"}
            _lose(lost)
            await asyncio.sleep(0.5)
            assert ("lab", "moving") in apps[1][ROOMS_KEY].away
            async with a.ws_connect(f"/webrtc/signaling/lab/moving?api_key={API_KEY}") as back:
                assert (await _next(back, "joined"))["resumed"] is True
            assert await _next(at_b) == {"type": "peer_left", "peer_id": "moving"}  # (closed cleanly now)
        async with a.ws_connect(f"/webrtc/signaling/other/p?api_key={API_KEY}") as astray:
            closed = await astray.receive(timeout=5)  # B: "other" is not its room
            assert closed.type is WSMsgType.CLOSE and closed.data == 1013, closed
    finally:
        for server in servers:
            await server.close()
