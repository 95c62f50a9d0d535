"""Wiring: `add_signaling_routes` puts the softphone page, `/ws`, the HTTP API and `/openapi.json` on an app.

    app = build_app(health)
    add_signaling_routes(app, call_service=calls, offer_service=calls, identity=identities,
                         presence=presence, config=config, clock=time.time)

Routes: `/` (softphone page), `/static/...` (gateway/static: the page's JS and CSS, and the client library
`webrtc-client.js`), `/ws`, `/jsonrpc` (JSON-RPC 2.0), `/webrtc/offer`, `/webrtc/ice-candidate`, `/webrtc/close`,
`/webrtc/sessions/{id}` (and `/events`, server-sent), `/iceservers`, `/whip` (RFC 9725), `/whep/{room}` (whip/whep.py), `/webrtc/signaling/{room}/{peer}`, `/webrtc/rooms` (rooms:
rooms/endpoint.py), `/webrtc/client`, `/openapi.json`. On shutdown, open WebSockets are closed with 1001 (their calls end through
`session_closed`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

from aiohttp import web

from gateway.config import Config
from gateway.config.schema import HttpSection
from gateway.identity.lookup import IdentityMap
from gateway.signaling.admin_auth import ADMIN_AUTH_KEY, AdminAuth
from gateway.signaling.api_auth import ApiCredentials
from gateway.signaling.events import IceServerInfo
from gateway.signaling.http_api.handlers import (
    HTTP_API_KEY,
    HttpApiContext,
    candidate_handler,
    close_handler,
    control_handlers,
    ice_servers_handler,
    offer_handler,
    record_handler,
)
from gateway.signaling.http_api.openapi import openapi_document
from gateway.signaling.http_api.sessions import STREAMS_KEY, EventStreams, events_handler, status_handler
from gateway.signaling.jsonrpc.context import RpcContext
from gateway.signaling.jsonrpc.endpoint import RPC_KEY, jsonrpc_handler
from gateway.signaling.jsonrpc.resume import DetachedPeers
from gateway.signaling.limits import SignalingLimits
from gateway.signaling.origin import OriginPolicy, origin_policy
from gateway.signaling.revocation import FileRevocations, InMemoryRevocations, RevocationStore
from gateway.signaling.rooms.access import RoomAccess
from gateway.signaling.rooms.core import RoomRegistry
from gateway.signaling.rooms.endpoint import (
    ROOMS_KEY,
    RoomsContext,
    room_peers_handler,
    rooms_list_handler,
    rooms_socket_handler,
)
from gateway.signaling.rooms.media import RoomMedia
from gateway.signaling.service import CallService, OfferService
from gateway.signaling.session_loop import ORIGINS_KEY, SOCKETS_KEY, SocketRegistry
from gateway.signaling.tokens import SessionTokens
from gateway.signaling.turn_rest import IceServers, turn_rest_issuer
from gateway.signaling.whip.call_playback import PLAYBACK_KEY, CallPlayback
from gateway.signaling.whip.whep import whep_delete_handler, whep_patch_handler, whep_post_handler
from gateway.signaling.whip.whip import (
    WHIP_KEY,
    WhipResources,
    whip_delete_handler,
    whip_options_handler,
    whip_patch_handler,
    whip_post_handler,
)
from gateway.signaling.ws.connection import PresenceRegistry, SignalingContext
from gateway.signaling.ws.contacts import contacts_handler, favicon_handler
from gateway.signaling.ws.endpoint import CONTEXT_KEY, websocket_handler
from gateway.signaling.ws.presence_feed import PresenceFeed
from gateway.state_dir import StateDir
from gateway.tls import certificate_names

logger = logging.getLogger(__name__)

STATIC_DIR: Final = Path(__file__).resolve().parent.parent / "static"
# form-action 'none': every form of the pages is handled by their scripts; a native submission (one made
# before the script ran) would be a GET with the secret in the URL.
PAGE_HEADERS: Final = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self' ws: wss:; media-src 'self' blob: mediastream:; "
        "img-src 'self' data:; frame-ancestors 'none'; form-action 'none'"
    ),
}


def origins_for(http: HttpSection) -> OriginPolicy:
    """The origins whose pages may open the WebSockets (gateway/signaling/origin.py), with the names of
    the HTTPS certificate."""
    return origin_policy(http, certificate_names(http.tls.certificate) if http.tls is not None else ())


@web.middleware
async def origin_guard(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """403 for a request that changes something (not GET/HEAD/OPTIONS) from a foreign page's Origin: the
    HTTP offer API and WHIP as the WebSockets (a DNS-rebinding page is same-origin to the browser, so
    CORS does not stop it; gateway/signaling/origin.py)."""
    origin = request.headers.get("Origin")
    if request.method in ("GET", "HEAD", "OPTIONS") or request.app[ORIGINS_KEY].allows(origin):
        return await handler(request)
    logger.warning(
        "refusing %s %s from %s: foreign Origin %r", request.method, request.path, request.remote, origin
    )
    return web.json_response({"error": f"Origin {origin!r} is not allowed", "code": 403}, status=403)


def ice_servers_from_config(config: Config) -> tuple[IceServerInfo, ...]:
    return tuple(
        IceServerInfo(
            server.urls,
            server.username,
            server.credential.reveal() if server.credential is not None else None,
        )
        for server in config.ice.browser
    )


def session_tokens_from_config(
    config: Config,
    clock: Callable[[], float],
    state: StateDir | None = None,
    revocations: RevocationStore | None = None,
) -> SessionTokens:
    """Tokens signed with web_auth.session_secret, else with the key kept in the state directory, else
    (no state directory: tests) a random key; revocations kept in the state directory when there is one."""
    ttl = config.web_auth.token_ttl
    if revocations is None:  # a cluster gives its shared store (gateway/cluster/stores.py)
        revocations = (
            FileRevocations(state.revocations_file, clock)
            if state is not None
            else InMemoryRevocations(clock)
        )
    secret = config.web_auth.session_secret
    if secret is not None:
        return SessionTokens(secret.reveal().encode("utf-8"), ttl, clock, revocations)
    if state is not None:
        return SessionTokens(state.session_key(), ttl, clock, revocations)
    logger.info("web_auth.session_secret unset, no state_dir: session tokens will not survive a restart")
    return SessionTokens.with_random_key(ttl, clock)


async def index_handler(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)


async def room_client_handler(request: web.Request) -> web.FileResponse:
    """`GET /webrtc/client`: the rooms demo (audio and a data channel between browsers, peer to peer)."""
    if not request.app[ROOMS_KEY].settings.enabled:
        raise web.HTTPNotFound()
    return web.FileResponse(STATIC_DIR / "room.html", headers=PAGE_HEADERS)


async def docs_handler(request: web.Request) -> web.FileResponse:
    """`/docs`: /openapi.json rendered for people by the page's own script (static/docs.js; no CDN)."""
    return web.FileResponse(STATIC_DIR / "docs.html", headers=PAGE_HEADERS)


async def openapi_handler(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


def add_signaling_routes(
    app: web.Application,
    *,
    call_service: CallService,
    offer_service: OfferService,
    identity: IdentityMap,
    presence: PresenceRegistry,
    config: Config,
    clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
    limits: SignalingLimits | None = None,
    state: StateDir | None = None,
    revocations: RevocationStore | None = None,
    room_media: RoomMedia | None = None,
    call_playback: CallPlayback | None = None,
) -> None:
    """Register the browser-facing routes on `app`. `clock` is Unix time (token expiry), `monotonic`
    drives the rate limit; `state` keeps the session key and revoked tokens (gateway.state_dir)."""
    limits = limits or SignalingLimits()
    tokens = session_tokens_from_config(config, clock, state, revocations)
    ice_servers = IceServers(ice_servers_from_config(config), turn_rest_issuer(config, clock))
    app[CONTEXT_KEY] = SignalingContext(
        call_service,
        identity,
        presence,
        tokens,
        ice_servers,
        limits,
        monotonic,
        PresenceFeed(identity),
        video=bool(config.codecs.video),
        reconnect_grace=config.web_auth.reconnect_grace,
    )
    credentials = ApiCredentials.from_config(config, identity, tokens)
    app[HTTP_API_KEY] = HttpApiContext(offer_service, credentials, ice_servers, limits)
    app[ADMIN_AUTH_KEY] = AdminAuth(
        credentials, config.admin.token.reveal() if config.admin.token is not None else None
    )  # admin_auth.require_admin
    app[STREAMS_KEY] = EventStreams.from_config(config)
    detached = DetachedPeers(config.web_auth.reconnect_grace)  # JSON-RPC peers that may come back
    app[RPC_KEY] = RpcContext(
        call_service, credentials, presence, ice_servers, limits, monotonic, detached=detached
    )
    sockets = SocketRegistry()
    app[SOCKETS_KEY] = sockets
    app[ORIGINS_KEY] = origins_for(config.http)
    app.middlewares.append(origin_guard)

    async def close_sockets(app: web.Application) -> None:
        await app[RPC_KEY].detached.close()  # first: sockets that close now do not wait (resume.py)
        await sockets.close_all()

    app.on_shutdown.append(close_sockets)
    router = app.router
    router.add_get("/", index_handler)
    router.add_static("/static/", STATIC_DIR, follow_symlinks=False)
    router.add_get("/ws", websocket_handler)
    router.add_get("/jsonrpc", jsonrpc_handler)
    router.add_post("/webrtc/offer", offer_handler)
    router.add_post("/webrtc/ice-candidate", candidate_handler)
    router.add_post("/webrtc/close", close_handler)
    router.add_post("/webrtc/record", record_handler)  # a call's recording (runtime/recordings.py)
    for action, handler in control_handlers.items():  # hold, resume, dtmf, transfer, message
        router.add_post(f"/webrtc/{action}", handler)
    router.add_get("/webrtc/sessions/{session_id}", status_handler)
    router.add_get("/webrtc/sessions/{session_id}/events", events_handler)
    router.add_get("/iceservers", ice_servers_handler)
    app[WHIP_KEY] = WhipResources()
    router.add_post("/whip", whip_post_handler)
    router.add_post("/whip/{destination}", whip_post_handler)
    router.add_route("OPTIONS", "/whip", whip_options_handler)  # RFC 9725 §4.2
    router.add_route("OPTIONS", "/whip/{destination}", whip_options_handler)
    router.add_patch("/whip/sessions/{session_id}", whip_patch_handler)
    router.add_delete("/whip/sessions/{session_id}", whip_delete_handler)
    router.add_get("/openapi.json", openapi_handler)
    rooms = config.rooms
    registry = RoomRegistry(rooms.max_rooms, rooms.max_peers, RoomAccess(rooms))  # rooms.rules: access.py
    app[ROOMS_KEY] = rooms_context = RoomsContext(
        registry, credentials, rooms, limits, ice_servers, monotonic, media=room_media
    )
    if room_media is not None:  # SIP parties in rooms: the gateway's own peer (gateway/runtime/rooms/)
        room_media.attach(rooms_context)
    router.add_get("/webrtc/signaling/{room_id}/{peer_id}", rooms_socket_handler)
    router.add_get("/webrtc/rooms", rooms_list_handler)
    router.add_get("/webrtc/rooms/{room_id}/peers", room_peers_handler)
    router.add_get("/webrtc/client", room_client_handler)
    if call_playback is not None:  # WHEP of a WHIP / HTTP API session's call (gateway/runtime/playback.py)
        app[PLAYBACK_KEY] = call_playback
    router.add_post("/whep/{room_id}", whep_post_handler)  # WHEP: playback of a room's mix (whip/whep.py)
    router.add_patch("/whep/sessions/{session_id}", whep_patch_handler)
    router.add_delete("/whep/sessions/{session_id}", whep_delete_handler)
    router.add_get("/docs", docs_handler)
    router.add_get("/contacts", contacts_handler)
    router.add_get("/favicon.ico", favicon_handler)
