"""The `/ws` endpoint: the thin aiohttp layer around `Connection` (which holds the protocol logic).

It owns the socket: reads messages and hands them to the connection, writes what the connection sends
(one writer at a time), enforces the login deadline, lets aiohttp's heartbeat (WebSocket ping/pong,
RFC 6455 §5.5.2) close dead peers, and closes the connection (so the call service hears
`session_closed`) however the socket ends. Messages are handled one at a time, in order.

Draining (an instance being restarted, gateway/ops/drain.py, docs/deploy.md): `SocketRegistry.close_idle`
closes every socket with no call in progress (`/ws`, `/jsonrpc` and rooms sockets: each registers how to
tell, `track`) with 1012 (Service Restart, RFC 6455 §7.4.1 as registered by IANA), which the page's client
takes as "reconnect now" and HAProxy sends elsewhere; it is called again as calls end, so a socket is
closed once its last call is over. New sockets get 503 meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

from aiohttp import WSMessage, WSMsgType, web

from gateway.logs import RateLimit
from gateway.signaling.connection import Connection, ConnectionState, SignalingContext
from gateway.signaling.events import ServerMessage, encode
from gateway.signaling.limits import SignalingLimits
from gateway.signaling.origin import origin_allowed

logger = logging.getLogger(__name__)

HARD_SIZE_FACTOR: Final = 4  # messages above 4x the limit are not even read: aiohttp closes with 1009
CLOSE_GOING_AWAY: Final = 1001
CLOSE_SERVICE_RESTART: Final = 1012  # the gateway drains: reconnect at once (to another instance)
DRAIN_CLOSE_MESSAGE: Final = b"gateway draining: reconnect"

SessionBusy = Callable[[str], bool]  # does the call core hold a call of this session id (ringing or not)
IdleCheck = Callable[[SessionBusy], bool]  # has this socket no call in progress (a drain may close it)


class SocketRegistry:
    """The open WebSockets, so that shutdown can close them (and their sessions) in order."""

    def __init__(self) -> None:
        self._sockets: set[web.WebSocketResponse] = set()
        self.awaiting_login = 0  # sockets open without a successful login yet
        self.awaiting_by_ip: dict[str, int] = {}  # the same, per client address
        self.refusals = RateLimit()  # WARNING lines about refused sockets: a flood must not flood the log
        self._idle: dict[web.WebSocketResponse, IdleCheck] = {}  # how to tell each socket has no call
        self.draining = False  # no new /ws socket (503): the instance is being restarted
        self.closed_draining = 0  # sockets closed with 1012

    def await_login(self, ip: str, delta: int) -> None:
        self.awaiting_login += delta
        count = self.awaiting_by_ip.get(ip, 0) + delta
        if count > 0:
            self.awaiting_by_ip[ip] = count
        else:
            self.awaiting_by_ip.pop(ip, None)

    def add(self, ws: web.WebSocketResponse) -> None:
        self._sockets.add(ws)

    def track(self, ws: web.WebSocketResponse, idle: IdleCheck) -> None:
        """Add a socket that a drain closes once `idle` says it has no call in progress."""
        self._sockets.add(ws)
        self._idle[ws] = idle

    def discard(self, ws: web.WebSocketResponse) -> None:
        self._sockets.discard(ws)
        self._idle.pop(ws, None)

    def __len__(self) -> int:
        return len(self._sockets)

    async def close_idle(self, busy: SessionBusy) -> tuple[int, int]:
        """Drain: close (1012) every tracked socket without a call in progress (its `IdleCheck` asked with
        `busy`; one not logged in has none); refuse new sockets from now on. How many were closed, and
        how many were kept (in a call: a room with company, a relayed JSON-RPC call, the call core's)."""
        self.draining = True
        open_ = [ws for ws in self._idle if not ws.closed]
        idle = [ws for ws in open_ if self._idle[ws](busy)]
        for ws in idle:
            self._idle.pop(ws, None)
        await asyncio.gather(
            *(ws.close(code=CLOSE_SERVICE_RESTART, message=DRAIN_CLOSE_MESSAGE) for ws in idle),
            return_exceptions=True,
        )
        if idle:
            logger.info("draining: %d WebSockets without a call closed (1012)", len(idle))
        self.closed_draining += len(idle)
        return len(idle), len(open_) - len(idle)

    async def close_all(self) -> None:
        for ws in list(self._sockets):
            await ws.close(code=CLOSE_GOING_AWAY, message=b"gateway shutting down")


CONTEXT_KEY: Final = web.AppKey("signaling_context", SignalingContext)
SOCKETS_KEY: Final = web.AppKey("signaling_sockets", SocketRegistry)
ORIGINS_KEY: Final = web.AppKey("allowed_origins", frozenset[str])  # besides the gateway's own


def draining_refusal() -> web.Response:
    """503 for a WebSocket upgrade while the gateway drains: HAProxy retries it on another instance
    (deploy/haproxy.cfg: retry-on 503, redispatch)."""
    return web.Response(status=503, text="gateway draining", headers={"Retry-After": "1"})


def origin_refusal(request: web.Request) -> web.Response | None:
    """403 for a WebSocket upgrade from another page's origin (a cross-site page must not drive a user's
    session), None when the origin is ours, allowed, or absent (a script)."""
    origin = request.headers.get("Origin")
    if origin_allowed(origin, request.scheme, request.host, request.app[ORIGINS_KEY]):
        return None
    logger.warning(
        "refusing a WebSocket to %s from %s: foreign Origin %r", request.path, request.remote, origin
    )
    return web.Response(status=403, text=f"Origin {origin!r} is not allowed (http.allowed_origins)")


async def receive_by(ws: web.WebSocketResponse, deadline: float | None) -> WSMessage:
    """``ws.receive()``, raising ``TimeoutError`` once the loop's clock reaches ``deadline`` (None: no
    limit). Not ``ws.receive(timeout=...)``: aiohttp restarts that timer after each control frame it
    handles, and a client answering the heartbeat's pings (every ``heartbeat`` seconds, less than the
    login timeout) would hold a socket awaiting login for ever."""
    if deadline is None:
        return await ws.receive()
    async with asyncio.timeout_at(deadline):
        return await ws.receive()


async def prepare_socket(
    request: web.Request, limits: SignalingLimits, what: str
) -> web.WebSocketResponse | web.Response:
    """The upgrade with the limits' heartbeat and size bound, or 400 for a handshake aiohttp chokes on."""
    ws = web.WebSocketResponse(
        heartbeat=limits.heartbeat, max_msg_size=limits.max_message_bytes * HARD_SIZE_FACTOR
    )
    try:
        await ws.prepare(request)
    except (UnicodeError, ValueError) as exc:
        logger.info("bad %s WebSocket handshake from %s: %s", what, request.remote, type(exc).__name__)
        return web.Response(status=400, text="bad WebSocket handshake")
    return ws


async def websocket_handler(request: web.Request) -> web.StreamResponse:
    context = request.app[CONTEXT_KEY]
    sockets = request.app[SOCKETS_KEY]
    limits = context.limits
    refusal = origin_refusal(request)
    if refusal is not None:
        return refusal
    ip = request.remote or ""
    # Sockets that never log in cost memory until their login deadline: bound them, per address first
    # (one host's flood), then in all; logged-in sessions never count here.
    if sockets.awaiting_by_ip.get(ip, 0) >= limits.max_awaiting_login_per_ip:
        if sockets.refusals.allow(logger, logging.WARNING):
            logger.warning(
                "refusing a WebSocket from %s: %d of its sockets await login",
                ip,
                limits.max_awaiting_login_per_ip,
            )
        return web.Response(status=429, text="too many connections awaiting login from your address",
                            headers={"Retry-After": "5"})  # fmt: skip
    if sockets.draining:
        return draining_refusal()
    if sockets.awaiting_login >= limits.max_awaiting_login:
        if sockets.refusals.allow(logger, logging.WARNING):
            logger.warning("refusing a WebSocket from %s: %d sockets await login", ip, sockets.awaiting_login)
        return web.Response(
            status=503, text="too many connections awaiting login", headers={"Retry-After": "5"}
        )
    ws = web.WebSocketResponse(
        heartbeat=limits.heartbeat, max_msg_size=limits.max_message_bytes * HARD_SIZE_FACTOR
    )
    try:
        await ws.prepare(request)
    except (UnicodeError, ValueError) as exc:  # aiohttp choking on a malformed handshake header (fuzzed)
        logger.info("bad WebSocket handshake from %s: %s", ip, type(exc).__name__)
        return web.Response(status=400, text="bad WebSocket handshake")
    lock = asyncio.Lock()
    stuck = False

    async def send(message: ServerMessage) -> None:
        # A browser that stops reading fills the socket buffers, and then every send would wait for it
        # (the call layer's too): after `send_timeout` the socket is dropped and later sends return at once.
        nonlocal stuck
        async with lock:
            if ws.closed or stuck:
                return
            try:
                async with asyncio.timeout(limits.send_timeout):
                    await ws.send_str(encode(message))
            except TimeoutError:
                stuck = True
                seconds = limits.send_timeout
                logger.info(
                    "connection %s: browser not reading for %g s: dropping it", connection.id, seconds
                )
                if request.transport is not None:
                    request.transport.abort()  # a close frame could not be written either

    connection = Connection(context, send, ip)
    sockets.track(ws, lambda busy: connection.session is None or not busy(connection.session.id))
    sockets.await_login(ip, 1)
    awaiting = True
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limits.login_timeout
    logger.info("connection %s opened from %s", connection.id, request.remote)
    try:
        while connection.close_code is None:
            waiting = connection.state is ConnectionState.AWAITING_LOGIN
            if waiting and loop.time() >= deadline:
                await connection.login_timed_out()
                break
            try:
                message = await receive_by(ws, deadline if waiting else None)
            except TimeoutError:
                await connection.login_timed_out()
                break
            if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                await connection.receive(message.data)
                if awaiting and connection.state is not ConnectionState.AWAITING_LOGIN:
                    awaiting = False
                    sockets.await_login(ip, -1)
            elif message.type is WSMsgType.ERROR:
                logger.info("connection %s: socket error %s", connection.id, ws.exception())
                break
            else:  # CLOSE, CLOSING, CLOSED: the browser went away, or the heartbeat found it dead
                break
    finally:
        if awaiting:
            sockets.await_login(ip, -1)
        await connection.close()
        sockets.discard(ws)
        if not ws.closed:
            await ws.close(code=connection.close_code or 1000)
        logger.info("connection %s closed (code %s)", connection.id, ws.close_code)
    return ws
