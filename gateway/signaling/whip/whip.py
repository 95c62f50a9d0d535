"""WHIP, the WebRTC-HTTP Ingestion Protocol (RFC 9725), as a way to place a call: the WHIP client's offer
is the web side of a call to a SIP destination, over the HTTP offer API's sessions (same call core).

    POST   /whip                application/sdp offer -> 201, Location, ETag, the SDP answer; calls the
    POST   /whip/{destination}  credentials' default destination, or the one in the URL (§4.2)
    OPTIONS /whip, /whip/{destination}  204 with `Accept-Post: application/sdp` (§4.2) and the ICE servers
                                as Link headers: a client that gets it (not 405) trickles its candidates
    PATCH  /whip/sessions/{id}  application/trickle-ice-sdpfrag: trickled candidates -> 204 (§4.3.2);
                                new ICE credentials (an ICE restart, §4.3.3) -> 200 with our new
                                credentials and candidates as an sdpfrag, and a new ETag (§4.3.1)
    DELETE /whip/sessions/{id}  hangs the call up -> 200 (§4.2)

Bearer authentication (§4.6): an API key or session token (gateway/signaling/api_auth.py; Basic too).
The answer comes as soon as it exists, before the far end picks up, with `Link: rel="ice-server"`
headers for the configured ICE servers (§4.4). The ETag names the ICE session (the client's ufrag): a
restart changes it. A destination that is a room's number (`rooms.numbers`) needs the permission to join
that room (`rooms.rules`, else 403 `forbidden`). Errors: 400 a malformed offer or fragment, 401, 404 an unknown resource, 412 an
If-Match that does not match the ETag, 415 another Content-Type, 428 a restart without If-Match (§4.3.1:
it carries `If-Match: *`), 422 a restart the session's media cannot do now (ICE not connected yet, a
pass-through call), else the HTTP API's statuses (403, 408, 429...), with its JSON error body.
The call's progress: `GET /webrtc/sessions/{id}` (and `/events`), as for HTTP offers. A publish by a user
whose resource calling the same destination waits for new media (its call taken over from a cluster
instance that died: runtime/continuity/takeover.py) renews that call under that resource (`WhipRenewals`)
instead of placing a second one; a cluster forwards such a publish to where the resource is
(signaling/cluster_http.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import quote

from aiohttp import web

import sdp
from gateway.signaling.api_auth import ApiPrincipal
from gateway.signaling.errors import BadRequest, NotFound, SignalingError, Timeout, TooLarge
from gateway.signaling.events import IceServerInfo
from gateway.signaling.http_api.handlers import (
    HTTP_API_KEY,
    ClientGone,
    authenticate,
    error_response,
    read_body,
    visible_ice_servers,
)
from gateway.signaling.rooms.endpoint import ROOMS_KEY
from gateway.signaling.service import IceRestartService, WhipRenewals
from gateway.signaling.ws.protocol import MAX_DESTINATION_CHARS, MAX_SDP_CHARS

logger = logging.getLogger(__name__)

SDP_TYPE: Final = "application/sdp"
MAX_RESOURCES: Final = 4096  # WHIP resources remembered (their ICE ufrag); the oldest go first


@dataclass(slots=True)
class WhipResources:
    """session id -> (user id, the client's ICE ufrag): what PATCH needs to tell trickle from restart."""

    items: OrderedDict[str, tuple[str, str | None]] = field(default_factory=OrderedDict)

    def add(self, session_id: str, user_id: str, ufrag: str | None) -> None:
        self.items[session_id] = (user_id, ufrag)
        while len(self.items) > MAX_RESOURCES:
            self.items.popitem(last=False)


WHIP_KEY: Final = web.AppKey("signaling_whip", WhipResources)


def _problem(error: SignalingError, session_id: str | None = None) -> web.Response:
    return error_response(error, session_id)


async def _body(request: web.Request, content_type: str) -> str:
    raw = await read_body(request, content_type)
    if len(raw) > MAX_SDP_CHARS:
        raise TooLarge("the body is too large")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the body is not UTF-8") from None


def _offer_ufrag(offer: str) -> str | None:
    try:
        description = sdp.parse(offer)
    except sdp.SdpError as exc:
        raise BadRequest(f"the offer is not valid SDP: {exc.message}", field="sdp") from None
    ice = description.ice or next((m.ice for m in description.media if m.ice is not None), None)
    return ice.ufrag if ice is not None else None


async def offer_body(request: web.Request) -> str:
    """The `application/sdp` offer of a POST (400 when it is not SDP, 415 another Content-Type)."""
    offer = await _body(request, SDP_TYPE)
    _offer_ufrag(offer)
    return offer


def _check_room_number(request: web.Request, principal: ApiPrincipal, destination: str) -> None:
    """Publishing to a room's number (`rooms.numbers`) joins that room: it needs the join permission of
    `rooms.rules` (`Forbidden`, 403; gateway/signaling/rooms/access.py)."""
    rooms = request.app.get(ROOMS_KEY)
    if rooms is not None:  # before a session exists (every dialect's call meets it again: CallDriver)
        rooms.check_call(principal.user.id, destination)


async def whip_post_handler(request: web.Request) -> web.Response:
    context = request.app[HTTP_API_KEY]
    try:
        principal = await authenticate(request, context)
        offer = await _body(request, SDP_TYPE)
        ufrag = _offer_ufrag(offer)
        destination = request.match_info.get("destination") or principal.default_dial
        if destination is not None and (
            len(destination) > MAX_DESTINATION_CHARS or not destination.isprintable()
        ):
            raise BadRequest("the destination in the URL is not a number or SIP URI", field="destination")
        if not destination:
            raise BadRequest(
                "no destination: POST to /whip/{number} or configure a default_dial", field="destination"
            )
        _check_room_number(request, principal, destination)
        service = context.offer_service
        # its resource's call taken over from an instance that died, waiting for this publish: renewed
        waiting = (
            service.whip_waiting(principal.user, destination, principal.key_id)
            if isinstance(service, WhipRenewals)
            else None
        )
        try:
            async with asyncio.timeout(context.limits.service_timeout):
                result = await service.offer(
                    principal.user, offer, destination, {}, waiting, api_key=principal.key_id
                )
        except TimeoutError:
            raise Timeout("no answer from the call layer in time") from None
    except SignalingError as exc:
        return _problem(exc)
    except ClientGone:
        return web.Response(status=400)
    request.app[WHIP_KEY].add(result.session_id, principal.user.id, ufrag)
    location = f"/whip/sessions/{quote(result.session_id, safe='')}"
    links = _ice_links(context.ice_servers.for_user(principal.user.id))
    logger.info(
        "WHIP session %s of %s %s %r",
        result.session_id, principal.user.id, "renewed, calling" if waiting else "calling", destination,
    )  # fmt: skip
    headers = {"Location": location, "ETag": f'"{ufrag or result.session_id}"', "Cache-Control": "no-store"}
    response = web.Response(status=201, text=result.sdp, content_type=SDP_TYPE, headers=headers)
    for link in links:
        response.headers.add("Link", link)
    return response


def _ice_links(servers: tuple[IceServerInfo, ...]) -> list[str]:
    """The ICE servers as Link headers (RFC 9725 §4.4), one per URL."""
    return [
        f'<{url}>; rel="ice-server"'
        + (
            f'; username="{s.username}"; credential="{s.credential}"; credential-type="password"'
            if s.username
            else ""
        )
        for s in servers
        for url in s.urls
    ]


async def whip_options_handler(request: web.Request) -> web.Response:
    """OPTIONS on a WHIP endpoint: 204 with `Accept-Post: application/sdp` (RFC 9725 §4.2) and the ICE
    servers as Link headers (§4.4): STUN for anyone, TURN with its credentials only for valid
    credentials (a CORS preflight carries none; wrong ones: 401). Clients that probe with OPTIONS turn
    trickle ICE on when it succeeds (Eyevinn's whip-web-client turned it off after our 405). No
    Access-Control headers: the gateway grants no cross-origin use of its API (docs/signaling.md)."""
    try:
        servers = await visible_ice_servers(request)
    except SignalingError as exc:
        return _problem(exc)
    headers = {"Accept-Post": SDP_TYPE, "Allow": "OPTIONS, POST", "Cache-Control": "no-store"}
    response = web.Response(status=204, headers=headers)
    for link in _ice_links(servers):
        response.headers.add("Link", link)
    return response


async def _resource(request: web.Request) -> tuple[ApiPrincipal, str, str | None]:
    """(who, session id, the client's ufrag) of the resource in the URL, for its own user; `NotFound` else."""
    context = request.app[HTTP_API_KEY]
    principal = await authenticate(request, context)
    session_id = request.match_info["session_id"]
    entry = request.app[WHIP_KEY].items.get(session_id)
    service = context.offer_service
    if (
        entry is None
        and isinstance(service, WhipRenewals)
        and service.whip_resource(principal.user, session_id)
    ):
        entry = (principal.user.id, None)  # taken over here from an instance that died: its ufrag unknown
    if entry is None or entry[0] != principal.user.id:
        raise NotFound(f"no WHIP session {session_id[:128]!r}", field="session_id")
    await context.offer_service.progress(principal.user, session_id)  # NotFound once forgotten
    return principal, session_id, entry[1]


def _etag(session_id: str, ufrag: str | None) -> str:
    """The strong entity-tag of the resource's ICE session (RFC 9725 §4.3.1)."""
    return f'"{ufrag or session_id}"'


async def whip_patch_handler(request: web.Request) -> web.Response:
    context = request.app[HTTP_API_KEY]
    session_id = request.match_info["session_id"][:128]
    try:
        principal, session_id, ufrag = await _resource(request)
        body = await _body(request, sdp.TRICKLE_MEDIA_TYPE)
        try:
            fragment = sdp.decode_sdpfrag(body)
        except sdp.SdpError as exc:
            raise BadRequest(f"bad sdpfrag: {exc.message}", field="body") from None
        if_match, etag = request.headers.get("If-Match"), _etag(session_id, ufrag)
        restart = fragment.ice is not None and ufrag is not None and fragment.ice.ufrag != ufrag
        if restart and if_match is None:  # RFC 9725 §4.3.3: a restart carries If-Match: *
            raise SignalingError("an ICE restart needs If-Match: * (RFC 9725 §4.3.3)", http_status=428)
        if if_match not in (None, "*", etag):  # RFC 9110 §13.1.1
            raise SignalingError("If-Match does not match the session's ETag", http_status=412)
        answer: sdp.TrickleFragment | None = None
        if restart:
            assert fragment.ice is not None
            service = context.offer_service
            if not isinstance(service, IceRestartService):
                raise SignalingError("ICE restarts are not supported", http_status=501)
            answer = await service.restart_ice(principal.user, session_id, fragment.ice)
            ufrag = fragment.ice.ufrag
            request.app[WHIP_KEY].add(session_id, principal.user.id, ufrag)
            logger.info("WHIP session %s restarted ICE (client ufrag %s)", session_id, ufrag)
        await _trickle(request, principal, session_id, fragment, ufrag)
    except SignalingError as exc:
        return _problem(exc, session_id)
    except ClientGone:
        return web.Response(status=400)
    if answer is None:
        return web.Response(status=204)
    headers = {"ETag": _etag(session_id, ufrag), "Cache-Control": "no-store"}  # §4.3.1: the new ICE session
    return web.Response(
        status=200, text=sdp.encode_sdpfrag(answer), content_type=sdp.TRICKLE_MEDIA_TYPE, headers=headers
    )


async def _trickle(
    request: web.Request,
    principal: ApiPrincipal,
    session_id: str,
    fragment: sdp.TrickleFragment,
    ufrag: str | None,
) -> None:
    """The fragment's candidates and end-of-candidates to the session's web leg (RFC 8840 §9)."""
    service = request.app[HTTP_API_KEY].offer_service
    for index, media in enumerate(fragment.media):
        for candidate in media.candidates:
            await service.add_candidate(
                principal.user, session_id, sdp.IceCandidateInit(candidate, media.mid, index, ufrag)
            )
        if media.end_of_candidates:
            await service.add_candidate(
                principal.user, session_id, sdp.IceCandidateInit(None, media.mid, index, ufrag)
            )
    if fragment.end_of_candidates:
        await service.add_candidate(principal.user, session_id, None)


async def whip_delete_handler(request: web.Request) -> web.Response:
    context = request.app[HTTP_API_KEY]
    session_id = request.match_info["session_id"][:128]
    try:
        principal, session_id, _ = await _resource(request)
        await context.offer_service.close(principal.user, session_id)
    except SignalingError as exc:
        return _problem(exc, session_id)
    request.app[WHIP_KEY].items.pop(session_id, None)
    logger.info("WHIP session %s deleted", session_id)
    return web.Response(status=200)
