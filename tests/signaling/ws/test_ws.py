"""The /ws endpoint through aiohttp's test server, with the in-memory fake call service."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import ClientWebSocketResponse, WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer

from gateway.signaling.events import Ended, IceCandidate, Incoming, Ringing
from gateway.signaling.limits import SignalingLimits
from sdp import candidate_from_json
from tests.signaling.harness import (
    ALICE_SECRET,
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


async def send(ws, message: dict[str, object]) -> dict[str, object]:  # type: ignore[no-untyped-def]
    await ws.send_str(json.dumps(message))
    return await receive(ws)


async def receive(ws: ClientWebSocketResponse) -> dict[str, object]:
    msg = await ws.receive(timeout=5)
    while msg.type is WSMsgType.PING:  # only seen with autoping=False
        msg = await ws.receive(timeout=5)
    assert msg.type is WSMsgType.TEXT, msg
    message: dict[str, object] = json.loads(msg.data)
    return message


async def login(ws, user: str = "alice", secret: str = ALICE_SECRET) -> dict[str, object]:  # type: ignore[no-untyped-def]
    reply = await send(ws, {"type": "login", "id": "l1", "user": user, "secret": secret})
    assert reply["type"] == "registered", reply
    return reply


async def test_login_ok_reply_and_presence(env: tuple[Harness, Client]) -> None:
    harness, client = env
    async with client.ws_connect("/ws") as ws:
        reply = await login(ws)
        assert reply["id"] == "l1"
        assert reply["user"] == "alice"
        assert reply["display_name"] == "Alice (demo)"
        assert reply["sip"] == "sip:1001@127.0.0.1"
        assert reply["ice_servers"] == []
        assert isinstance(reply["token"], str) and reply["token_expires_in"] == 43200
        assert reply["video"] is False  # codecs.video is empty: the page shows no video controls
        assert reply["reconnect_grace"] == 30.0  # web_auth.reconnect_grace: the page ends a call past it
        session_id = reply["session_id"]
        assert await harness.presence.sessions_of("alice") == (session_id,)
        assert session_id in harness.calls.sessions


async def test_login_bad_secret_gets_error_and_socket_stays_open(env: tuple[Harness, Client]) -> None:
    _harness, client = env
    async with client.ws_connect("/ws") as ws:
        reply = await send(ws, {"type": "login", "id": 7, "user": "alice", "secret": "wrong"})
        assert reply == {
            "type": "error",
            "id": 7,
            "code": "unauthorized",
            "message": "wrong user id or secret",
            "field": "secret",
        }
        reply = await send(ws, {"type": "login", "user": "nobody", "secret": "x"})
        assert reply["code"] == "unauthorized"
        assert (await login(ws))["user"] == "alice"  # still open, and a later login works


async def test_token_login_and_bad_and_expired_tokens(env: tuple[Harness, Client]) -> None:
    harness, client = env
    async with client.ws_connect("/ws") as ws:
        token = (await login(ws))["token"]
    async with client.ws_connect("/ws") as ws:
        reply = await send(ws, {"type": "login", "token": token})
        assert reply["type"] == "registered" and reply["user"] == "alice"
    async with client.ws_connect("/ws") as ws:
        tampered = str(token)[:-2] + ("AA" if not str(token).endswith("AA") else "BB")
        reply = await send(ws, {"type": "login", "token": tampered})
        assert (reply["code"], reply["field"]) == ("unauthorized", "token")
        harness.now[0] += 43200 + 1
        reply = await send(ws, {"type": "login", "token": token})
        assert reply["code"] == "unauthorized" and "expired" in str(reply["message"])


async def test_logout_revokes_the_token_of_every_login_made_with_it(env: tuple[Harness, Client]) -> None:
    """`logout` is acked and the socket closed; the session's token, and the tokens of logins made
    with it (a reconnect), are refused from then on; another login of the same user is not."""
    _, client = env
    async with client.ws_connect("/ws") as ws:
        token = (await login(ws))["token"]
    async with client.ws_connect("/ws") as other:
        other_token = (await login(other))["token"]
    async with client.ws_connect("/ws") as ws:
        renewed = (await send(ws, {"type": "login", "token": token}))["token"]
        assert (await send(ws, {"type": "logout", "id": 9})) == {
            "type": "ack",
            "id": 9,
            "request": "logout",
            "call_id": None,
        }
        assert (await ws.receive(timeout=5)).type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
        assert ws.close_code == 1000
    for revoked in token, renewed:
        async with client.ws_connect("/ws") as ws:
            reply = await send(ws, {"type": "login", "token": revoked})
            assert (reply["code"], reply["field"]) == ("unauthorized", "token")
            assert "logout" in str(reply["message"])
    async with client.ws_connect("/ws") as ws:
        assert (await send(ws, {"type": "login", "token": other_token}))["type"] == "registered"


async def test_requests_before_login_are_unauthorized(env: tuple[Harness, Client]) -> None:
    harness, client = env
    async with client.ws_connect("/ws") as ws:
        reply = await send(ws, {"type": "call", "id": "x", "to": "2000", "sdp": OFFER_SDP})
        assert (reply["type"], reply["code"], reply["id"]) == ("error", "unauthorized", "x")
        assert (await send(ws, {"type": "ping", "id": 1})) == {"type": "pong", "id": 1}
        await login(ws)
        assert harness.calls.calls == []


async def test_bad_messages_get_errors(env: tuple[Harness, Client]) -> None:
    _, client = env
    async with client.ws_connect("/ws") as ws:
        await login(ws)
        await ws.send_str("{not json")
        assert (await receive(ws))["code"] == "bad_request"
        await ws.send_str("[1, 2]")
        assert (await receive(ws))["code"] == "bad_request"
        reply = await send(ws, {"type": "teleport", "id": 3})
        assert (reply["code"], reply["field"], reply["id"]) == ("unknown_type", "type", 3)
        reply = await send(ws, {"type": "call", "id": 4, "sdp": OFFER_SDP})
        assert (reply["code"], reply["field"]) == ("bad_request", "to")
        reply = await send(ws, {"type": "dtmf", "call_id": "c1", "digits": "12x"})
        assert (reply["code"], reply["field"]) == ("bad_request", "digits")
        await ws.send_bytes(b'{"type": "ping", "id": "b"}')
        assert await receive(ws) == {"type": "pong", "id": "b"}


async def test_oversize_message_gets_error_then_socket_works() -> None:
    harness = make_harness(SignalingLimits(max_message_bytes=4096))
    client = await start(harness)
    try:
        async with client.ws_connect("/ws") as ws:
            await login(ws)
            reply = await send(ws, {"type": "ping", "id": 1, "pad": "x" * 5000})
            assert reply["code"] == "too_large" and reply["id"] is None
            assert (await send(ws, {"type": "ping", "id": 2}))["type"] == "pong"
            await ws.send_str("x" * 4096 * 5)  # past the hard limit aiohttp closes: 1009 (RFC 6455 §7.4.1)
            msg = await ws.receive(timeout=5)
            assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
            assert ws.close_code == 1009
        await asyncio.wait_for(harness.calls.closed_event.wait(), 5)
    finally:
        await client.close()


async def test_rate_limit() -> None:
    harness = make_harness(SignalingLimits(rate=1.0, burst=3))
    client = await start(harness)
    try:
        async with client.ws_connect("/ws") as ws:
            for i in range(8):
                await ws.send_str(json.dumps({"type": "ping", "id": i}))
            replies = [await receive(ws) for _ in range(8)]
            assert [r["type"] for r in replies[:3]] == ["pong"] * 3
            assert {r["code"] for r in replies[3:]} == {"rate_limited"}
            assert not ws.closed
    finally:
        await client.close()


async def test_flood_closes_socket() -> None:
    harness = make_harness(SignalingLimits(rate=1.0, burst=1, max_rate_limited=5))
    client = await start(harness)
    try:
        async with client.ws_connect("/ws") as ws:
            for i in range(7):
                await ws.send_str(json.dumps({"type": "ping", "id": i}))
            kinds = []
            while True:
                msg = await ws.receive(timeout=5)
                if msg.type is not WSMsgType.TEXT:
                    break
                kinds.append(json.loads(msg.data)["type"])
            assert kinds[0] == "pong" and kinds.count("error") == 5
            assert ws.close_code == 1008
    finally:
        await client.close()


async def test_login_timeout_closes_with_clear_error() -> None:
    harness = make_harness(SignalingLimits(login_timeout=0.2))
    client = await start(harness)
    try:
        async with client.ws_connect("/ws") as ws:
            assert (await send(ws, {"type": "ping"}))["type"] == "pong"
            reply = await receive(ws)
            assert reply["code"] == "login_timeout" and "0.2 seconds" in str(reply["message"])
            msg = await ws.receive(timeout=5)
            assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED) and ws.close_code == 4008
    finally:
        await client.close()


@pytest.mark.parametrize("path", ["/ws", "/jsonrpc", "/webrtc/signaling/r/p"])
async def test_answering_the_heartbeat_does_not_keep_a_socket_awaiting_login(path: str) -> None:
    """A client that sends nothing but answers the pings (aiohttp's and browsers' WebSockets do it by
    themselves) is closed at the login deadline on every dialect: aiohttp's own receive timeout restarted
    at each pong (heartbeat 0.2 s here, 4 s by default, under the 5 s login timeout), so such sockets held
    the per-address cap of sockets awaiting login for ever."""
    harness = make_harness(SignalingLimits(login_timeout=1.0, heartbeat=0.2), config=demo_config())
    client = await start(harness)
    try:
        loop = asyncio.get_running_loop()
        async with client.ws_connect(path) as ws:  # autoping: every ping is answered
            opened = loop.time()
            async with asyncio.timeout(5):  # not receive(timeout=): the client restarts it at each ping too
                while (message := await ws.receive()).type is WSMsgType.TEXT:
                    pass  # the login_timeout error, where the dialect sends one
            waited = loop.time() - opened
            assert message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED), message
            assert ws.close_code == 4008 and 0.9 <= waited < 2.0, (ws.close_code, waited)
    finally:
        await client.close()


async def test_repeated_failed_logins_close_the_socket(env: tuple[Harness, Client]) -> None:
    """`max_failed_logins` (3, as on every path since issue 31; /ws had 5) close the socket with 4001."""
    _, client = env
    async with client.ws_connect("/ws") as ws:
        for _ in range(SignalingLimits().max_failed_logins):
            assert (await send(ws, {"type": "login", "user": "alice", "secret": "no"}))[
                "code"
            ] == "unauthorized"
        msg = await ws.receive(timeout=5)
        assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED) and ws.close_code == 4001


async def test_disconnect_tells_the_service_and_presence(env: tuple[Harness, Client]) -> None:
    harness, client = env
    async with client.ws_connect("/ws") as ws:
        session_id = (await login(ws))["session_id"]
    await asyncio.wait_for(harness.calls.closed_event.wait(), 5)
    assert harness.calls.closed == [session_id]
    assert await harness.presence.sessions_of("alice") == ()
    assert harness.calls.sessions[str(session_id)].closed
    await harness.calls.sessions[str(session_id)].send_event(Ringing("c1"))  # dropped, no error


async def test_unauthenticated_disconnect_tells_nobody(env: tuple[Harness, Client]) -> None:
    harness, client = env
    async with client.ws_connect("/ws") as ws:
        await send(ws, {"type": "ping"})
    await asyncio.sleep(0.05)
    assert harness.calls.closed == []


async def test_events_pushed_reach_the_browser(env: tuple[Harness, Client]) -> None:
    harness, client = env
    async with client.ws_connect("/ws") as ws:
        session = harness.calls.sessions[str((await login(ws))["session_id"])]
        await session.send_event(Incoming("c9", "sip:2000@127.0.0.1", "Desk", OFFER_SDP))
        assert await receive(ws) == {
            "type": "incoming",
            "call_id": "c9",
            "from": "sip:2000@127.0.0.1",
            "display_name": "Desk",
            "sdp": OFFER_SDP,
            "asserted_identity": None,
            "diverted_from": [],
            "headers": {},
        }
        await session.send_event(IceCandidate("c9", candidate_from_json(CANDIDATE)))
        assert await receive(ws) == {"type": "ice", "call_id": "c9", "candidate": CANDIDATE}
        await session.send_event(Ended("c9", "busy", "Busy Here", 486))
        assert await receive(ws) == {
            "type": "ended",
            "call_id": "c9",
            "reason": "busy",
            "message": "Busy Here",
            "sip_status": 486,
        }


async def test_call_requests_dispatch_to_the_service(env: tuple[Harness, Client]) -> None:
    harness, client = env
    async with client.ws_connect("/ws") as ws:
        await login(ws)
        reply = await send(
            ws, {"type": "call", "id": 1, "to": "2000", "sdp": {"type": "offer", "sdp": OFFER_SDP}}
        )
        assert reply == {"type": "ack", "id": 1, "request": "call", "call_id": "c1"}
        requests: list[dict[str, object]] = [
            {"type": "ice", "call_id": "c1", "candidate": CANDIDATE},
            {"type": "ice", "call_id": "c1", "candidate": None},
            {"type": "hold", "call_id": "c1"},
            {"type": "resume", "call_id": "c1"},
            {"type": "dtmf", "call_id": "c1", "digits": "12#", "duration_ms": 100},
            {"type": "hangup", "call_id": "c1"},
            {"type": "cancel", "call_id": "c1"},
            {"type": "answer", "call_id": "c1", "sdp": OFFER_SDP},
            {"type": "reject", "call_id": "c1", "status": 603},
        ]
        for n, request in enumerate(requests):
            reply = await send(ws, {**request, "id": n})
            assert reply == {"type": "ack", "id": n, "request": request["type"], "call_id": "c1"}
        assert [name for name, _ in harness.calls.calls] == [
            "dial",
            "ice",
            "ice",
            "hold",
            "resume",
            "dtmf",
            "hangup",
            "cancel",
            "answer",
            "reject",
        ]
        assert harness.calls.calls[5][1] == ("c1", "12#", 100)
        assert harness.calls.calls[9][1] == ("c1", 603)


async def test_service_errors_become_error_messages(env: tuple[Harness, Client]) -> None:
    _, client = env
    async with client.ws_connect("/ws") as ws:
        await login(ws)
        reply = await send(ws, {"type": "call", "id": 1, "to": FAILING_NUMBER, "sdp": OFFER_SDP})
        assert reply == {
            "type": "error",
            "id": 1,
            "code": "no_such_number",
            "message": "the number 666 is not in service",
            "field": "to",
        }
        reply = await send(ws, {"type": "hangup", "id": 2, "call_id": "x1"})
        assert (reply["code"], reply["field"], reply["call_id"]) == ("not_found", "call_id", "x1")
        reply = await send(ws, {"type": "call", "id": 3, "to": "boom", "sdp": OFFER_SDP})
        assert reply["code"] == "internal_error" and "bug" not in str(reply["message"])
        assert (await send(ws, {"type": "ping", "id": 4}))["type"] == "pong"


async def test_login_twice_and_session_limit() -> None:
    harness = make_harness(SignalingLimits(max_sessions_per_user=1))
    client = await start(harness)
    try:
        async with client.ws_connect("/ws") as first, client.ws_connect("/ws") as second:
            await login(first)
            reply = await send(first, {"type": "login", "user": "alice", "secret": ALICE_SECRET})
            assert reply["code"] == "conflict"
            reply = await send(second, {"type": "login", "user": "alice", "secret": ALICE_SECRET})
            assert reply["code"] == "too_many_sessions"
            assert (await login(second, "bob", "bob-demo"))["user"] == "bob"
    finally:
        await client.close()


async def test_login_reply_carries_the_configured_ice_servers() -> None:
    config = demo_config(
        GATEWAY_ICE__BROWSER='[{urls: ["stun:stun.example.org:3478"]}, '
        '{urls: ["turn:turn.example.org:3478?transport=udp"], username: web, credential: turn-pass}]'
    )
    harness = make_harness(config=config)
    client = await start(harness)
    try:
        async with client.ws_connect("/ws") as ws:
            reply = await login(ws)
            assert reply["ice_servers"] == [
                {"urls": ["stun:stun.example.org:3478"]},
                {
                    "urls": ["turn:turn.example.org:3478?transport=udp"],
                    "username": "web",
                    "credential": "turn-pass",
                },
            ]
    finally:
        await client.close()


async def test_shutdown_closes_sockets_and_sessions() -> None:
    harness = make_harness()
    client = await start(harness)
    async with client.ws_connect("/ws") as ws:
        session_id = (await login(ws))["session_id"]
        await client.close()  # runs the app's on_shutdown
        assert harness.calls.closed == [session_id]
        msg = await ws.receive(timeout=5)
        assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED)


async def test_heartbeat_closes_a_silent_peer_and_its_session() -> None:
    # 1 s, not less: the login's secret check must finish before the first unanswered ping closes the
    # socket, even on a loaded machine (0.2 s failed there once)
    harness = make_harness(SignalingLimits(heartbeat=1.0))
    client = await start(harness)
    try:
        async with client.ws_connect("/ws", autoping=False) as ws:
            session_id = (await login(ws))["session_id"]
            await asyncio.wait_for(harness.calls.closed_event.wait(), 10)  # no pong: the server gave up
            assert harness.calls.closed == [session_id]
    finally:
        await client.close()


async def test_sockets_awaiting_login_are_bounded() -> None:
    """Past the global cap: 429, as past the per-address cap (503 before issue 31; 503 is for draining)."""
    harness = make_harness(SignalingLimits(max_awaiting_login=2))
    client = await start(harness)
    try:
        async with client.ws_connect("/ws") as first, client.ws_connect("/ws") as second:
            response = await client.get("/ws", headers={"Connection": "Upgrade", "Upgrade": "websocket"})
            assert response.status == 429
            await login(first)  # a login frees its slot
            async with client.ws_connect("/ws") as third:
                assert (await send(third, {"type": "ping"}))["type"] == "pong"
            assert (await send(second, {"type": "ping"}))["type"] == "pong"
        async with client.ws_connect("/ws") as again:  # closed sockets free theirs
            await login(again)
    finally:
        await client.close()


async def test_login_while_logins_queue_up_is_rate_limited(
    env: tuple[Harness, Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.identity import LoginBusy
    from gateway.identity.lookup import IdentityMap

    async def busy(self: IdentityMap, user_id: str, secret: str, client: str = "") -> None:
        raise LoginBusy("more than 32 logins are being checked: try again later")

    monkeypatch.setattr(IdentityMap, "verify_web_login", busy)
    _, client = env
    async with client.ws_connect("/ws") as ws:
        for _ in range(6):  # not counted as failed logins: the socket stays open
            reply = await send(ws, {"type": "login", "user": "alice", "secret": ALICE_SECRET})
            assert (reply["code"], reply["field"]) == ("rate_limited", "secret")
        assert (await send(ws, {"type": "ping"}))["type"] == "pong"


async def test_browser_that_stops_reading_is_dropped_without_blocking_senders() -> None:
    harness = make_harness(SignalingLimits(send_timeout=0.3))
    client = await start(harness)
    try:
        ws = await client.ws_connect("/ws", autoping=False)
        session_id = str((await login(ws))["session_id"])
        assert ws._response is not None and ws._response.connection is not None
        transport = ws._response.connection.transport
        assert transport is not None
        transport.pause_reading()  # the browser stops reading; the kernel buffers fill up
        session = harness.calls.sessions[session_id]
        big = Incoming("c1", "sip:2000@pbx", None, "v=0\r\n" + "a=x:" + "y" * 60000 + "\r\n")
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(400):  # ~24 MB: far past any socket buffer
            await asyncio.wait_for(session.send_event(big), 2)
        assert loop.time() - started < 5
        await asyncio.wait_for(harness.calls.closed_event.wait(), 5)  # the call layer heard it end
        assert harness.calls.closed == [session_id] and session.closed
        transport.resume_reading()
        await ws.close()
    finally:
        await client.close()
