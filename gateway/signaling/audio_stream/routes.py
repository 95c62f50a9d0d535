"""Start and stop a call's live audio stream over HTTP (docs/operations.md "Live audio streams").

The admin REST API (behind `require_admin`, gateway/signaling/admin_auth.py), on calls this instance
carries:
  GET    /admin/api/calls/{call_id}/audio-stream   {status: "on" | "off", ...}
  POST   /admin/api/calls/{call_id}/audio-stream   {"url"?, "sample_rate"?, "encoding"?, "inject"?}: 201
  DELETE /admin/api/calls/{call_id}/audio-stream   stops it: 200 {status: "stopped", ...}
The HTTP API (the web user's own credentials, as /webrtc/offer), on her call named by its session id or
call id, to the configured url only (no `url` field):
  POST   /webrtc/sessions/{session_id}/audio-stream   {"sample_rate"?, "encoding"?, "inject"?}: 201
  DELETE /webrtc/sessions/{session_id}/audio-stream   a stream she started (else 403)
Errors are the HTTP API's `{error, code, reason, field?}`: 400 (a bad or unknown field, named), 401,
403, 404 (no such live call, no stream), 409 (not up yet, pass-through, streaming already), 415.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Final, Protocol

from aiohttp import web

from gateway.signaling.admin_auth import refusal, require_admin
from gateway.signaling.errors import BadRequest, SignalingError
from gateway.signaling.http_api.handlers import HTTP_API_KEY, authenticate, read_body


class StreamService(Protocol):
    """The runtime's streams (gateway/runtime/audio_streams/service.py)."""

    def start(
        self, call_id: str, request: Mapping[str, object], by: str, *, own_url: bool = True
    ) -> dict[str, object]: ...

    async def stop(
        self, call_id: str, reason: str = "api", *, by: str | None = None
    ) -> dict[str, object]: ...

    def status(self, call_id: str) -> dict[str, object]: ...

    def call_of(self, user_id: str, session_or_call: str) -> str: ...


STREAMS_KEY: Final = web.AppKey("audio_streams", StreamService)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _request_body(request: web.Request) -> dict[str, object]:
    """The JSON object of a start request (an empty body: {})."""
    if not request.can_read_body:
        return {}
    raw = await read_body(request, "application/json")
    try:
        body = json.loads(raw) if raw.strip() else {}
    except (ValueError, RecursionError):
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _admin(action: Callable[[web.Request, StreamService, str, str], Awaitable[web.Response]]) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        who = await require_admin(request)
        try:
            return await action(request, request.app[STREAMS_KEY], request.match_info["call_id"], who)
        except SignalingError as exc:
            raise refusal(exc) from None

    return handler


def _user(action: Callable[[web.Request, StreamService, str, str], Awaitable[web.Response]]) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            principal = await authenticate(request, request.app[HTTP_API_KEY])
            service = request.app[STREAMS_KEY]
            call_id = service.call_of(principal.user.id, request.match_info["session_id"][:128])
            return await action(request, service, call_id, principal.user.id)
        except SignalingError as exc:
            raise refusal(exc) from None

    return handler


async def _status(request: web.Request, service: StreamService, call_id: str, who: str) -> web.Response:
    return web.json_response(service.status(call_id))


async def _start_admin(request: web.Request, service: StreamService, call_id: str, who: str) -> web.Response:
    body = await _request_body(request)
    return web.json_response({**service.start(call_id, body, f"admin {who}"), "status": "on"}, status=201)


async def _start_user(request: web.Request, service: StreamService, call_id: str, who: str) -> web.Response:
    body = await _request_body(request)
    status = service.start(call_id, body, f"user {who}", own_url=False)
    status.pop("url", None)  # the app's address is the operator's, not the web user's business
    return web.json_response({**status, "status": "on"}, status=201)


async def _stop_admin(request: web.Request, service: StreamService, call_id: str, who: str) -> web.Response:
    return web.json_response(await service.stop(call_id, "api"))


async def _stop_user(request: web.Request, service: StreamService, call_id: str, who: str) -> web.Response:
    status = await service.stop(call_id, "api", by=f"user {who}")  # hers only (403 otherwise)
    status.pop("url", None)
    return web.json_response(status)


def add_audio_stream_routes(app: web.Application, service: StreamService) -> None:
    """The routes above on `app` (which `add_signaling_routes` gave its admin auth and HTTP API)."""
    app[STREAMS_KEY] = service
    router = app.router
    path = "/admin/api/calls/{call_id}/audio-stream"
    router.add_get(path, _admin(_status))
    router.add_post(path, _admin(_start_admin))
    router.add_delete(path, _admin(_stop_admin))
    user_path = "/webrtc/sessions/{session_id}/audio-stream"
    router.add_post(user_path, _user(_start_user))
    router.add_delete(user_path, _user(_stop_user))
