"""`GET /jsonrpc`: the WebSocket of the JSON-RPC 2.0 dialect, a thin aiohttp layer around `RpcPeer`.

Credentials at the upgrade (any one): `Authorization: Bearer <API key or session token>` / `Basic`,
`X-API-Key`, or the query `?api_key=` / `?token=` (a browser's WebSocket cannot send headers; the URL
may end up in logs, so prefer `announce` with credentials there). Bad credentials at the upgrade: HTTP
401 with the API's error body. None: the socket opens, and `announce` must authenticate within
`SignalingLimits.login_timeout` (then close 4008). The Origin check, heartbeat, size limit, shutdown and
drain (1012 once the peer has no call, relayed or not; 503 to new upgrades) are those of `/ws`
(gateway/signaling/ws.py); frames are handled one at a time, in order.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from aiohttp import WSMsgType, web

from gateway.signaling.errors import SignalingError
from gateway.signaling.http_api import error_response
from gateway.signaling.jsonrpc_peer import RpcContext, RpcPeer
from gateway.signaling.ws import (
    SOCKETS_KEY,
    draining_refusal,
    origin_refusal,
    prepare_socket,
    receive_by,
)

logger = logging.getLogger(__name__)

RPC_KEY: Final = web.AppKey("signaling_jsonrpc", RpcContext)
CLOSE_LOGIN_TIMEOUT: Final = 4008


async def jsonrpc_handler(request: web.Request) -> web.StreamResponse:
    refusal = origin_refusal(request)
    if refusal is not None:
        return refusal
    context = request.app[RPC_KEY]
    sockets = request.app[SOCKETS_KEY]
    limits = context.limits
    ip = request.remote or ""
    principal = None
    authorization = request.headers.get("Authorization")
    api_key = request.headers.get("X-API-Key") or request.query.get("api_key")
    token = request.query.get("token")
    if authorization is None and token is not None:
        authorization = f"Bearer {token}"
    if authorization is not None or api_key is not None:
        try:
            principal = await context.credentials.authenticate(authorization, api_key, ip)
        except SignalingError as exc:
            return error_response(exc)
    elif sockets.awaiting_login >= limits.max_awaiting_login or (
        sockets.awaiting_by_ip.get(ip, 0) >= limits.max_awaiting_login_per_ip
    ):
        return web.Response(
            status=429, text="too many connections awaiting login", headers={"Retry-After": "5"}
        )
    if sockets.draining:
        return draining_refusal()
    ws = await prepare_socket(request, limits, "JSON-RPC")
    if not isinstance(ws, web.WebSocketResponse):
        return ws
    lock = asyncio.Lock()

    async def send(text: str) -> None:
        async with lock:
            if ws.closed:
                return
            try:
                async with asyncio.timeout(limits.send_timeout):
                    await ws.send_str(text)
            except TimeoutError:
                logger.info(
                    "JSON-RPC peer %s not reading for %g s: dropping it", peer.id, limits.send_timeout
                )
                if request.transport is not None:
                    request.transport.abort()

    peer = RpcPeer(context, send, principal, ip)
    sockets.track(ws, peer.idle)
    awaiting = principal is None
    if awaiting:
        sockets.await_login(ip, 1)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limits.login_timeout
    close_code = 1000
    logger.info("JSON-RPC peer %s opened from %s", peer.id, ip)
    try:
        while True:
            waiting = not peer.authenticated
            if waiting and loop.time() >= deadline:
                close_code = CLOSE_LOGIN_TIMEOUT
                break
            try:
                message = await receive_by(ws, deadline if waiting else None)
            except TimeoutError:
                close_code = CLOSE_LOGIN_TIMEOUT
                break
            if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                await peer.receive(message.data)
                if peer.close_code is not None:
                    close_code = peer.close_code
                    break
                if awaiting and peer.authenticated:
                    awaiting = False
                    sockets.await_login(ip, -1)
            else:  # CLOSE, CLOSING, CLOSED, ERROR: the peer went away, or the heartbeat found it dead
                break
    finally:
        if awaiting:
            sockets.await_login(ip, -1)
        await peer.close()
        sockets.discard(ws)
        if not ws.closed:
            await ws.close(code=close_code)
        logger.info("JSON-RPC peer %s closed (code %s)", peer.id, ws.close_code)
    return ws
