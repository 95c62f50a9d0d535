"""Rooms over aiohttp: `ws /webrtc/signaling/{room_id}/{peer_id}`, `GET /webrtc/rooms`,
`GET /webrtc/rooms/{room_id}/peers` (the protocol is gateway/signaling/rooms.py's, sans-I/O).

Credentials as the other API dialects (gateway/signaling/api_auth.py): at the upgrade in
`Authorization` / `X-API-Key`, or `?token=` / `?api_key=` in the URL (a browser's WebSocket sends no
headers); bad ones get HTTP 401 with the API's error body. Without any, the first message must be
`{"type": "login", ...}` within `login_timeout` (else close 4008), unless `rooms.allow_anonymous`.
After the join the peer gets `joined {room_id, peer_id, user, ice_servers}` (an addition of the gateway:
the document's clients ignore it) and then the document's `existing_peers`.

A refused join (`room_full`, a peer id in use, `too_many_rooms`) is an `error` message, then close 4009;
a peer sending faster than `rooms.rate` / `rooms.burst` gets `rate_limited` errors, and after
`max_rate_limited` of them in a row the socket is closed (1008).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from aiohttp import WSMsgType, web

from gateway.config.rooms import RoomsSection
from gateway.identity import WebUser
from gateway.signaling.api_auth import ApiCredentials, ApiPrincipal
from gateway.signaling.errors import (
    Conflict,
    Forbidden,
    RateLimited,
    ServiceError,
    SignalingError,
    Unauthorized,
)
from gateway.signaling.events import IceServerInfo
from gateway.signaling.http_api import error_response
from gateway.signaling.limits import SignalingLimits, TokenBucket
from gateway.signaling.room_media import RoomMedia
from gateway.signaling.rooms import (
    GATEWAY_PEER,
    Delivery,
    Dial,
    Hangup,
    Login,
    Ping,
    Relay,
    RoomPeer,
    RoomRegistry,
    check_id,
    error_message,
    parse_room_message,
)
from gateway.signaling.ws import (
    SOCKETS_KEY,
    draining_refusal,
    origin_refusal,
    prepare_socket,
    receive_by,
)

logger = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED: Final = 4001
CLOSE_LOGIN_TIMEOUT: Final = 4008
CLOSE_JOIN_REFUSED: Final = 4009
CLOSE_POLICY: Final = 1008  # RFC 6455 §7.4.1: policy violation (the rate limit, again and again)
MAX_FAILED_LOGINS: Final = 3
ANONYMOUS: Final = "anonymous"

Sender = Callable[[Mapping[str, object]], Awaitable[None]]


@dataclass(slots=True)
class RoomsContext:
    registry: RoomRegistry
    credentials: ApiCredentials
    settings: RoomsSection
    limits: SignalingLimits
    ice_servers: tuple[IceServerInfo, ...]
    monotonic: Callable[[], float]
    senders: dict[tuple[str, str], Sender] = field(default_factory=dict)  # (room, peer) -> its socket
    media: RoomMedia | None = None  # the gateway's own peer: SIP parties and the mix (room_media.py)
    users: dict[tuple[str, str], WebUser] = field(default_factory=dict)  # (room, peer) -> who, for dial

    async def deliver(self, room_id: str, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            send = self.senders.get((room_id, delivery.peer_id))
            if send is not None:  # a peer whose socket is closing: dropped, it leaves next
                await send(delivery.message)

    # -- RoomHub (gateway/signaling/room_media.py): what the gateway peer does in a room ----------------
    async def send(self, room_id: str, peer_id: str, message: Mapping[str, object]) -> None:
        await self.deliver(room_id, [Delivery(peer_id, message)])

    async def broadcast(self, room_id: str, message: Mapping[str, object]) -> None:
        await self.deliver(room_id, [Delivery(peer, message) for peer in self.browsers(room_id)])

    async def join_gateway(self, room_id: str) -> None:
        deliveries = self.registry.join(room_id, GATEWAY_PEER, GATEWAY_PEER)
        await self.deliver(room_id, [d for d in deliveries if d.peer_id != GATEWAY_PEER])

    async def leave_gateway(self, room_id: str) -> None:
        await self.deliver(room_id, self.registry.leave(room_id, GATEWAY_PEER))

    def browsers(self, room_id: str) -> list[str]:
        if room_id not in self.registry.rooms():
            return []
        return [peer for peer in self.registry.peers(room_id) if peer != GATEWAY_PEER]


ROOMS_KEY: Final = web.AppKey("signaling_rooms", RoomsContext)


def _upgrade_credentials(request: web.Request) -> tuple[str | None, str | None]:
    authorization = request.headers.get("Authorization")
    api_key = request.headers.get("X-API-Key") or request.query.get("api_key")
    token = request.query.get("token")
    if authorization is None and token is not None:
        authorization = f"Bearer {token}"
    return authorization, api_key


async def _login(context: RoomsContext, login: Login, ip: str) -> ApiPrincipal:
    if login.user is not None and login.secret is not None:
        pair = base64.b64encode(f"{login.user}:{login.secret}".encode()).decode("ascii")
        return await context.credentials.authenticate(f"Basic {pair}", None, ip)
    if login.api_key is not None:
        return await context.credentials.authenticate(None, login.api_key, ip)
    return await context.credentials.authenticate(f"Bearer {login.token}", None, ip)


async def rooms_socket_handler(request: web.Request) -> web.StreamResponse:
    context = request.app[ROOMS_KEY]
    if not context.settings.enabled:
        raise web.HTTPNotFound()
    refusal = origin_refusal(request)
    if refusal is not None:
        return refusal
    ip = request.remote or ""
    try:
        peer = RoomPeer(context.registry, request.match_info["room_id"], request.match_info["peer_id"])
        authorization, api_key = _upgrade_credentials(request)
        principal = None
        if authorization is not None or api_key is not None:
            principal = await context.credentials.authenticate(authorization, api_key, ip)
    except SignalingError as exc:
        return error_response(exc)
    limits = context.limits
    sockets = request.app[SOCKETS_KEY]
    if sockets.draining:
        return draining_refusal()
    ws = await prepare_socket(request, limits, "room")
    if not isinstance(ws, web.WebSocketResponse):
        return ws
    sockets.track(ws, lambda busy: peer.alone)  # a drain closes it when nobody else is in the room
    lock = asyncio.Lock()

    async def send(message: Mapping[str, object]) -> None:
        async with lock:
            if ws.closed:
                return
            try:
                async with asyncio.timeout(limits.send_timeout):
                    await ws.send_str(json.dumps(message, separators=(",", ":")))
            except TimeoutError:
                logger.info("room %s peer %s not reading: dropping it", peer.room_id, peer.peer_id)
                if request.transport is not None:
                    request.transport.abort()
            except ConnectionError:
                pass

    close_code = 1000
    try:
        if principal is None and context.settings.allow_anonymous:
            close_code = await _join(context, peer, ANONYMOUS, send) or close_code
        elif principal is not None:
            close_code = await _join(context, peer, principal.user.id, send, principal.user) or close_code
        if close_code == 1000:
            close_code = await _serve(context, peer, ws, send, ip)
    finally:
        joined = peer.user_id is not None
        await context.deliver(peer.room_id, peer.leave())
        if context.senders.get((peer.room_id, peer.peer_id)) is send:
            del context.senders[(peer.room_id, peer.peer_id)]
            context.users.pop((peer.room_id, peer.peer_id), None)
            if joined and context.media is not None:
                await context.media.peer_left(peer.room_id, peer.peer_id)
        sockets.discard(ws)
        if not ws.closed:
            await ws.close(code=close_code)
    return ws


async def _join(
    context: RoomsContext, peer: RoomPeer, user_id: str, send: Sender, user: WebUser | None = None
) -> int | None:
    """Join the room: `joined`, `existing_peers` to the peer, `peer_joined` to the others; None when done,
    else the close code after the `error` sent."""
    try:
        deliveries = peer.join(user_id)
    except SignalingError as exc:
        await send(error_message(exc))
        return CLOSE_JOIN_REFUSED
    context.senders[(peer.room_id, peer.peer_id)] = send
    if user is not None:
        context.users[(peer.room_id, peer.peer_id)] = user
    servers = [
        s.to_json() for s in context.ice_servers if user_id != ANONYMOUS or s.credential is None
    ]  # TURN credentials only to peers with credentials
    await send(
        {"type": "joined", "room_id": peer.room_id, "peer_id": peer.peer_id, "user": user_id,
         "ice_servers": servers}
    )  # fmt: skip
    await context.deliver(peer.room_id, deliveries)
    return None


async def _serve(
    context: RoomsContext, peer: RoomPeer, ws: web.WebSocketResponse, send: Sender, ip: str
) -> int:
    """Read the peer's messages until it goes; the close code."""
    limits, settings = context.limits, context.settings
    bucket = TokenBucket(settings.rate, settings.burst, context.monotonic)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limits.login_timeout
    refused = failed_logins = 0
    while True:
        waiting = peer.user_id is None
        if waiting and loop.time() >= deadline:
            await send(error_message(Unauthorized("no login in time", code="login_timeout")))
            return CLOSE_LOGIN_TIMEOUT
        try:
            frame = await receive_by(ws, deadline if waiting else None)
        except TimeoutError:
            continue
        if frame.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            return 1000  # CLOSE, CLOSING, CLOSED, ERROR: the peer went away, or the heartbeat found it dead
        if not bucket.take():
            refused += 1
            if refused >= limits.max_rate_limited:
                return CLOSE_POLICY
            await send(error_message(RateLimited(f"more than {settings.rate:g} messages per second")))
            continue
        refused = 0
        try:
            request = parse_room_message(frame.data, limits.max_message_bytes)
            if isinstance(request, Relay):
                media = context.media
                if request.target == GATEWAY_PEER and media is not None:
                    if peer.user_id is None:
                        raise Conflict("not in the room", field="type")
                    if media.present(peer.room_id):
                        await media.from_peer(peer.room_id, peer.peer_id, request)
                    # else: late candidates or an answer for the gateway peer that has just left: dropped
                else:
                    await context.deliver(peer.room_id, peer.relay(request))
            elif isinstance(request, Ping):
                await send({"type": "pong"})
            elif isinstance(request, Login):
                if peer.user_id is not None:
                    raise Conflict("logged in already", field="type")
                try:
                    principal = await _login(context, request, ip)
                except Unauthorized as exc:
                    failed_logins += 1
                    await send(error_message(exc))
                    if failed_logins >= MAX_FAILED_LOGINS:
                        return CLOSE_UNAUTHORIZED
                    continue
                code = await _join(context, peer, principal.user.id, send, principal.user)
                if code is not None:
                    return code
            elif isinstance(request, (Dial, Hangup)):
                await _sip_party(context, peer, request, send)
        except SignalingError as exc:
            await send(error_message(exc))


async def _sip_party(context: RoomsContext, peer: RoomPeer, request: Dial | Hangup, send: Sender) -> None:
    """`dial {to}`: call a SIP party into the room under the peer's user's policy (`dialing {call_id,
    to}` to the peer, then `sip_party` events to the room); `hangup {call_id}`: end one."""
    media = context.media
    if media is None or not context.settings.enabled:
        raise ServiceError(
            "SIP parties in rooms are not available on this gateway", code="not_implemented",
            field="type", http_status=501,
        )  # fmt: skip
    if peer.user_id is None:
        raise Conflict("not in the room", field="type")
    if isinstance(request, Hangup):
        await media.hangup(peer.room_id, request.call_id)
        return
    user = context.users.get((peer.room_id, peer.peer_id))
    if user is None:  # an anonymous peer has no outbound policy
        raise Forbidden("an anonymous peer may not call out", field="to")
    call_id = await media.dial(peer.room_id, peer.peer_id, user, request.to)
    await send({"type": "dialing", "call_id": call_id, "to": request.to})


async def _rest_principal(request: web.Request, context: RoomsContext) -> None:
    if not context.settings.enabled:
        raise web.HTTPNotFound()
    authorization, api_key = _upgrade_credentials(request)
    if authorization is None and api_key is None and context.settings.allow_anonymous:
        return
    await context.credentials.authenticate(authorization, api_key, request.remote or "")


async def rooms_list_handler(request: web.Request) -> web.Response:
    """`GET /webrtc/rooms`: `{"rooms": [{"room_id", "peers"}]}`, oldest room first."""
    context = request.app[ROOMS_KEY]
    try:
        await _rest_principal(request, context)
    except SignalingError as exc:
        return error_response(exc)
    registry = context.registry
    rooms = [{"room_id": room, "peers": len(registry.peers(room))} for room in registry.rooms()]
    return web.json_response({"rooms": rooms})


async def room_peers_handler(request: web.Request) -> web.Response:
    """`GET /webrtc/rooms/{room_id}/peers`: `{"room_id", "peers": [peer ids, in joining order]}`."""
    context = request.app[ROOMS_KEY]
    room_id = request.match_info["room_id"]
    try:
        await _rest_principal(request, context)
        check_id(room_id, "room_id")
        peers = context.registry.peers(room_id)
    except SignalingError as exc:
        return error_response(exc)
    return web.json_response({"room_id": room_id, "peers": peers})
