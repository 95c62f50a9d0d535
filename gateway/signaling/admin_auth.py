"""Who may use the admin page and API: `require_admin(request)` guards any aiohttp route.

Accepted (config: gateway/config/admin.py):
  Authorization: Bearer <admin.token>          a script's credential (constant-time comparison)
  Authorization: Bearer <session token>        a logged-in user whose entry has `roles: [admin]`
  Authorization: Basic base64(id:secret)       the same user's web login (RFC 7617)
  Authorization: Bearer <API key> / X-API-Key  an API key of such a user
  X-Gateway-Forwarded + X-Gateway-User: admin:<who>   another cluster instance, for an admin it checked
                                               (signature under cluster.secret: gateway/signaling/cluster_http.py)
Refused with a JSON body `{error, code, reason}`: 401 (with `WWW-Authenticate`) without valid credentials,
403 for valid credentials of a user without the admin role, 429 while logins are throttled.

    from gateway.signaling.admin_auth import require_admin

    async def download(request: web.Request) -> web.StreamResponse:
        admin = await require_admin(request)   # raises web.HTTPException (401/403/429) otherwise
        ...
"""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import dataclass, field
from typing import Final

from aiohttp import web

from gateway.signaling.api_auth import WWW_AUTHENTICATE, ApiCredentials
from gateway.signaling.errors import Forbidden, SignalingError, Unauthorized
from gateway.signaling.http_api.handlers import ASSERTED_USER

logger = logging.getLogger(__name__)

ADMIN_ROLE: Final = "admin"
# The user another instance asserts for an admin request it fans out (gateway/signaling/admin/cluster.py):
# `admin:<who>`, never a user id (those have no colon), signed with cluster.secret (cluster_http.sign)
CLUSTER_ADMIN: Final = "admin:"


@dataclass(frozen=True, slots=True)
class AdminAuth:
    """The admin token (None: only users with the admin role) and the API's credential checks."""

    credentials: ApiCredentials
    token: str | None = field(default=None, repr=False)

    async def check(self, authorization: str | None, api_key: str | None, client: str) -> str:
        """Who the credentials name (`token` for the admin token, else the user id); `Unauthorized`,
        `Forbidden` or `RateLimited` otherwise."""
        if self.token is not None and authorization is not None:
            scheme, _, value = authorization.strip().partition(" ")
            if scheme.lower() == "bearer" and hmac.compare_digest(
                value.strip().encode("utf-8", "replace"), self.token.encode("utf-8")
            ):
                return "token"
        principal = await self.credentials.authenticate(authorization, api_key, client)
        if ADMIN_ROLE not in principal.user.roles:
            raise Forbidden(f"user {principal.user.id!r} has no admin role", code="not_admin")
        return principal.user.id


ADMIN_AUTH_KEY: Final = web.AppKey("admin_auth", AdminAuth)
ADMIN_PRINCIPAL: Final = web.RequestKey("admin_principal", str)
_HTTP_ERRORS: Final[dict[int, type[web.HTTPException]]] = {
    400: web.HTTPBadRequest,
    401: web.HTTPUnauthorized,
    403: web.HTTPForbidden,
    404: web.HTTPNotFound,
    408: web.HTTPRequestTimeout,
    409: web.HTTPConflict,
    413: web.HTTPRequestEntityTooLarge,
    415: web.HTTPUnsupportedMediaType,
    429: web.HTTPTooManyRequests,
    502: web.HTTPBadGateway,
    503: web.HTTPServiceUnavailable,
    507: web.HTTPInsufficientStorage,
}


def refusal(error: SignalingError) -> web.HTTPException:
    """`error` as an aiohttp exception with the JSON error body (raise it from a handler)."""
    body = {"error": error.message, "code": error.http_status, "reason": error.code}
    if error.field is not None:
        body["field"] = error.field
    headers = {"WWW-Authenticate": WWW_AUTHENTICATE} if error.http_status == 401 else None
    kind = _HTTP_ERRORS.get(error.http_status, web.HTTPInternalServerError)
    return kind(text=json.dumps(body), content_type="application/json", headers=headers)


async def require_admin(request: web.Request) -> str:
    """Let the request through only with admin credentials (see the module note): returns who it is
    (`token` for the admin token, else the user id), raises `web.HTTPException` with a JSON body
    otherwise (401 none or bad, 403 not an admin, 429 logins throttled, 404 when the app has no admin
    wiring). Checked once per request (the outcome is kept on the request)."""
    known = request.get(ADMIN_PRINCIPAL)
    if isinstance(known, str):
        return known
    auth = request.app.get(ADMIN_AUTH_KEY)
    if auth is None:
        raise web.HTTPNotFound()
    asserted = request.get(ASSERTED_USER)  # set only for a forward whose cluster signature was checked
    if isinstance(asserted, str) and asserted.startswith(CLUSTER_ADMIN):
        request[ADMIN_PRINCIPAL] = asserted
        return asserted
    try:
        who = await auth.check(
            request.headers.get("Authorization"), request.headers.get("X-API-Key"), request.remote or ""
        )
    except SignalingError as exc:
        if isinstance(exc, Unauthorized | Forbidden):
            logger.warning(
                "admin %s %s refused from %s: %s", request.method, request.path, request.remote, exc
            )
        raise refusal(exc) from None
    request[ADMIN_PRINCIPAL] = who
    return who
