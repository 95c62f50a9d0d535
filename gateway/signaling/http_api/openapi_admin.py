"""The admin API's part of /openapi.json (gateway/signaling/admin/api.py): its paths, schemas and the
`adminToken` security scheme."""

from __future__ import annotations

from typing import Any, Final

_ERROR: Final = {"$ref": "#/components/schemas/Error"}
_CALL: Final = {"$ref": "#/components/schemas/AdminCall"}
_SECURITY: Final[list[dict[str, list[str]]]] = [
    {"adminToken": []},
    {"bearer": []},
    {"basic": []},
    {"apiKey": []},
]
_ERRORS: Final = {
    400: "Malformed body or parameter (`field` names it)",
    401: "No or bad credentials: admin.token, or an admin user's session token, Basic login or API key",
    403: "Valid credentials of a user without `roles: [admin]`, or a transfer target her policy refuses",
    404: "No such live call on any instance",
    409: "The call is not connected (transfer), or a transfer is under way",
    415: "The body is not application/json",
    429: "Too many logins being checked",
}
_CALL_ID: Final = {"name": "call_id", "in": "path", "required": True, "schema": {"type": "string"}}
_SCOPE: Final = {
    "name": "scope",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "enum": ["local"]},
    "description": "`local`: this instance only (how instances ask each other; needs no cluster)",
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): _json(_ERROR, _ERRORS[s]) for s in statuses}


def admin_paths() -> dict[str, Any]:
    def operation(summary: str, responses: dict[str, Any], **more: Any) -> dict[str, Any]:
        return {"summary": summary, "tags": ["admin"], "security": _SECURITY, "responses": responses, **more}

    return {
        "/admin": {
            "get": {
                "summary": "The admin page: live calls, hang-up (logs in with an admin's user id and secret)",
                "tags": ["admin"],
                "responses": {"200": {"description": "HTML"}},
            }
        },
        "/admin/api/session": {
            "post": operation(
                "A session token for an admin user who logged in with Basic (the page keeps it)",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "token": {"type": "string"},
                                "user": {"type": "string"},
                                "expires_in": {"type": "integer", "description": "seconds"},
                            },
                        },
                        "The token, to send as Authorization: Bearer",
                    ),
                    **_errors(400, 401, 403, 429),
                },
            )
        },
        "/admin/api/calls": {
            "get": operation(
                "Live calls of every instance of the cluster (of this one alone without a cluster)",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "calls": {"type": "array", "items": _CALL},
                                "instances": {
                                    "type": "object",
                                    "additionalProperties": {"type": "string"},
                                    "description": 'per instance id: "ok", or why its calls are missing',
                                },
                            },
                        },
                        "The calls, oldest first per instance",
                    ),
                    **_errors(401, 403, 429),
                },
                parameters=[_SCOPE],
            )
        },
        "/admin/api/calls/{call_id}": {
            "get": operation(
                "One live call, wherever it runs",
                {"200": _json(_CALL, "The call"), **_errors(401, 403, 404, 429)},
                parameters=[_CALL_ID, _SCOPE],
            )
        },
        "/admin/api/calls/{call_id}/hangup": {
            "post": operation(
                "End the call: the browser is told `ended` (admin_hangup), the SIP side BYE, CANCEL or 480",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "call_id": {"type": "string"},
                                "instance": {"type": ["string", "null"]},
                                "status": {"const": "hung_up"},
                            },
                        },
                        "Ended",
                    ),
                    **_errors(401, 403, 404, 429),
                },
                parameters=[_CALL_ID, _SCOPE],
            )
        },
        "/admin/api/calls/{call_id}/trace": {
            "get": operation(
                "The call's trace as text (trace.enabled): both legs' SIP messages, the web signaling with "
                "its SDPs and the gateway's decisions, in time order (docs/operations.md)",
                {
                    "200": {
                        "description": "text/plain",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_errors(400, 401, 403, 429),
                    "404": _json(_ERROR, "No trace of this call on this instance, or tracing is off"),
                },
                parameters=[_CALL_ID],
            )
        },
        "/admin/api/calls/{call_id}/trace.pcap": {
            "get": operation(
                "The call's SIP messages (both legs) as a libpcap file: raw IPv4/IPv6 + UDP packets",
                {
                    "200": {
                        "description": "libpcap",
                        "content": {
                            "application/vnd.tcpdump.pcap": {"schema": {"type": "string", "format": "binary"}}
                        },
                    },
                    **_errors(400, 401, 403, 429),
                    "404": _json(_ERROR, "No trace of this call on this instance, or tracing is off"),
                },
                parameters=[_CALL_ID],
            )
        },
        "/admin/api/calls/{call_id}/transfer": {
            "post": operation(
                "Blind transfer: REFER to the SIP party with `target` as Refer-To (RFC 3515), as the web "
                "user's own transfer (her outbound policy applies; her page sees the progress)",
                {
                    "202": _json(
                        {
                            "type": "object",
                            "properties": {
                                "call_id": {"type": "string"},
                                "instance": {"type": ["string", "null"]},
                                "status": {"const": "transferring"},
                                "target": {"type": "string"},
                            },
                        },
                        "REFER sent; the call ends `transferred` when the SIP party's new call is up",
                    ),
                    **_errors(400, 401, 403, 404, 409, 415, 429),
                },
                parameters=[_CALL_ID, _SCOPE],
                requestBody={
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["target"],
                                "properties": {
                                    "target": {"type": "string", "description": "a number or SIP URI"}
                                },
                            }
                        }
                    },
                },
            )
        },
        "/admin/api/calls/{call_id}/recording": {
            "post": operation(
                "Start, pause, resume or stop the call's recording (any mode but `never`: recording.mode, "
                "users[].recording, routes[].recording); the web user's page shows it",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "call_id": {"type": "string"},
                                "instance": {"type": ["string", "null"]},
                                "state": {"enum": ["idle", "recording", "paused", "stopped"]},
                                "mode": {"enum": ["on_demand", "always"]},
                                "files": {"type": "array", "items": {"type": "string"}},
                            },
                        },
                        "The recording's state now and its files so far (a JSON sidecar beside each)",
                    ),
                    **_errors(400, 401, 403, 404, 409, 415, 429),
                },
                parameters=[_CALL_ID, _SCOPE],
                requestBody={
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["action"],
                                "properties": {"action": {"enum": ["start", "pause", "resume", "stop"]}},
                            }
                        }
                    },
                },
            )
        },
    }


def _leg() -> dict[str, Any]:
    number = {"type": ["number", "null"]}
    return {
        "type": "object",
        "properties": {
            "codec": {"type": ["string", "null"]},
            "packets_sent": {"type": "integer"},
            "packets_received": {"type": "integer"},
            "packets_lost": {"type": "integer"},
            "packets_recovered": {
                "type": "integer",
                "description": "of those lost, restored from RFC 2198 RED",
            },
            "jitter": {**number, "description": "seconds"},
            "rtt": {**number, "description": "seconds (RTCP)"},
            "mos": {**number, "description": "estimated (ITU-T G.107 E-model)"},
        },
    }


def admin_schemas() -> dict[str, Any]:
    text = {"type": ["string", "null"]}
    return {
        "AdminCall": {
            "type": "object",
            "required": ["call_id", "direction", "state"],
            "properties": {
                "call_id": {"type": "string"},
                "instance": {**text, "description": "the cluster instance carrying it (null alone)"},
                "direction": {"type": "string", "enum": ["inbound", "outbound"]},
                "state": {"type": "string", "description": "inviting, invited, early, connected, holding..."},
                "from": {**text, "description": "the calling party's URI"},
                "to": {**text, "description": "the called party (number or URI)"},
                "user": {**text, "description": "the web user carrying the call"},
                "dialect": {**text, "description": "json (WebSocket), http, sip_ws, room"},
                "started": {"type": "number", "description": "Unix seconds"},
                "answered": {"type": ["number", "null"]},
                "duration": {"type": "number", "description": "seconds since the answer (0 before)"},
                "media": {**text, "description": "forwarded, transcoded, passthrough"},
                "legs": {"type": "object", "additionalProperties": _leg(), "description": "web, sip"},
                "sip_call_ids": {"type": "array", "items": {"type": "string"}},
            },
        }
    }


ADMIN_TOKEN_SCHEME: Final = {
    "type": "http",
    "scheme": "bearer",
    "description": "admin.token of gateway.yaml (the admin API only)",
}
