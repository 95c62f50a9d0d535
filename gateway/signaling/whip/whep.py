"""WHEP, the WebRTC-HTTP Egress Protocol (draft-ietf-wish-whep), as playback of a room's mix, or of a
call's far end (the id of a WHIP / HTTP API session of the user, or of its call: call_playback.py):

    POST   /whep/{room_id}        application/sdp offer (recvonly) -> 201, Location, the SDP answer
    POST   /whep/{session_id}     the same for the far end's audio of that session's call
    DELETE /whep/sessions/{id}    ends the playback -> 200
    PATCH  /whep/sessions/{id}    405: no trickle ICE nor ICE restart (the gateway's answer carries all its
                                  candidates, and aiortc cannot restart ICE; RFC 9725 §4.3, as WHEP §4.3)

The player is a participant of the room's mixer (gateway/runtime/rooms/) that hears every
participant (browsers and SIP parties) and sends nothing; a room without a SIP party gets the gateway's
peer for it (the browsers then send it their audio). Authentication as WHIP's (§4.6 there: Bearer API key
or session token; Basic too); watching a room needs the permission of `rooms.rules` (its owner, or a user
the rule lets join or watch: gateway/signaling/rooms/access.py), and the room's peers are told who
watches (`watcher_joined` / `watcher_left` with the user's id). Errors in the HTTP API's JSON shape: 400 a
malformed offer, 401, 403 a room the user may not watch (whether it is open or not: no oracle), 404 a
room it may watch that is not open or an unknown player (or another user's), 409 a full mix
(`rooms.max_mixed`), 415 another Content-Type, 501 when the gateway has no room media.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from aiohttp import web

from gateway.identity import WebUser
from gateway.signaling.errors import NotFound, ServiceError, SignalingError
from gateway.signaling.http_api.handlers import HTTP_API_KEY, ClientGone, authenticate, error_response
from gateway.signaling.rooms.access import Action
from gateway.signaling.rooms.core import check_id
from gateway.signaling.rooms.endpoint import ROOMS_KEY
from gateway.signaling.rooms.media import RoomMedia
from gateway.signaling.whip.call_playback import PLAYBACK_KEY
from gateway.signaling.whip.whip import SDP_TYPE, offer_body

logger = logging.getLogger(__name__)


def _media(request: web.Request) -> RoomMedia:
    rooms = request.app[ROOMS_KEY]
    if rooms.media is None or not rooms.settings.enabled:
        raise ServiceError("WHEP playback of rooms is not available", code="not_implemented", http_status=501)
    return rooms.media


async def _watch_call(request: web.Request, target: str, user: WebUser, offer: str) -> tuple[str, str] | None:
    """A player of the call of the user's session (or call) `target`; None when there is none."""
    playback = request.app.get(PLAYBACK_KEY)
    if playback is None:
        return None
    try:
        return await playback.watch(target, user, offer)
    except NotFound:
        return None  # not one of the user's sessions: a room, perhaps


async def whep_post_handler(request: web.Request) -> web.Response:
    context = request.app[HTTP_API_KEY]
    try:
        principal = await authenticate(request, context)
        target = request.match_info["room_id"]
        offer = await offer_body(request)
        found = await _watch_call(request, target, principal.user, offer)
        if found is not None:
            viewer_id, answer = found
        else:
            media = _media(request)
            room_id = check_id(target, "room_id")
            request.app[ROOMS_KEY].registry.check(Action.WATCH, room_id, principal.user.id)
            viewer_id, answer = await media.watch(room_id, principal.user, offer)
    except SignalingError as exc:
        return error_response(exc)
    except ClientGone:
        return web.Response(status=400)
    headers = {"Location": f"/whep/sessions/{quote(viewer_id, safe='')}", "Cache-Control": "no-store"}
    return web.Response(status=201, text=answer, content_type=SDP_TYPE, headers=headers)


async def whep_delete_handler(request: web.Request) -> web.Response:
    context = request.app[HTTP_API_KEY]
    try:
        principal = await authenticate(request, context)
        playback = request.app.get(PLAYBACK_KEY)
        viewer_id = request.match_info["session_id"]
        if playback is None or not await playback.unwatch(viewer_id, principal.user):
            await _media(request).unwatch(viewer_id, principal.user)
    except SignalingError as exc:
        return error_response(exc)
    return web.Response(status=200)


async def whep_patch_handler(request: web.Request) -> web.Response:
    """No trickle ICE nor ICE restart on a player: 405 (the answer carried every candidate)."""
    return web.Response(status=405, headers={"Allow": "DELETE"})
