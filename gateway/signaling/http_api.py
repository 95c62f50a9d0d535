"""The HTTP offer/answer API (`/webrtc/*`, `/iceservers`): authentication, handlers, error bodies.

Authentication (docs/signaling.md): `Authorization: Bearer <session token>` (the `token` of a WebSocket
`registered` reply) or `Authorization: Basic base64(user id:web secret)` (RFC 7617). Without valid
credentials: 401 with `WWW-Authenticate` for both schemes (RFC 6750 §3, RFC 7617 §2).

Errors are `{error: <message>, code: <code>, session_id: <id or null>}` with the error's HTTP status:
400 bad body, 401 no or bad credentials, 403 forbidden, 404 unknown session, 408 the call layer took too
long, 413 body too large, 415 a body that is not `application/json` (so that no cross-site form can post
one), 429 too many logins being checked, 500 anything unexpected.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from gateway.identity import LoginBusy, WebUser
from gateway.identity.lookup import IdentityMap
from gateway.signaling.errors import (
    BadRequest,
    RateLimited,
    SignalingError,
    Timeout,
    TooLarge,
    Unauthorized,
)
from gateway.signaling.events import IceServerInfo
from gateway.signaling.limits import SignalingLimits
from gateway.signaling.offer_protocol import candidate_request, close_request, offer_request
from gateway.signaling.service import OfferService
from gateway.signaling.tokens import SessionTokens

logger = logging.getLogger(__name__)

WWW_AUTHENTICATE: Final = (
    'Bearer realm="sip-webrtc-gateway", Basic realm="sip-webrtc-gateway", charset="UTF-8"'
)


@dataclass(frozen=True, slots=True)
class HttpApiContext:
    offer_service: OfferService
    identity: IdentityMap
    tokens: SessionTokens
    ice_servers: tuple[IceServerInfo, ...]
    limits: SignalingLimits


HTTP_API_KEY: Final = web.AppKey("signaling_http_api", HttpApiContext)


async def authenticate(header: str | None, context: HttpApiContext, client: str = "") -> WebUser:
    """The user named by an `Authorization` header value; `Unauthorized` otherwise."""
    if not header:
        raise Unauthorized("credentials required: Authorization: Bearer <session token> or Basic")
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        claims = await context.tokens.check(value)
        user = await context.identity.store.get(claims.user_id)
        if user is None:
            raise Unauthorized("the user of this session token no longer exists")
        return user
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized("malformed Basic credentials") from None
        user_id, colon, secret = decoded.partition(":")
        try:
            found = await context.identity.verify_web_login(user_id, secret, client) if colon else None
        except LoginBusy as exc:
            raise RateLimited(str(exc)) from None
        if found is None:
            raise Unauthorized("wrong user id or secret")
        return found
    raise Unauthorized(f"unsupported authorization scheme {scheme[:20]!r}: use Bearer or Basic")


def error_response(error: SignalingError, session_id: str | None = None) -> web.Response:
    body = {"error": error.message, "code": error.code, "session_id": session_id, "field": error.field}
    headers = {"WWW-Authenticate": WWW_AUTHENTICATE} if isinstance(error, Unauthorized) else None
    return web.json_response(body, status=error.http_status, headers=headers)


async def _json_body(request: web.Request) -> object:
    # Only application/json: a cross-site page can POST text/plain or a form without a CORS preflight,
    # and a browser adds the Basic credentials it has cached for this origin (a CSRF that dials out).
    if request.content_type != "application/json":
        raise BadRequest(
            f"Content-Type must be application/json, got {request.content_type[:60]!r}",
            field="Content-Type",
            code="unsupported_media_type",
            http_status=415,
        )
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise TooLarge("the body is too large") from None
    except (ConnectionError, asyncio.IncompleteReadError):
        raise ClientGone from None
    try:
        return json.loads(body)  # UTF-8 (RFC 8259 §8.1); a decoding error is a ValueError too
    except (ValueError, RecursionError):
        raise BadRequest("the body is not valid JSON") from None


class ClientGone(Exception):
    """The client closed the connection before its request body was complete: nobody to answer."""


Handler = Callable[[web.Request, HttpApiContext, WebUser, object], Awaitable[web.Response]]


def _api(handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Authenticate, read the body, run `handler` under the service timeout, map errors to bodies."""

    async def wrapped(request: web.Request) -> web.Response:
        context = request.app[HTTP_API_KEY]
        session_id: str | None = None
        try:
            user = await authenticate(request.headers.get("Authorization"), context, request.remote or "")
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


async def _offer(request: web.Request, context: HttpApiContext, user: WebUser, body: object) -> web.Response:
    offer = offer_request(body)
    result = await context.offer_service.offer(user, offer.sdp, offer.dial, offer.metadata, offer.session_id)
    logger.info(
        "HTTP offer from %s: session %s%s",
        user.id,
        result.session_id,
        f" dialling {offer.dial!r}" if offer.dial else "",
    )
    return web.json_response(
        {
            "sdp": {"type": "answer", "sdp": result.sdp},
            "session_id": result.session_id,
            "ice_candidates": [c.to_json() for c in result.ice_candidates],
            "metadata": dict(result.metadata),
        }
    )


async def _candidate(
    request: web.Request, context: HttpApiContext, user: WebUser, body: object
) -> web.Response:
    item = candidate_request(body)
    await context.offer_service.add_candidate(user, item.session_id, item.candidate)
    return web.json_response({"session_id": item.session_id})


async def _close(request: web.Request, context: HttpApiContext, user: WebUser, body: object) -> web.Response:
    item = close_request(body)
    await context.offer_service.close(user, item.session_id)
    return web.json_response({"session_id": item.session_id})


offer_handler = _api(_offer)
candidate_handler = _api(_candidate)
close_handler = _api(_close)


async def ice_servers_handler(request: web.Request) -> web.Response:
    """`GET /iceservers`: the browser's ICE servers; TURN credentials only with valid credentials."""
    context = request.app[HTTP_API_KEY]
    header = request.headers.get("Authorization")
    authenticated = False
    if header:
        try:
            await authenticate(header, context, request.remote or "")
            authenticated = True
        except SignalingError as exc:  # Unauthorized, or RateLimited while logins queue up
            return error_response(exc)
    servers = [
        s.to_json() if authenticated else IceServerInfo(s.urls).to_json()
        for s in context.ice_servers
        if authenticated or not any(url.lower().startswith("turn") for url in s.urls)
    ]
    return web.json_response({"iceServers": servers, "authenticated": authenticated})
