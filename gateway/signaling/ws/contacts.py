"""`GET /contacts`: the web users the caller may call, with presence, for the softphone's contacts list
(issue 16 items 4 and 6), and the pages the gateway serves besides the softphone (`/docs`, `/favicon.ico`).

Authenticated as the HTTP API is (a session token from the WebSocket's `registered`, an API key or Basic).
Answers `{"contacts": [{"id", "display_name", "number", "online"}]}`, sorted by name: every other web
user whose number the caller's allow_outbound lets her dial (`calls.web_calls: direct` rings her through
the gateway itself). `online` is whether she has an open session now (presence), on any instance of a
cluster (gateway/cluster/presence.py); changes are pushed to the /ws sessions as `presence` events
(presence_feed.py; in a cluster only for users on the same instance).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final, Protocol, runtime_checkable

from aiohttp import web

from gateway.signaling.errors import SignalingError
from gateway.signaling.http_api.handlers import HTTP_API_KEY, authenticate, error_response
from gateway.signaling.ws.presence_feed import may_see

STATIC_DIR: Final = Path(__file__).resolve().parents[2] / "static"
FAVICON_HEADERS: Final = {"Cache-Control": "max-age=86400", "Content-Type": "image/svg+xml"}


@runtime_checkable
class SharedPresence(Protocol):
    """A presence shared by several instances (a cluster): who is online anywhere."""

    async def online_anywhere(self, user_ids: tuple[str, ...]) -> frozenset[str]: ...


async def contacts_handler(request: web.Request) -> web.Response:
    context = request.app[HTTP_API_KEY]
    try:
        principal = await authenticate(request, context)
    except SignalingError as exc:
        return error_response(exc)
    identity = context.credentials.identity
    caller = principal.user
    visible = [
        user
        for user in await identity.store.all_users()
        if user.aor.user is not None and may_see(caller, user, identity)
    ]
    presence = identity.presence
    if isinstance(presence, SharedPresence):
        online = await presence.online_anywhere(tuple(u.id for u in visible))
    else:
        online = frozenset([u.id for u in visible if await presence.sessions_of(u.id)])
    contacts = [
        {"id": u.id, "display_name": u.display_name, "number": u.aor.user, "online": u.id in online}
        for u in visible
    ]
    contacts.sort(key=lambda c: (str(c["display_name"]).lower(), str(c["id"])))
    return web.json_response({"contacts": contacts}, headers={"Cache-Control": "no-store"})


async def favicon_handler(request: web.Request) -> web.FileResponse:
    """`/favicon.ico`: the page's SVG icon (browsers ask for this path whatever the page links)."""
    return web.FileResponse(STATIC_DIR / "favicon.svg", headers=FAVICON_HEADERS)
