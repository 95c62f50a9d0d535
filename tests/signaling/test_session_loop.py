"""The one session loop's limits, asserted alike on all four WebSocket paths of a running gateway: `/ws`,
`/jsonrpc`, the rooms and SIP over WebSocket (issue 31, item 2; docs/signaling.md, *Limits*).

Each case starts a gateway (gateway.app.Gateway, in this process) whose `SignalingLimits` are made small
(the routes' and SIP over WebSocket's default limits replaced) and drives real sockets at it. A socket
the gateway drops (heartbeat, send_timeout) ends with no close frame: the client sees 1006 (RFC 6455
§7.1.5), which is what these tests assert. SIP over
WebSocket has no login message: where a limit presupposes one (login deadline, failed logins) or a
refusal message (rate limit, `too_large`), the test asserts what the docs say happens instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import gateway.signaling.routes
import gateway.signaling.session_loop
import gateway.signaling.sip_ws
from gateway.app import Gateway
from gateway.config.schema import SipWebSocket
from gateway.signaling.cluster_http import RelayMark
from gateway.signaling.limits import SignalingLimits
from gateway.signaling.session_loop import SOCKETS_KEY
from tests.e2e.harness import gateway_config, running_gateway

WRONG = {"user": "alice", "secret": "not-her-secret"}


@dataclass(frozen=True)
class Path:
    """One dialect's path and how to say a few things in it."""

    name: str
    path: Callable[[int], str]
    login: bool = True  # has a login message
    protocols: tuple[str, ...] = ()

    def url(self, gateway: Gateway, n: int) -> str:
        return gateway.http_url.replace("http://", "ws://") + self.path(n)

    def ping(self, n: int) -> str:
        if self.name == "jsonrpc":
            return json.dumps({"jsonrpc": "2.0", "method": "ping", "id": n})
        if self.name == "sip":
            return "\r\n\r\n"  # a keep-alive (RFC 5626 §4.4.1): answered with CRLF
        return json.dumps({"type": "ping", "id": n})

    def chatty(self, n: int) -> str:
        """A message that gets an answer of some size before any login: a ping with the longest id the
        dialect takes (/ws 64 characters, JSON-RPC 128), and for SIP an OPTIONS (answered 200 OK)."""
        if self.name == "jsonrpc":
            return json.dumps({"jsonrpc": "2.0", "method": "ping", "id": f"{n:0128d}"})
        if self.name == "sip":
            branch, tag = "z9hG4bK" + secrets.token_hex(8), secrets.token_hex(4)
            return (
                f"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/WS {tag}.invalid;branch={branch}\r\n"
                f"Max-Forwards: 70\r\nTo: <sip:127.0.0.1>\r\nFrom: <sip:127.0.0.1>;tag={tag}\r\n"
                f"Call-ID: {branch}\r\nCSeq: {n + 1} OPTIONS\r\nContent-Length: 0\r\n\r\n"
            )
        return json.dumps({"type": "ping", "id": f"{n:064d}"})

    def wrong_login(self, n: int) -> str:
        if self.name == "jsonrpc":
            params = {"peer_id": f"p{n}", "credentials": WRONG}
            return json.dumps({"jsonrpc": "2.0", "method": "announce", "id": n, "params": params})
        return json.dumps({"type": "login", "id": n, **WRONG})

    def error_code(self, text: str) -> object:
        """The refusal code in a reply (None: not a refusal)."""
        reply = json.loads(text)
        if self.name == "jsonrpc":
            return reply["error"]["code"] if "error" in reply else None
        return reply.get("code")


PATHS = [
    Path("ws", lambda n: "/ws"),
    Path("jsonrpc", lambda n: "/jsonrpc"),
    Path("rooms", lambda n: f"/webrtc/signaling/room1/peer{n}"),
    Path("sip", lambda n: "/sip", login=False, protocols=("sip",)),
]
LOGIN_PATHS = [p for p in PATHS if p.login]
RELAYED_PATHS = [p for p in PATHS if p.name != "rooms"]  # a room's sockets are never relayed
TOO_LARGE = {"ws": "too_large", "rooms": "too_large", "jsonrpc": -32007}
RATE_LIMITED = {"ws": "rate_limited", "rooms": "rate_limited", "jsonrpc": -32005}


@contextlib.asynccontextmanager
async def small_gateway(monkeypatch: pytest.MonkeyPatch, **limits: Any) -> AsyncIterator[Gateway]:
    """A gateway with SIP over WebSocket and rooms, its signaling limits replaced by `limits`."""
    limits.setdefault("login_timeout", 1.0)
    made = functools.partial(SignalingLimits, **limits)
    monkeypatch.setattr(gateway.signaling.routes, "SignalingLimits", made)
    monkeypatch.setattr(gateway.signaling.sip_ws, "SignalingLimits", made)
    config = gateway_config(None)
    websocket = SipWebSocket(auth_timeout=limits["login_timeout"])  # SIP's "login": a digest (issue 32)
    config = dataclasses.replace(config, sip=dataclasses.replace(config.sip, websocket=websocket))
    async with running_gateway(config) as running:
        yield running


def session(host: str = "127.0.0.1") -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(host, 0), force_close=True))


async def connect(
    http: aiohttp.ClientSession, gateway: Gateway, path: Path, n: int = 0
) -> aiohttp.ClientWebSocketResponse:
    return await http.ws_connect(path.url(gateway, n), protocols=path.protocols, autoclose=False)


async def refused_status(http: aiohttp.ClientSession, gateway: Gateway, path: Path, n: int = 0) -> int:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await connect(http, gateway, path, n)
    return refused.value.status


async def until_closed(
    ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0
) -> tuple[int | None, list[str]]:
    """Read until the server's close frame: its code, and the text messages before it."""
    texts: list[str] = []
    async with asyncio.timeout(timeout):
        while True:
            message = await ws.receive()
            if message.type is aiohttp.WSMsgType.TEXT:
                texts.append(message.data)
            elif message.type is aiohttp.WSMsgType.CLOSE:
                return int(message.data), texts
            else:
                return ws.close_code, texts


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
async def test_a_flood_past_the_per_address_cap_gets_429(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sockets awaiting login (SIP: flows) per address: the next upgrade gets 429, on every path; another
    address still gets in."""
    limits = {"max_awaiting_login_per_ip": 3, "max_sip_flows_per_ip": 3}
    async with (
        small_gateway(monkeypatch, **limits) as gw,
        session("127.0.0.2") as flood,
        session("127.0.0.3") as other,
    ):
        held = [await connect(flood, gw, path, n) for n in range(3)]
        assert await refused_status(flood, gw, path, 9) == 429
        await (await connect(other, gw, path, 8)).close()
        for ws in held:
            await ws.close()


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
async def test_a_flood_past_the_global_cap_gets_429_too(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cap in all answers the same 429 (/ws answered 503 before issue 31)."""
    async with (
        small_gateway(monkeypatch, max_awaiting_login=2, max_sip_flows=2) as gw,
        session("127.0.0.2") as one,
        session("127.0.0.3") as two,
    ):
        held = [await connect(one, gw, path, 0), await connect(two, gw, path, 1)]
        assert await refused_status(two, gw, path, 2) == 429
        for ws in held:
            await ws.close()


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
async def test_the_login_deadline_closes_4008_where_there_is_a_login(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No login within login_timeout (1 s here): closed 4008, however the heartbeat is answered. SIP over
    WebSocket has no login message: its deadline is for a digest to succeed on the flow
    (sip.websocket.auth_timeout, 1 s here; issue 32, item 6), and keep-alives answered meanwhile do not
    extend it."""
    async with small_gateway(monkeypatch, heartbeat=0.3) as gw, session() as http:
        ws = await connect(http, gw, path)
        loop = asyncio.get_running_loop()
        opened = loop.time()
        if not path.login:
            await ws.send_str(path.ping(0))
            assert (await ws.receive(timeout=5)).data == "\r\n"
        code, _ = await until_closed(ws)
        assert code == 4008 and 0.9 <= loop.time() - opened < 3.0, (code, loop.time() - opened)


@pytest.mark.parametrize("path", LOGIN_PATHS, ids=lambda p: p.name)
async def test_failed_logins_close_4001_at_the_same_count(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """max_failed_logins (3) wrong credentials on one socket close it with 4001, on every path with a
    login (JSON-RPC's `announce` had no such limit before issue 31, /ws allowed 5)."""
    async with small_gateway(monkeypatch, login_timeout=10.0) as gw, session() as http:
        ws = await connect(http, gw, path)
        count = SignalingLimits().max_failed_logins
        for n in range(count):
            await ws.send_str(path.wrong_login(n))
        code, texts = await until_closed(ws)
        assert code == 4001, (code, texts)
        assert [path.error_code(t) for t in texts] == [
            -32001 if path.name == "jsonrpc" else "unauthorized"
        ] * count


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
async def test_refused_messages_in_a_row_close_1008(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the rate, each message is refused (`rate_limited`); max_rate_limited in a row close the socket
    (1008), the last refusal answered first. SIP over WebSocket has no rate limit: every keep-alive
    is answered and the flow stays open."""
    limits = {"rate": 1.0, "burst": 1, "max_rate_limited": 5, "login_timeout": 10.0}
    async with small_gateway(monkeypatch, **limits) as gw, session() as http:
        if path.name == "rooms":  # the rooms' own rate (gateway.yaml rooms.rate, rooms.burst)
            rooms = gw.config.rooms
            assert (rooms.rate, rooms.burst) == (20.0, 60)
        ws = await connect(http, gw, path)
        sent = 80
        for n in range(sent):
            await ws.send_str(path.ping(n))
        if not path.login:
            for _ in range(sent):
                assert (await ws.receive(timeout=5)).data == "\r\n"
            assert not ws.closed
            await ws.close()
            return
        code, texts = await until_closed(ws)
        codes = [path.error_code(t) for t in texts]
        assert code == 1008, (code, codes)
        assert codes[-5:] == [RATE_LIMITED[path.name]] * 5, codes
        # each refusal names the request it refuses (issue 67 item 20: a client waiting on its reply
        # hung on an `id` null); the rooms' dialect has no request ids
        refused = [json.loads(t).get("id") for t in texts if path.error_code(t) == RATE_LIMITED[path.name]]
        if path.name != "rooms":  # the pings after the burst, in order, until the socket closed
            assert refused == list(range(refused[0], refused[0] + len(refused))) and refused[0] >= 1, refused


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
async def test_an_oversized_message_is_refused(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above max_message_bytes: `too_large` and the socket stays open; SIP over WebSocket has no such
    answer: the flow is closed 1009."""
    async with (
        small_gateway(monkeypatch, max_message_bytes=2048, login_timeout=10.0) as gw,
        session() as http,
    ):
        ws = await connect(http, gw, path)
        await ws.send_str(" " * 100 + path.ping(1) + " " * 3000)
        if not path.login:
            code, _ = await until_closed(ws)
            assert code == 1009
            return
        reply = await ws.receive(timeout=5)
        assert path.error_code(reply.data) == TOO_LARGE[path.name], reply
        await ws.send_str(path.ping(2))
        assert path.error_code((await ws.receive(timeout=5)).data) is None  # still served
        await ws.close()


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
async def test_draining_closes_1012_and_refuses_503(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A drain closes an idle socket with 1012 and answers new upgrades 503, on every path."""
    async with small_gateway(monkeypatch, login_timeout=10.0) as gw, session() as http:
        ws = await connect(http, gw, path)
        gw.drain()
        code, _ = await until_closed(ws)
        assert code == 1012
        assert await refused_status(http, gw, path, 1) == 503


@pytest.mark.parametrize("path", RELAYED_PATHS, ids=lambda p: p.name)
async def test_a_draining_instance_still_takes_a_socket_another_instance_relays(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 34: a page's, JSON-RPC client's or SIP library's new socket that reached another instance of a
    cluster is relayed to the one holding its calls, with a mark signed with a key derived from the cluster
    secret (X-Gateway-Relayed). That one serves it even while it drains (until now a library whose socket
    dropped during a drain never reached its call again: 503), counts it against none of its caps, and
    gives it RELAYED_KEEP (1.5 s here) to take its calls back before the drain's sweeps (0.2 s apart)
    close it as idle (1012). Without a mark, or with a forged, stale or misplaced one: 503, as any new
    socket."""
    limits = {"max_awaiting_login_per_ip": 1, "max_sip_flows_per_ip": 1, "login_timeout": 10.0}
    monkeypatch.setattr(gateway.signaling.session_loop, "RELAYED_KEEP", 1.5)
    async with small_gateway(monkeypatch, **limits) as gw, session() as http:
        secret = b"unit-cluster-secret-0123"
        mark = RelayMark("gw2", secret)
        assert gw.http is not None and gw.sip_ws_endpoint is not None
        for registry in (gw.http._app[SOCKETS_KEY], gw.sip_ws_endpoint.sockets):
            registry.relay_marks = mark

        async def relayed(n: int) -> aiohttp.ClientWebSocketResponse:
            headers = mark.stamp(path.path(n))
            return await http.ws_connect(
                path.url(gw, n), protocols=path.protocols, headers=headers, autoclose=False
            )

        first = await relayed(0)  # before the drain: kept by its sweeps, so they go on
        gw.drain()
        await asyncio.sleep(0.5)
        assert not first.closed
        assert await refused_status(http, gw, path, 5) == 503
        bad = [
            RelayMark("gw2", b"another-cluster-secret-01").stamp(path.path(0)),
            RelayMark("gw2", secret, clock=lambda: time.time() - 60).stamp(path.path(0)),
            mark.stamp("/elsewhere"),
        ]
        for headers in bad:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(path.url(gw, 0), protocols=path.protocols, headers=headers)
            assert refused.value.status == 503
        assert mark.refused == 3
        more = [await relayed(n) for n in (1, 2)]  # from one address, past its cap of one
        await asyncio.sleep(0.4)
        loop = asyncio.get_running_loop()
        opened = loop.time()
        for n, ws in enumerate(more, 1):
            await ws.send_str(path.ping(n))
            reply = await ws.receive(timeout=5)
            assert reply.type is aiohttp.WSMsgType.TEXT, reply
        # no call came with them: once RELAYED_KEEP is over, the drain closes each as idle
        for ws in (first, *more):
            code, _ = await until_closed(ws)
            assert code == 1012
        assert loop.time() - opened >= 0.5  # (the later ones lived their 1.5 s)


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
async def test_a_client_that_stops_answering_pings_is_dropped(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """heartbeat (0.4 s here): a quiet socket gets a WebSocket ping (RFC 6455 §5.5.2); no pong within half
    of it and the socket is dropped, no close frame: the client sees 1006. A client whose library answers
    the pings (aiohttp's autoping, as a browser's) is still open then."""
    async with small_gateway(monkeypatch, heartbeat=0.4, login_timeout=10.0) as gw, session() as http:
        answering = await connect(http, gw, path, 1)
        reading = asyncio.create_task(answering.receive())  # answers the pings while it waits
        silent = await http.ws_connect(
            path.url(gw, 0), protocols=path.protocols, autoclose=False, autoping=False
        )
        loop = asyncio.get_running_loop()
        opened = loop.time()
        pings = 0
        async with asyncio.timeout(5):
            while (message := await silent.receive()).type is aiohttp.WSMsgType.PING:
                pings += 1  # and no pong sent
        elapsed, code = loop.time() - opened, silent.close_code
        assert message.type is aiohttp.WSMsgType.CLOSED and code == 1006, (message, code)
        assert pings == 1 and 0.4 <= elapsed < 3.0, (pings, elapsed)
        assert not reading.done() and not answering.closed
        await answering.close()
        await reading


class _SmallServerBuffers(web.WebSocketResponse):
    """The gateway's side of a socket with small buffers (kernel and aiohttp's writer), so a few hundred
    answers fill them instead of the megabytes loopback autotuning allows; the send_timeout logic is
    untouched."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(writer_limit=1024, **kwargs)

    async def prepare(self, request: web.BaseRequest) -> Any:
        first = not self.prepared  # (aiohttp prepares again when the handler returns)
        writer = await super().prepare(request)
        transport = request.transport
        if first and transport is not None:
            transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            transport.set_write_buffer_limits(high=1024)
        return writer


def _small_receive_buffer(address: Any) -> socket.socket:
    """aiohttp's `socket_factory`: the client's socket with a small receive buffer (no autotuning)."""
    family, kind, proto, _, _ = address
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return sock


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
async def test_a_client_that_never_reads_is_dropped_after_send_timeout(
    path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """send_timeout (0.5 s here): a client that sends but never reads fills the socket buffers with its
    answers; the answer that waited send_timeout to be written drops the socket (TCP abort, no close
    frame): the client, reading at last, gets what was buffered and then 1006."""
    caplog.set_level(logging.INFO, logger=gateway.signaling.session_loop.logger.name)
    monkeypatch.setattr(web, "WebSocketResponse", _SmallServerBuffers)  # the session loop's, as aiohttp's
    limits = {"heartbeat": 30.0, "login_timeout": 30.0, "send_timeout": 0.5, "max_rate_limited": 10**9}
    limits |= {"rate": 1e6, "burst": 10**6}  # (rooms: their own rate, refusals are answers too)
    connector = aiohttp.TCPConnector(socket_factory=_small_receive_buffer, force_close=True)
    async with small_gateway(monkeypatch, **limits) as gw, aiohttp.ClientSession(connector=connector) as http:
        ws = await connect(http, gw, path)
        loop = asyncio.get_running_loop()
        started = loop.time()

        def dropped() -> bool:
            return any("not reading" in record.getMessage() for record in caplog.records)

        sent = 0
        async with asyncio.timeout(30):
            while not dropped():  # paced below what the gateway answers per second, SIP's OPTIONS included
                if sent < 10_000:  # some 300 KB of answers fill the buffers; this is twice as many at least
                    for _ in range(50):
                        await ws.send_str(path.chatty(sent))
                        sent += 1
                await asyncio.sleep(0.02)
        assert loop.time() - started >= 0.5
        answers = 0
        async with asyncio.timeout(10):
            while (message := await ws.receive()).type is aiohttp.WSMsgType.TEXT:
                answers += 1
        code = ws.close_code
        assert message.type is aiohttp.WSMsgType.CLOSED and code == 1006, (message, code)
        assert 0 < answers < sent, (answers, sent)
