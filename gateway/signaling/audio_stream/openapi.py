"""The audio stream routes' part of /openapi.json (gateway/signaling/audio_stream/routes.py)."""

from __future__ import annotations

from typing import Any, Final

_ERROR: Final = {"$ref": "#/components/schemas/Error"}
_ADMIN: Final[list[dict[str, list[str]]]] = [
    {"adminToken": []},
    {"bearer": []},
    {"basic": []},
    {"apiKey": []},
]
_OPTIONS: Final = {
    "sample_rate": {"type": "integer", "enum": [8000, 16000]},
    "encoding": {"type": "string", "enum": ["pcm16", "opus"]},
    "inject": {"type": "string", "enum": ["none", "sip", "web", "both"],
               "description": "where the app's audio is mixed in"},
}  # fmt: skip
_STATUS: Final = {
    "type": "object",
    "properties": {
        "call_id": {"type": "string"},
        "stream_id": {"type": "string"},
        "status": {"type": "string", "enum": ["on", "off", "stopped"]},
        "url": {"type": "string", "description": "admin routes only"},
        **_OPTIONS,
        "started_by": {"type": "string", "description": "policy, admin <who> or user <id>"},
        "connected": {"type": "boolean"},
        "error": {"type": ["string", "null"], "description": "why the stream gave up its app"},
        "frames": {"type": "integer"},
        "frames_dropped": {"type": "integer"},
        "injected_bytes": {"type": "integer"},
    },
}
_ERRORS: Final = {
    400: "A bad or unknown field (`field` names it), or a body that is not a JSON object",
    401: "No or bad credentials",
    403: "Not an admin (admin routes), or a stream the web user did not start (stop)",
    404: "No such live call (`call_id` / `session_id`), or no stream to stop",
    409: "The call is not answered yet, streams already, passes its media through; or no url is configured",
    415: "The body is not application/json",
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _responses(ok: str, description: str, *errors: int) -> dict[str, Any]:
    return {ok: _json(_STATUS, description), **{str(s): _json(_ERROR, _ERRORS[s]) for s in errors}}


def _body(url: bool) -> dict[str, Any]:
    properties = {
        **({"url": {"type": "string", "description": "ws:// or wss://"}} if url else {}),
        **_OPTIONS,
    }
    return {"required": False, "content": {"application/json": {"schema": {"type": "object",
            "properties": properties, "additionalProperties": False}}}}  # fmt: skip


def audio_stream_paths(user_security: list[dict[str, list[str]]]) -> dict[str, Any]:
    """The admin's and the web user's audio stream paths (docs/operations.md "Live audio streams")."""
    call = [{"name": "call_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    session = [{"name": "session_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    admin = {"tags": ["admin"], "security": _ADMIN, "parameters": call}
    user = {"security": user_security, "parameters": session}
    return {
        "/admin/api/calls/{call_id}/audio-stream": {
            "get": {"summary": "The call's live audio stream", **admin,
                    "responses": _responses("200", "on or off", 401, 403, 404)},
            "post": {"summary": "Stream the call's audio to an app over a WebSocket", **admin,
                     "requestBody": _body(url=True), "responses": _responses("201", "Started", 400, 401, 403, 404, 409, 415)},
            "delete": {"summary": "Stop the call's audio stream (the app gets `stop`)", **admin,
                       "responses": _responses("200", "Stopped", 401, 403, 404)},
        },
        "/webrtc/sessions/{session_id}/audio-stream": {
            "post": {"summary": "Stream her call's audio to the configured app", **user,
                     "requestBody": _body(url=False), "responses": _responses("201", "Started", 400, 401, 404, 409, 415)},
            "delete": {"summary": "Stop the audio stream she started", **user,
                       "responses": _responses("200", "Stopped", 401, 403, 404)},
        },
    }  # fmt: skip
