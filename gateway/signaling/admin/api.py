"""The admin page and REST API: live calls across instances, hang-up and blind transfer.

Routes (every `/admin/api/*` one behind `require_admin`: gateway/signaling/admin_auth.py):
  GET  /admin                                  the page (gateway/static/admin.html; it logs in itself)
  POST /admin/api/session                      a session token for the page (Basic login of an admin)
  GET  /admin/api/calls                        {calls: [...], instances: {id: "ok" | why not}}
  GET  /admin/api/calls/{call_id}              one call (gateway/ops/call_list.py says what a call shows)
  POST /admin/api/calls/{call_id}/hangup       ends it: 200 {call_id, instance, status: "hung_up"}
  POST /admin/api/calls/{call_id}/transfer     {"target": "2001"}: REFER to the SIP party, 202
  POST /admin/api/calls/{call_id}/recording    {"action": "start"}: start, pause, resume or stop its
                                               recording; 200 {call_id, instance, state, mode, files}
In a cluster a listing asks every other instance (`?scope=local` there), and a call this instance does not
carry is looked for on the others (gateway/signaling/admin/cluster.py). Errors are the HTTP API's
`{error, code, reason, field?}` (400 bad body, 401, 403, 404 no such live call, 409 not connected,
415 not JSON, 502 an instance failed).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Protocol
from urllib.parse import quote

from aiohttp import web

from gateway.signaling.admin.cluster import AdminFanOut
from gateway.signaling.admin_auth import ADMIN_AUTH_KEY, refusal, require_admin
from gateway.signaling.errors import BadRequest, NotFound, SignalingError
from gateway.signaling.http_api.handlers import read_body
from gateway.signaling.routes import PAGE_HEADERS, STATIC_DIR

logger = logging.getLogger(__name__)


class AdminService(Protocol):
    """This instance's live calls (gateway/runtime/admin_calls.py)."""

    instance: str | None

    def calls(self) -> list[dict[str, object]]: ...

    def call(self, call_id: str) -> dict[str, object]: ...

    def has(self, call_id: str) -> bool: ...

    async def hangup(self, call_id: str, by: str) -> None: ...

    async def transfer(self, call_id: str, target: str, by: str) -> None: ...

    def recording(self, call_id: str, action: object, by: str) -> dict[str, object]: ...


@dataclass(frozen=True, slots=True)
class AdminContext:
    service: AdminService
    fan_out: AdminFanOut | None = None  # None: a gateway alone


ADMIN_KEY: Final = web.AppKey("admin_api", AdminContext)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _guarded(handler: Callable[[web.Request, str], Awaitable[web.StreamResponse]]) -> Handler:
    """`require_admin`, then the handler; a `SignalingError` becomes its JSON error body."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        who = await require_admin(request)
        try:
            return await handler(request, who)
        except SignalingError as exc:
            raise refusal(exc) from None

    return wrapped


def _local(request: web.Request) -> bool:
    return request.query.get("scope") == "local"


async def admin_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "admin.html", headers=PAGE_HEADERS)


async def session_handler(request: web.Request, who: str) -> web.Response:
    """A session token for an admin who logged in with Basic (the page keeps it, not the secret)."""
    auth = request.app[ADMIN_AUTH_KEY]
    if who == "token" or ":" in who:
        raise BadRequest("log in with a user id and secret (Basic) to get a session token")
    tokens = auth.credentials.tokens
    return web.json_response({"token": tokens.issue(who), "user": who, "expires_in": tokens.ttl})


async def list_handler(request: web.Request, who: str) -> web.Response:
    context = request.app[ADMIN_KEY]
    own = context.service.instance or "local"
    calls = list(context.service.calls())
    instances: dict[str, str] = {own: "ok"}
    if context.fan_out is not None and not _local(request):
        try:
            answers = await context.fan_out.gather("/admin/api/calls", who)
        except SignalingError as exc:  # Redis unreachable: this instance's calls only, and why
            answers = {}
            instances["cluster"] = f"error: {exc}"
        for instance, answer in answers.items():
            if isinstance(answer, str):
                instances[instance] = answer
                continue
            status, body = answer
            theirs = body.get("calls") if isinstance(body, dict) else None
            if status != 200 or not isinstance(theirs, list):
                instances[instance] = f"error: HTTP {status}"
                continue
            instances[instance] = "ok"
            calls.extend(c for c in theirs if isinstance(c, dict))
    return web.json_response({"calls": calls, "instances": instances})


async def _here_or_elsewhere(
    request: web.Request,
    who: str,
    here: Callable[[str], Awaitable[web.Response]],
    action: str = "",
    body: bytes = b"",
) -> web.Response:
    """`here(call_id)` when this instance carries the call; else the answer of the instance that does
    (asked as admin `who`: admin/cluster.py); else 404."""
    context = request.app[ADMIN_KEY]
    call_id = request.match_info["call_id"]
    if context.service.has(call_id):
        return await here(call_id)
    if context.fan_out is not None and not _local(request):
        path = f"/admin/api/calls/{quote(call_id, safe='')}" + (f"/{action}" if action else "")
        method = request.method
        found = await context.fan_out.find(method, path, who, body)
        if found is not None:
            instance, status, answer = found
            logger.info("admin %s %s: carried by instance %s (%d)", method, path, instance, status)
            return web.json_response(answer, status=status)
    raise NotFound(f"no live call {call_id!r}", field="call_id")


async def get_handler(request: web.Request, who: str) -> web.Response:
    service = request.app[ADMIN_KEY].service

    async def here(call_id: str) -> web.Response:
        return web.json_response(service.call(call_id))

    return await _here_or_elsewhere(request, who, here)


async def hangup_handler(request: web.Request, who: str) -> web.Response:
    service = request.app[ADMIN_KEY].service

    async def here(call_id: str) -> web.Response:
        await service.hangup(call_id, who)
        return web.json_response({"call_id": call_id, "instance": service.instance, "status": "hung_up"})

    return await _here_or_elsewhere(request, who, here, "hangup")


async def transfer_handler(request: web.Request, who: str) -> web.Response:
    service = request.app[ADMIN_KEY].service
    raw = await read_body(request, "application/json")
    target = _field(raw, "target")
    if not isinstance(target, str):
        raise BadRequest('the body must be {"target": "<number or SIP URI>"}', field="target")

    async def here(call_id: str) -> web.Response:
        await service.transfer(call_id, target, who)
        answer = {
            "call_id": call_id,
            "instance": service.instance,
            "status": "transferring",
            "target": target,
        }
        return web.json_response(answer, status=202)

    return await _here_or_elsewhere(request, who, here, "transfer", raw)


async def recording_handler(request: web.Request, who: str) -> web.Response:
    service = request.app[ADMIN_KEY].service
    raw = await read_body(request, "application/json")
    action = _field(raw, "action")

    async def here(call_id: str) -> web.Response:
        return web.json_response({**service.recording(call_id, action, who), "instance": service.instance})

    return await _here_or_elsewhere(request, who, here, "recording", raw)


def _field(raw: bytes, name: str) -> object:
    """Field `name` of a JSON object body (None when absent)."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadRequest("the body is not valid JSON") from None
    return body.get(name) if isinstance(body, dict) else None


def add_admin_routes(app: web.Application, service: AdminService, fan_out: AdminFanOut | None = None) -> None:
    """The admin page and API on `app` (which `add_signaling_routes` gave its `AdminAuth`)."""
    app[ADMIN_KEY] = AdminContext(service, fan_out)
    router = app.router
    router.add_get("/admin", admin_page)
    router.add_post("/admin/api/session", _guarded(session_handler))
    router.add_get("/admin/api/calls", _guarded(list_handler))
    router.add_get("/admin/api/calls/{call_id}", _guarded(get_handler))
    router.add_post("/admin/api/calls/{call_id}/hangup", _guarded(hangup_handler))
    router.add_post("/admin/api/calls/{call_id}/transfer", _guarded(transfer_handler))
    router.add_post("/admin/api/calls/{call_id}/recording", _guarded(recording_handler))
    if fan_out is not None:

        async def close(app: web.Application) -> None:
            await fan_out.close()

        app.on_cleanup.append(close)
