"""The OpenAPI 3.1 description of the gateway's HTTP routes, served at `/openapi.json`.

Written by hand; tests/signaling/test_http_api.py checks that every route the app registers is here.
"""

from __future__ import annotations

from typing import Any, Final

from gateway import __version__

_ERROR_REF: Final = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    texts = {
        400: "Malformed body: not JSON, or a field missing or invalid (`field` names it)",
        401: "No or bad credentials (Bearer session token or Basic user id:secret)",
        404: "No such session",
        408: "The call layer did not answer in time",
        413: "Body too large",
        500: "Internal error",
    }
    return {str(s): _json(_ERROR_REF, texts[s]) for s in statuses}


_SESSION_ID: Final = {"type": "string", "pattern": "^[A-Za-z0-9._~:@+-]{1,128}$"}
_API_ERRORS: Final = (400, 401, 404, 408, 413, 500)


def openapi_document() -> dict[str, Any]:
    security: list[dict[str, list[str]]] = [{"bearer": []}, {"basic": []}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "SIP-to-WebRTC gateway",
            "version": __version__,
            "description": "Browser signaling of the gateway. The WebSocket protocol at /ws is "
            "described in docs/signaling.md; this document covers the HTTP routes.",
        },
        "paths": {
            "/": {"get": {"summary": "The softphone page", "responses": {"200": {"description": "HTML"}}}},
            "/static/{path}": {
                "get": {
                    "summary": "Static files of the softphone (JS client library, CSS)",
                    "parameters": [
                        {"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {"200": {"description": "The file"}, "404": {"description": "No such file"}},
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness and version",
                    "responses": {"200": _json({"type": "object"}, "status, version, uptime_s, ...")},
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": _json({"type": "object"}, "OpenAPI")},
                }
            },
            "/ws": {
                "get": {
                    "summary": "WebSocket upgrade for the JSON signaling protocol (docs/signaling.md)",
                    "responses": {"101": {"description": "Switching protocols"}},
                }
            },
            "/iceservers": {
                "get": {
                    "summary": "ICE servers for RTCPeerConnection; TURN entries only with credentials",
                    "security": [{}, *security],
                    "responses": {
                        "200": _json(
                            {"$ref": "#/components/schemas/IceServers"}, "The browser's ICE servers"
                        ),
                        **_errors(401),
                    },
                }
            },
            "/webrtc/offer": {
                "post": {
                    "summary": "Send a WebRTC offer, get the gateway's answer (and optionally dial)",
                    "security": security,
                    "requestBody": {
                        "required": True,
                        **_json({"$ref": "#/components/schemas/OfferRequest"}, ""),
                    },
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/OfferResponse"}, "The answer"),
                        **_errors(*_API_ERRORS),
                    },
                }
            },
            "/webrtc/ice-candidate": {
                "post": {
                    "summary": "Trickle one browser ICE candidate (null: end of candidates)",
                    "security": security,
                    "requestBody": {
                        "required": True,
                        **_json({"$ref": "#/components/schemas/CandidateRequest"}, ""),
                    },
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/SessionRef"}, "Accepted"),
                        **_errors(*_API_ERRORS),
                    },
                }
            },
            "/webrtc/close": {
                "post": {
                    "summary": "End a session and its call",
                    "security": security,
                    "requestBody": {
                        "required": True,
                        **_json({"$ref": "#/components/schemas/SessionRef"}, ""),
                    },
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/SessionRef"}, "Closed"),
                        **_errors(*_API_ERRORS),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "token from a WebSocket login"},
                "basic": {"type": "http", "scheme": "basic", "description": "user id and web secret"},
            },
            "schemas": _schemas(),
        },
    }


def _schemas() -> dict[str, Any]:
    description = {
        "type": "object",
        "required": ["type", "sdp"],
        "properties": {"type": {"enum": ["offer", "answer"]}, "sdp": {"type": "string"}},
    }
    candidate = {
        "type": ["object", "null"],
        "properties": {
            "candidate": {"type": "string"},
            "sdpMid": {"type": ["string", "null"]},
            "sdpMLineIndex": {"type": ["integer", "null"]},
            "usernameFragment": {"type": ["string", "null"]},
        },
    }
    return {
        "SessionDescription": description,
        "IceCandidate": candidate,
        "OfferRequest": {
            "type": "object",
            "required": ["sdp"],
            "properties": {
                "sdp": {"$ref": "#/components/schemas/SessionDescription"},
                "session_id": {**_SESSION_ID, "description": "renegotiate this existing session"},
                "metadata": {
                    "type": "object",
                    "description": "passed to the call layer; metadata.dial is the destination to call",
                    "properties": {"dial": {"type": "string", "description": "number or SIP URI"}},
                },
            },
        },
        "OfferResponse": {
            "type": "object",
            "required": ["sdp", "session_id", "ice_candidates", "metadata"],
            "properties": {
                "sdp": {"$ref": "#/components/schemas/SessionDescription"},
                "session_id": _SESSION_ID,
                "ice_candidates": {"type": "array", "items": {"$ref": "#/components/schemas/IceCandidate"}},
                "metadata": {"type": "object"},
            },
        },
        "CandidateRequest": {
            "type": "object",
            "required": ["session_id", "candidate"],
            "properties": {
                "session_id": _SESSION_ID,
                "candidate": {"$ref": "#/components/schemas/IceCandidate"},
            },
        },
        "SessionRef": {
            "type": "object",
            "required": ["session_id"],
            "properties": {"session_id": _SESSION_ID},
        },
        "IceServers": {
            "type": "object",
            "properties": {
                "iceServers": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["urls"],
                        "properties": {
                            "urls": {"type": "array", "items": {"type": "string"}},
                            "username": {"type": "string"},
                            "credential": {"type": "string"},
                        },
                    },
                },
                "authenticated": {"type": "boolean"},
            },
        },
        "Error": {
            "type": "object",
            "required": ["error", "code", "session_id"],
            "properties": {
                "error": {"type": "string", "description": "a readable message"},
                "code": {"type": "string", "description": "bad_request, unauthorized, not_found, ..."},
                "session_id": {"type": ["string", "null"]},
                "field": {"type": ["string", "null"], "description": "the request field at fault"},
            },
        },
    }
