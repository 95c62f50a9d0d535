"""`GET /contacts`: the web users the caller may call, with presence, for the softphone's contacts list
(issue 16 items 4 and 6), and the pages the gateway serves besides the softphone (`/docs`, `/favicon.ico`).

Authenticated as the HTTP API is (a session token from the WebSocket's `registered`, an API key or Basic).
Answers `{"contacts": [{"id", "display_name", "number", "online"}]}`, sorted by name: every other web
user whose number the caller's allow_outbound lets her dial (`calls.web_calls: direct` rings her through
the gateway itself). `online` is whether she has an open session now (presence); changes are pushed to
the /ws sessions as `presence` events (presence_feed.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from aiohttp import web

from gateway.signaling.errors import SignalingError
from gateway.signaling.http_api import HTTP_API_KEY, authenticate, error_response
from gateway.signaling.presence_feed import may_see

STATIC_DIR: Final = Path(__file__).resolve().parent.parent / "static"
FAVICON_HEADERS: Final = {"Cache-Control": "max-age=86400", "Content-Type": "image/svg+xml"}


async def contacts_handler(request: web.Request) -> web.Response:
    context = request.app[HTTP_API_KEY]
    try:
        principal = await authenticate(request, context)
    except SignalingError as exc:
        return error_response(exc)
    identity = context.credentials.identity
    caller = principal.user
    contacts = []
    for user in await identity.store.all_users():
        number = user.aor.user
        if number is None or not may_see(caller, user, identity):
            continue
        online = bool(await identity.presence.sessions_of(user.id))
        contacts.append(
            {"id": user.id, "display_name": user.display_name, "number": number, "online": online}
        )
    contacts.sort(key=lambda c: (str(c["display_name"]).lower(), str(c["id"])))
    return web.json_response({"contacts": contacts}, headers={"Cache-Control": "no-store"})


async def favicon_handler(request: web.Request) -> web.FileResponse:
    """`/favicon.ico`: the page's SVG icon (browsers ask for this path whatever the page links)."""
    return web.FileResponse(STATIC_DIR / "favicon.svg", headers=FAVICON_HEADERS)
