"""Rooms over aiohttp: `ws /webrtc/signaling/{room_id}/{peer_id}`, `GET /webrtc/rooms`,
`GET /webrtc/rooms/{room_id}/peers` (the protocol is gateway/signaling/rooms/core.py's, sans-I/O).

Credentials as the other API dialects (gateway/signaling/api_auth.py): at the upgrade in
`Authorization` / `X-API-Key`, or `?token=` / `?api_key=` in the URL (a browser's WebSocket sends no
headers); bad ones get HTTP 401 with the API's error body. Without any, the first message must be
`{"type": "login", ...}` within `login_timeout` (else `error login_timeout`, close 4008), unless
`rooms.allow_anonymous`; such a socket counts as awaiting login (the caps), as on `/ws`.
After the join the peer gets `joined {room_id, peer_id, user, owner, ice_servers, watchers}` (an addition
of the gateway: the document's clients ignore it) and then the document's `existing_peers`.

A refused join (`forbidden`: `rooms.rules` do not let the user open or join the room, rooms/access.py;
`room_full`, a peer id in use, `too_many_rooms`) is an `error` message, then close 4009;
a peer sending faster than `rooms.rate` / `rooms.burst` gets `rate_limited` errors, and after
`max_rate_limited` of them in a row the socket is closed (1008). Those, the login deadline, failed logins
(`max_failed_logins`: close 4001), the caps, heartbeat, size limit and drain are the shared session
loop's (gateway/signaling/session_loop.py); this module supplies the rooms' messages (`RoomDialect`).
In a cluster a room lives on one instance (gateway/cluster/room_owners.py, `RoomsContext.place`): a
socket for a room of another instance is relayed there (gateway/signaling/ws/relay.py) before any join.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

from gateway.config.rooms import RoomsSection
from gateway.identity import WebUser
from gateway.signaling.api_auth import ApiCredentials, ApiPrincipal
from gateway.signaling.errors import (
    Conflict,
    Forbidden,
    ServiceError,
    SignalingError,
    Unauthorized,
)
from gateway.signaling.http_api.handlers import error_response
from gateway.signaling.limits import SignalingLimits
from gateway.signaling.rooms.access import ANONYMOUS, Action
from gateway.signaling.rooms.core import (
    GATEWAY_PEER,
    Delivery,
    Dial,
    Hangup,
    Login,
    Ping,
    Relay,
    RoomPeer,
    RoomRegistry,
    RoomRequest,
    check_id,
    error_message,
    parse_room_message,
)
from gateway.signaling.rooms.media import RoomMedia
from gateway.signaling.session_loop import (
    ORIGINS_KEY,
    SOCKETS_KEY,
    Busy,
    SessionRules,
    SessionSocket,
    origin_refusal,
    serve,
)
from gateway.signaling.turn_rest import IceServers
from gateway.signaling.ws.relay import WsRelay

logger = logging.getLogger(__name__)

CLOSE_JOIN_REFUSED: Final = 4009
CLOSE_REPLACED: Final = 4010  # a new socket of the same peer (same id, same user) took this one's place
AWAY_WAITING: Final = 256  # messages kept for a peer whose socket was lost, until it is back
SERVICE_RESTART: Final = 1012  # RFC 6455 §7.4.1: on a relay, the page's socket went but it may come back
TRY_AGAIN_LATER: Final = 1013  # RFC 6455 §7.4.1: the instance the room lives on refuses sockets now

Sender = Callable[[Mapping[str, object]], Awaitable[None]]


@dataclass(slots=True)
class Away:
    """A peer whose socket was lost, keeping its place for `rooms.rejoin_grace` (RoomsContext.step_away)."""

    user_id: str
    timer: asyncio.TimerHandle
    waiting: list[Mapping[str, object]] = field(default_factory=list)  # what the room sent it meanwhile


@dataclass(slots=True)
class RoomsContext:
    registry: RoomRegistry
    credentials: ApiCredentials
    settings: RoomsSection
    limits: SignalingLimits
    ice_servers: IceServers
    monotonic: Callable[[], float]
    senders: dict[tuple[str, str], Sender] = field(default_factory=dict)  # (room, peer) -> its socket
    media: RoomMedia | None = None  # the gateway's own peer: SIP parties and the mix (rooms/media.py)
    # a cluster: the instance a room lives on, when another (its base URL; gateway/cluster/room_owners.py)
    place: Callable[[str, str | None], Awaitable[str | None]] | None = None
    # ...and the rooms of the other instances (room -> its `peers` and `owner`): GET /webrtc/rooms lists them
    elsewhere: Callable[[], Awaitable[dict[str, dict[str, Any]]]] | None = None

    async def remote_rooms(self) -> dict[str, dict[str, Any]]:
        """The other instances' rooms (none without a cluster, or with Redis away: this one's only)."""
        if self.elsewhere is None:
            return {}
        try:
            return await self.elsewhere()
        except SignalingError:  # (ClusterUnavailable)
            logger.warning("rooms: the other instances' rooms unknown (Redis unavailable)")
            return {}

    users: dict[tuple[str, str], WebUser] = field(default_factory=dict)  # (room, peer) -> who, for dial
    away: dict[tuple[str, str], Away] = field(default_factory=dict)  # (room, peer) -> its kept place
    # (room, peer) -> the joined socket's peer and how to close that socket (a newer one takes its place)
    holders: dict[tuple[str, str], tuple[RoomPeer, Callable[[], None]]] = field(default_factory=dict)
    background: set[asyncio.Task[None]] = field(default_factory=set)

    async def deliver(self, room_id: str, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            key = (room_id, delivery.peer_id)
            send = self.senders.get(key)
            if send is not None:  # a peer whose socket is closing: dropped, it leaves next
                await send(delivery.message)
            elif (away := self.away.get(key)) is not None and len(away.waiting) < AWAY_WAITING:
                away.waiting.append(delivery.message)  # (beyond: it will find its connections renewed)

    def step_away(self, peer: RoomPeer, send: Sender) -> bool:
        """Keep a joined peer whose socket was lost in its room for `rooms.rejoin_grace` (the others are
        told nothing, its connections and its leg to the gateway's mix go on); False when it leaves now
        (no grace, nobody else in the room, or another socket took its place already)."""
        key = (peer.room_id, peer.peer_id)
        grace, user_id = self.settings.rejoin_grace, peer.user_id
        if grace <= 0 or user_id in (None, ANONYMOUS) or peer.alone or self.senders.get(key) is not send:
            return False
        del self.senders[key]
        self.holders.pop(key, None)
        timer = asyncio.get_running_loop().call_later(grace, self._gone, key)
        self.away[key] = Away(user_id, timer)
        peer.step_away()
        logger.info("room %s: %s lost its socket; its place is kept %g s", peer.room_id, peer.peer_id, grace)
        return True

    def take_back(self, peer: RoomPeer, user_id: str) -> list[Mapping[str, object]] | None:
        """A new socket of a peer kept away, or of one whose old socket still holds its place (its loss not
        noticed yet: closed now), under the same user (never anonymous): its place, and what was sent to
        it while it was away; None when there is none to take (a join as usual)."""
        key = (peer.room_id, peer.peer_id)
        away = self.away.get(key)
        if away is None:  # a socket still holding the place, its loss not noticed yet: replaced
            holder = self.holders.get(key)
            if holder is None or user_id == ANONYMOUS or self.registry.user_of(*key) != user_id:
                return None
            peer.resume(user_id)
            old, close = holder
            old.step_away()
            close()
            logger.info("room %s: %s back on a new socket; the old one is closed", *key)
            return []
        if away.user_id != user_id:
            return None
        peer.resume(user_id)
        away.timer.cancel()
        del self.away[key]
        return away.waiting

    def _gone(self, key: tuple[str, str]) -> None:
        if self.away.pop(key, None) is not None:
            task = asyncio.create_task(self.leave(*key))
            self.background.add(task)
            task.add_done_callback(self.background.discard)

    async def leave(self, room_id: str, peer_id: str) -> None:
        """A joined peer is gone for good: `peer_left` to the others, its leg to the gateway's mix closed."""
        await self.deliver(room_id, self.registry.leave(room_id, peer_id))
        self.senders.pop((room_id, peer_id), None)
        self.users.pop((room_id, peer_id), None)
        self.holders.pop((room_id, peer_id), None)
        if self.media is not None:
            await self.media.peer_left(room_id, peer_id)

    # -- RoomHub (gateway/signaling/rooms/media.py): what the gateway peer does in a room ----------------
    async def send(self, room_id: str, peer_id: str, message: Mapping[str, object]) -> None:
        await self.deliver(room_id, [Delivery(peer_id, message)])

    async def broadcast(self, room_id: str, message: Mapping[str, object]) -> None:
        await self.deliver(room_id, [Delivery(peer, message) for peer in self.browsers(room_id)])

    async def join_gateway(self, room_id: str, owner: str | None = None) -> None:
        deliveries = self.registry.join(room_id, GATEWAY_PEER, GATEWAY_PEER, owner=owner)
        await self.deliver(room_id, [d for d in deliveries if d.peer_id != GATEWAY_PEER])

    def owner(self, room_id: str) -> str | None:
        return self.registry.owner(room_id)

    async def leave_gateway(self, room_id: str) -> None:
        await self.deliver(room_id, self.registry.leave(room_id, GATEWAY_PEER))

    def check_call(self, user_id: str, destination: str) -> None:
        access = self.registry.access
        room_id = access.room_called(destination) if access is not None and self.settings.enabled else None
        if room_id is not None:
            self.registry.check(Action.JOIN, room_id, user_id)

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


class RoomDialect:
    """The loop's `Dialect` for one rooms socket: the peer's messages, its join and its leave."""

    def __init__(
        self,
        context: RoomsContext,
        peer: RoomPeer,
        socket: SessionSocket,
        principal: ApiPrincipal | None,
        request: web.Request | None = None,
    ) -> None:
        self._context = context
        self._peer = peer
        self._socket = socket
        self._principal = principal
        self._request = request  # (its path, credentials and query go on with a relay)
        self._relay: WsRelay | None = None  # a cluster: carried on to the instance the room lives on

        async def send(message: Mapping[str, object]) -> None:
            with contextlib.suppress(ConnectionError):
                await socket.send_text(json.dumps(message, separators=(",", ":")))

        self.send: Sender = send

    @property
    def logged_in(self) -> bool:
        return self._relay is not None or self._peer.user_id is not None

    def idle(self, busy: Busy) -> bool:
        return (
            self._relay is not None or self._peer.alone
        )  # a drain closes it when nobody else is in the room

    async def on_open(self) -> None:
        context, peer, principal = self._context, self._peer, self._principal
        anonymous = principal is None and context.settings.allow_anonymous
        if (principal is None and not anonymous) or await self._relayed(None):
            return  # (a login by message comes first: relayed once it has been checked, `_handle`)
        code = None
        if anonymous:
            code = await _join(context, peer, ANONYMOUS, self.send, close=self._replaced)
        elif principal is not None:
            code = await _join(context, peer, principal.user.id, self.send, principal.user, self._replaced)
        if code is not None:
            self._socket.close_with(code)

    def _replaced(self) -> None:
        """A new socket of this peer took its place in the room: this one closes (4010), leaving nothing."""
        self._socket.close_with(CLOSE_REPLACED)
        task = asyncio.create_task(self._socket.close(CLOSE_REPLACED, b"replaced by a new connection"))
        self._context.background.add(task)
        task.add_done_callback(self._context.background.discard)

    async def _relayed(self, first: str | bytes | None) -> bool:
        """A cluster: carry this socket on to the instance the room lives on when another, with ``first``
        (a login this instance checked), once the peer may join (see gateway/cluster/room_owners.py). True
        when relayed or closed: 1013 when that instance refuses it now, or when a socket relayed here finds
        the room is not this instance's (it tries again, and reaches the right one)."""
        place, request, socket = self._context.place, self._request, self._socket
        if place is None or request is None:
            return False
        target = await place(self._peer.room_id, None)
        if socket.relayed:  # never relayed again: served here only if the room is here
            if target is not None:
                socket.close_with(TRY_AGAIN_LATER)
            return target is not None
        for attempt in range(2):  # (an instance that does not answer: its lease waited on, then again)
            if target is None:
                return False
            relay = WsRelay(
                socket, target, path=request.path, query=dict(request.query),
                headers={k: v for k in ("Authorization", "X-API-Key") if (v := request.headers.get(k))},
            )  # fmt: skip
            if await relay.open(first):
                self._relay = relay
                return True
            if relay.refused or attempt:  # it lives but refuses now, or tried twice: the peer tries again
                break
            target = await place(self._peer.room_id, target)
        socket.close_with(TRY_AGAIN_LATER)
        return True

    async def on_refused(self, error: SignalingError, message: str | bytes | None = None) -> None:
        await self.send(error_message(error))

    async def on_message(self, data: str | bytes) -> None:
        if self._relay is not None:
            await self._relay.send(data)
            return
        try:
            await self._handle(parse_room_message(data, self._context.limits.max_message_bytes), data)
        except SignalingError as exc:
            await self.send(error_message(exc))

    async def _handle(self, request: RoomRequest, data: str | bytes) -> None:
        context, peer, send = self._context, self._peer, self.send
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
                principal = await _login(context, request, self._socket.remote)
            except Unauthorized as exc:
                self._socket.login_failed()
                await send(error_message(exc))
                return
            if await self._relayed(data):  # the room lives on another instance: the login goes on there
                return
            code = await _join(context, peer, principal.user.id, send, principal.user, self._replaced)
            if code is not None:
                self._socket.close_with(code)
        elif isinstance(request, (Dial, Hangup)):
            await _sip_party(context, peer, request, send)

    async def on_close(self) -> None:
        if self._relay is not None:  # (a socket lost, or closed by a drain here: its peer may come back)
            back = self._socket.lost or self._socket.close_code == SERVICE_RESTART
            await self._relay.close(SERVICE_RESTART if back else 1000)
            return
        context, peer = self._context, self._peer
        if self._socket.lost and context.step_away(peer, self.send):
            return
        joined = peer.user_id is not None
        await context.deliver(peer.room_id, peer.leave())
        if context.senders.get((peer.room_id, peer.peer_id)) is self.send:
            del context.senders[(peer.room_id, peer.peer_id)]
            context.users.pop((peer.room_id, peer.peer_id), None)
            context.holders.pop((peer.room_id, peer.peer_id), None)
            if joined and context.media is not None:
                await context.media.peer_left(peer.room_id, peer.peer_id)


async def rooms_socket_handler(request: web.Request) -> web.StreamResponse:
    context = request.app[ROOMS_KEY]
    if not context.settings.enabled:
        raise web.HTTPNotFound()
    refusal = origin_refusal(request, request.app[ORIGINS_KEY])
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
    settings = context.settings
    return await serve(
        request,
        rules=SessionRules("room", rate=settings.rate, burst=settings.burst),
        sockets=request.app[SOCKETS_KEY],
        limits=context.limits,
        open_dialect=lambda socket: RoomDialect(context, peer, socket, principal, request),
        monotonic=context.monotonic,
        counted=principal is None and not settings.allow_anonymous,
    )


async def _join(
    context: RoomsContext,
    peer: RoomPeer,
    user_id: str,
    send: Sender,
    user: WebUser | None = None,
    close: Callable[[], None] = lambda: None,
) -> int | None:
    """Join the room: `joined`, `existing_peers` to the peer, `peer_joined` to the others; None when done,
    else the close code after the `error` sent."""
    try:
        waiting = context.take_back(peer, user_id)
        deliveries = peer.join(user_id) if waiting is None else []
    except SignalingError as exc:
        if isinstance(exc, Forbidden):
            logger.info("room %s: %s (user %s) refused: %s", peer.room_id[:80], peer.peer_id, user_id, exc)
        await send(error_message(exc))
        return CLOSE_JOIN_REFUSED
    context.senders[(peer.room_id, peer.peer_id)] = send
    context.holders[(peer.room_id, peer.peer_id)] = (peer, close)
    if user is not None:
        context.users[(peer.room_id, peer.peer_id)] = user
    ice = context.ice_servers  # TURN credentials only to peers with credentials
    servers = [s.to_json() for s in (ice.public() if user_id == ANONYMOUS else ice.for_user(user_id))]
    await send(
        {"type": "joined", "room_id": peer.room_id, "peer_id": peer.peer_id, "user": user_id,
         "owner": context.registry.owner(peer.room_id), "ice_servers": servers,
         "watchers": context.media.watchers(peer.room_id) if context.media is not None else [],
         "resumed": waiting is not None}
    )  # fmt: skip
    await context.deliver(peer.room_id, deliveries)
    for message in waiting or ():  # (a peer back: what the room said while it was away, in order)
        await send(message)
    return None


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
    context.check_call(user.id, request.to)  # another room's number: its SIP side would join that room
    call_id = await media.dial(peer.room_id, peer.peer_id, user, request.to)
    await send({"type": "dialing", "call_id": call_id, "to": request.to})


async def _rest_principal(request: web.Request, context: RoomsContext) -> str:
    """The user id of the request (`anonymous` without credentials when `rooms.allow_anonymous`)."""
    if not context.settings.enabled:
        raise web.HTTPNotFound()
    authorization, api_key = _upgrade_credentials(request)
    if authorization is None and api_key is None and context.settings.allow_anonymous:
        return ANONYMOUS
    principal = await context.credentials.authenticate(authorization, api_key, request.remote or "")
    return principal.user.id


async def rooms_list_handler(request: web.Request) -> web.Response:
    """`GET /webrtc/rooms`: `{"rooms": [{"room_id", "peers", "owner"}]}`: the rooms the user may watch (its
    own, and those `rooms.rules` let it join or watch; rooms/access.py), this instance's oldest first, then
    (a cluster) the other instances' as they published them."""
    context = request.app[ROOMS_KEY]
    try:
        user_id = await _rest_principal(request, context)
    except SignalingError as exc:
        return error_response(exc)
    registry = context.registry
    rooms = [
        {"room_id": room, "peers": len(registry.peers(room)), "owner": registry.owner(room)}
        for room in registry.rooms()
        if registry.may(Action.WATCH, room, user_id)
    ]
    here = set(registry.rooms())
    rooms += [  # a cluster: the rooms that live on the other instances
        {"room_id": room, "peers": len(held["peers"]), "owner": held.get("owner")}
        for room, held in (await context.remote_rooms()).items()
        if room not in here and registry.may(Action.WATCH, room, user_id, owner=held.get("owner"))
    ]
    return web.json_response({"rooms": rooms})


async def room_peers_handler(request: web.Request) -> web.Response:
    """`GET /webrtc/rooms/{room_id}/peers`: `{"room_id", "peers": [peer ids, in joining order]}`; 403 for
    a room the user may not watch, open or not (no oracle), 404 one it may that is not open."""
    context = request.app[ROOMS_KEY]
    room_id = request.match_info["room_id"]
    try:
        user_id = await _rest_principal(request, context)
        check_id(room_id, "room_id")
        held = None if room_id in context.registry.rooms() else (await context.remote_rooms()).get(room_id)
        if held is not None:  # a room of another instance (a cluster)
            access = context.registry.access
            if access is not None:  # (its refusal, the same as for any room)
                access.check(Action.WATCH, room_id, user_id, held.get("owner"))
            return web.json_response({"room_id": room_id, "peers": list(held["peers"])})
        context.registry.check(Action.WATCH, room_id, user_id)
        peers = context.registry.peers(room_id)
    except SignalingError as exc:
        return error_response(exc)
    return web.json_response({"room_id": room_id, "peers": peers})
