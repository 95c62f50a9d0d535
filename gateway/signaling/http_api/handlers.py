"""The HTTP offer/answer API (`/webrtc/*`, `/iceservers`), as RustPBX's "WebRTC SDP Integration Guide"
describes it: handlers and error bodies. Credentials: gateway/signaling/api_auth.py.

Errors are `{error: <message>, code: <HTTP status>, session_id?: <id>, reason: <machine code>, field?}`
with the same HTTP status: 400 bad body, 401 no or bad credentials (with `WWW-Authenticate`), 403
forbidden, 404 unknown session, 408 the call layer took too long, 409 a session id already taken, 413
body too large, 415 a body that is not `application/json` (so that no cross-site form can post one),
429 too many logins being checked, 500 anything unexpected, 502 the far end refused the call before
the answer existed.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from gateway.ops import gc_hold
from gateway.signaling.api_auth import WWW_AUTHENTICATE, ApiCredentials, ApiPrincipal
from gateway.signaling.errors import (
    BadRequest,
    Conflict,
    SignalingError,
    Timeout,
    TooLarge,
    Unauthorized,
)
from gateway.signaling.events import IceServerInfo
from gateway.signaling.http_api.offer_protocol import (
    CONTROL_ACTIONS,
    candidate_request,
    close_request,
    control_request,
    offer_request,
)
from gateway.signaling.limits import SignalingLimits
from gateway.signaling.service import OfferService, RecordingOffers
from gateway.signaling.turn_rest import IceServers
from gateway.signaling.ws.recording import RECORD_ACTIONS

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HttpApiContext:
    offer_service: OfferService
    credentials: ApiCredentials
    ice_servers: IceServers
    limits: SignalingLimits


HTTP_API_KEY: Final = web.AppKey("signaling_http_api", HttpApiContext)


# The user another cluster instance authenticated, for a request it forwarded here with a valid signature
# (gateway/signaling/cluster_http.py): the forward carries no credentials of the user's own.
ASSERTED_USER: Final = web.RequestKey("cluster_asserted_user", str)
ASSERTED_KEY: Final = web.RequestKey("cluster_asserted_key", str)  # ...and the API key's id it used
AUTHENTICATED: Final = web.RequestKey("api_principal", object)  # ApiPrincipal | SignalingError


async def authenticate(request: web.Request, context: HttpApiContext) -> ApiPrincipal:
    """The request's principal; checked once per request (a cluster's middleware asks before the
    handler does: the outcome, a principal or the refusal, is kept on the request, so that a wrong
    secret counts once in the login throttle and a right one is hashed once)."""
    outcome = request.get(AUTHENTICATED)
    if outcome is None:
        try:
            asserted = request.get(ASSERTED_USER)
            if asserted is not None:
                outcome = await context.credentials.asserted(asserted, request.get(ASSERTED_KEY))
            else:
                outcome = await context.credentials.authenticate(
                    request.headers.get("Authorization"),
                    request.headers.get("X-API-Key"),
                    request.remote or "",
                )
        except SignalingError as exc:
            outcome = exc
        request[AUTHENTICATED] = outcome
    if isinstance(outcome, SignalingError):
        raise outcome
    return outcome


def error_body(error: SignalingError, session_id: str | None = None) -> dict[str, object]:
    body: dict[str, object] = {"error": error.message, "code": error.http_status}
    if session_id is not None:
        body["session_id"] = session_id
    body["reason"] = error.code
    if error.field is not None:
        body["field"] = error.field
    return body


def error_response(error: SignalingError, session_id: str | None = None) -> web.Response:
    headers = {"WWW-Authenticate": WWW_AUTHENTICATE} if isinstance(error, Unauthorized) else None
    return web.json_response(error_body(error, session_id), status=error.http_status, headers=headers)


async def read_body(request: web.Request, content_type: str) -> bytes:
    """The body of a request that must be of `content_type` (else 415). Never application/x-www-form-
    urlencoded or text/plain: a cross-site page can POST those without a CORS preflight, and a browser adds
    the Basic credentials it has cached for this origin (a CSRF that dials out)."""
    if request.content_type != content_type:
        raise BadRequest(
            f"Content-Type must be {content_type}, got {request.content_type[:60]!r}",
            field="Content-Type",
            code="unsupported_media_type",
            http_status=415,
        )
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise TooLarge("the body is too large") from None
    except (ConnectionError, asyncio.IncompleteReadError):
        raise ClientGone from None


async def _json_body(request: web.Request) -> object:
    body = await read_body(request, "application/json")
    try:
        return json.loads(body)  # UTF-8 (RFC 8259 §8.1); a decoding error is a ValueError too
    except (ValueError, RecursionError):
        raise BadRequest("the body is not valid JSON") from None


class ClientGone(Exception):
    """The client closed the connection before its request body was complete: nobody to answer."""


Handler = Callable[[web.Request, HttpApiContext, ApiPrincipal, object], Awaitable[web.Response]]


def _api(handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Authenticate, read the body, run `handler` under the service timeout, map errors to bodies."""

    async def wrapped(request: web.Request) -> web.Response:
        context = request.app[HTTP_API_KEY]
        session_id: str | None = None
        try:
            user = await authenticate(request, context)
            body = await _json_body(request)
            if isinstance(body, dict) and isinstance(body.get("session_id"), str):
                session_id = body["session_id"][:128]
            try:
                async with asyncio.timeout(context.limits.service_timeout):
                    return await handler(request, context, user, body)
            except TimeoutError:
                raise Timeout(
                    f"no answer from the call layer within {context.limits.service_timeout:g} s"
                ) from None
        except SignalingError as exc:
            return error_response(exc, session_id)
        except ClientGone:
            logger.info(
                "HTTP API %s: %s went away before its request was complete", request.path, request.remote
            )
            return web.Response(status=400)
        except Exception:
            logger.exception("HTTP API %s failed", request.path)
            error = SignalingError("internal error")
            return error_response(error, session_id)

    return wrapped


async def _offer(
    request: web.Request, context: HttpApiContext, principal: ApiPrincipal, body: object
) -> web.Response:
    offer = offer_request(body)
    # a REFER carried out (transfer_of) calls the REFER's target unless metadata.dial names another
    dial = offer.dial or (None if offer.transfer_of else principal.default_dial)
    # no garbage collection until the answer is written (gateway/ops/gc_hold.py, issue 38)
    release = gc_hold.hold_collections()
    loop = asyncio.get_running_loop()
    try:
        result = await context.offer_service.offer(
            principal.user, offer.sdp, dial, offer.metadata, offer.session_id, api_key=principal.key_id,
            transfer_of=offer.transfer_of, renewable=True,
        )  # fmt: skip
    finally:
        loop.call_soon(release)  # after aiohttp wrote the response: it does so without yielding
    # logged in the loop iteration after this one, once aiohttp wrote the response (it does so without
    # yielding): a line formatted and written at INFO is ~0.1 ms of the offer -> answer (issue 14 goal 3)
    loop.call_soon(
        functools.partial(
            logger.info,
            "HTTP offer from %s (%s): session %s dialling %r",
            principal.user.id,
            principal.via,
            result.session_id,
            dial or f"the target of {offer.transfer_of}'s REFER",
        )
    )
    base = f"/webrtc/sessions/{result.session_id}"
    return web.json_response(
        {
            "sdp": {"type": "answer", "sdp": result.sdp},
            "session_id": result.session_id,
            "ice_candidates": [c.to_json() for c in result.ice_candidates],
            "metadata": result.metadata,
            "call_id": result.call_id,
            "status_url": base,
            "events_url": f"{base}/events",
        }
    )


async def _candidate(
    request: web.Request, context: HttpApiContext, principal: ApiPrincipal, body: object
) -> web.Response:
    item = candidate_request(body)
    await context.offer_service.add_candidate(principal.user, item.session_id, item.candidate)
    return web.json_response({"session_id": item.session_id, "status": "received"})


async def _close(
    request: web.Request, context: HttpApiContext, principal: ApiPrincipal, body: object
) -> web.Response:
    item = close_request(body)
    await context.offer_service.close(principal.user, item.session_id)
    logger.info("HTTP session %s closed by %s: %s", item.session_id, principal.user.id, item.reason or "-")
    return web.json_response({"session_id": item.session_id, "status": "closed"})


def _control(action: str) -> Handler:
    async def control(
        request: web.Request, context: HttpApiContext, principal: ApiPrincipal, body: object
    ) -> web.Response:
        item = control_request(action, body)
        await context.offer_service.control(
            principal.user, item.session_id, action, digits=item.digits, duration_ms=item.duration_ms,
            to=item.to, body=item.body, replaces=item.replaces, other=item.other,
        )  # fmt: skip
        return web.json_response({"session_id": item.session_id, "status": _DONE[action]})

    return control


_DONE = {
    "hold": "holding",
    "resume": "resuming",
    "dtmf": "sent",
    "transfer": "transferring",
    "message": "sent",
    "merge": "merging",
    "split": "splitting",
}


async def _record(
    request: web.Request, context: HttpApiContext, principal: ApiPrincipal, body: object
) -> web.Response:
    """`POST /webrtc/record {session_id, action}`: the call's recording (gateway/runtime/recordings.py)."""
    item = control_request("record", body)
    action = body.get("action") if isinstance(body, dict) else None
    if not isinstance(action, str) or action not in RECORD_ACTIONS:
        raise BadRequest(f"action must be one of {', '.join(RECORD_ACTIONS)}, got {action!r}", field="action")
    service = context.offer_service
    if not isinstance(service, RecordingOffers):
        raise Conflict("this gateway records no calls", field="action")
    info = await service.record(principal.user, item.session_id, action)
    return web.json_response({"session_id": item.session_id, "status": info["state"], **info})


offer_handler = _api(_offer)
record_handler = _api(_record)
candidate_handler = _api(_candidate)
close_handler = _api(_close)
# POST /webrtc/hold, /resume, /dtmf, /transfer, /message: the call's features of `/ws` (issue 33)
control_handlers = {action: _api(_control(action)) for action in CONTROL_ACTIONS}


async def visible_ice_servers(request: web.Request) -> tuple[IceServerInfo, ...]:
    """The ICE servers the request may see: TURN entries (with their credentials) only with valid
    credentials, STUN entries for anyone; wrong credentials raise (Unauthorized, or RateLimited while
    logins queue up)."""
    context = request.app[HTTP_API_KEY]
    if request.headers.get("Authorization") or request.headers.get("X-API-Key") is not None:
        principal = await authenticate(request, context)
        return context.ice_servers.for_user(principal.user.id)
    return context.ice_servers.public()


async def ice_servers_handler(request: web.Request) -> web.Response:
    """`GET /iceservers`: a bare array of `{urls, username?, credential?}` (``visible_ice_servers``)."""
    try:
        servers = await visible_ice_servers(request)
    except SignalingError as exc:
        return error_response(exc)
    return web.json_response([s.to_json() for s in servers], headers={"Cache-Control": "no-store"})
