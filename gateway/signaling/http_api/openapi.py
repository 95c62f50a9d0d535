"""The OpenAPI 3.1 description of the gateway's HTTP routes, served at `/openapi.json`.

Written by hand; tests/signaling/http_api/test_http_api.py checks that every route the app registers is here.
"""

from __future__ import annotations

from typing import Any, Final

from gateway import __version__
from gateway.signaling.audio_stream.openapi import audio_stream_paths
from gateway.signaling.http_api.openapi_admin import ADMIN_TOKEN_SCHEME, admin_paths, admin_schemas
from gateway.signaling.http_api.openapi_schemas import SESSION_ID, schemas

_ERROR_REF: Final = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int, **overrides: str) -> dict[str, Any]:
    """The JSON error responses of ``statuses``; ``overrides``: a text per status ("e400"...) where an
    endpoint's body is not JSON (WHIP's SDP)."""
    texts = {
        400: "Malformed body: not JSON, or a field missing or invalid (`field` names it)",
        401: "No or bad credentials (Bearer API key or session token, X-API-Key, or Basic user id:secret)",
        403: "The destination is not allowed for this user",
        404: "No such session (or another user's); for an offer: no such number",
        408: "The call layer did not answer in time; for an offer: the PBX is unreachable",
        409: "The session_id chosen is taken",
        413: "Body too large",
        415: "The body is not application/json",
        429: "Too many logins being checked, or a per-user or per-API-key cap (`reason` names it: "
        "too_many_calls, too_many_unanswered_calls, port_budget, too_many_event_streams, and the key's own "
        "users[].api_keys[] max_calls, max_unanswered, max_event_streams: too_many_calls_for_key, "
        "too_many_unanswered_calls_for_key, too_many_event_streams_for_key)",
        500: "Internal error",
        502: "The far end refused the call before the answer existed (busy, declined, ...)",
        503: "Too many event streams open in all",
        412: "If-Match does not match the session's ETag",
        501: "Not supported by this gateway",
        422: "An ICE restart this session cannot do now (ICE not connected yet, a pass-through call)",
        428: "An ICE restart without If-Match (RFC 9725 §4.3.3: If-Match: *)",
    }
    return {str(s): _json(_ERROR_REF, overrides.get(f"e{s}", texts[s])) for s in statuses}


# WHIP's and WHEP's bodies are SDP, not JSON: their 400 and 415 say so (the error body is JSON as ever)
_SDP_ERRORS: Final = {
    "e400": "The offer is not valid SDP, or one the gateway cannot answer (`field` names the line)",
    "e415": "The body is not application/sdp",
}
_SDPFRAG_ERRORS: Final = {
    "e400": "The sdpfrag is not valid (`field` names the line)",
    "e415": "The body is not application/trickle-ice-sdpfrag",
}


_API_ERRORS: Final = (400, 401, 404, 408, 413, 415, 429, 500)
_OFFER_ERRORS: Final = (400, 401, 403, 404, 408, 409, 413, 415, 429, 500, 502)
# the call features of `/ws` on an HTTP session (issue 33): the progress events report what follows
_CONTROLS: Final = (
    ("record", "The session's call's recording: `action` start, pause, resume or stop (recording.mode on_demand "
     "or always); the answer's `status` is its state (idle, recording, paused, stopped), with `mode` and "
     "`files`; `recording` follows in the events", "session_id, action"),
    ("hold", "Put the session's call on hold (re-INVITE sendonly); `held` follows in the events", "session_id"),
    ("resume", "Resume the session's held call; `resumed` follows in the events", "session_id"),
    ("dtmf", "Send keypad digits in the session's call (RFC 4733, or SIP INFO with sip.dtmf_mode)",
     "session_id, digits, duration_ms?"),
    ("transfer", "Transfer the session's call (REFER): blind to `to`, or attended to the far end of the "
     "user's other connected session `replaces` (Replaces, RFC 3891); `transfer` events follow, the call "
     "ends `transferred`", "session_id, and to or replaces"),
    ("message", "Chat in the session's call: a SIP MESSAGE in its dialog; `message_result` follows",
     "session_id, body"),
    ("merge", "Three-way call: merge the session's call with the call of the user's other session `with` "
     "(one active, the other held by her) into one conference mixed in the gateway; `merged` follows in "
     "both sessions' events", "session_id, with"),
    ("split", "Take the session's call out of its conference: it is held again; `split` follows",
     "session_id"),
)  # fmt: skip
_SESSION_PARAM: Final = {"name": "session_id", "in": "path", "required": True, "schema": SESSION_ID}


def openapi_document() -> dict[str, Any]:
    security: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}, {"basic": []}]
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
            "/readyz": {
                "get": {
                    "summary": "Readiness: can this instance serve web users (listeners, RTP ports); the PBX's "
                    "state shows as a degraded check, never unready (docs/operations.md)",
                    "responses": {
                        "200": _json({"type": "object"}, 'status "ready", checks: state, since, detail each'),
                        "503": _json({"type": "object"}, 'status "not ready" or "draining", the same checks'),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics (text exposition format); here or on metrics.listen's own "
                    "listener, behind metrics.token when one is set",
                    "responses": {
                        "200": {"description": "text/plain; version=0.0.4", "content": {"text/plain": {}}},
                        "401": {
                            "description": "metrics.token is set and the request's Bearer token is not it"
                        },
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": _json({"type": "object"}, "OpenAPI")},
                }
            },
            "/docs": {
                "get": {
                    "summary": "This document, readable (rendered in the browser by the gateway's own script)",
                    "responses": {"200": {"description": "HTML"}},
                }
            },
            "/favicon.ico": {
                "get": {"summary": "The softphone's icon (SVG)", "responses": {"200": {"description": "SVG"}}}
            },
            "/contacts": {
                "get": {
                    "summary": "The web users the caller may call, with presence (online: an open session)",
                    "security": security,
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "contacts": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {
                                                "id": {"type": "string"},
                                                "display_name": {"type": "string"},
                                                "number": {"type": "string"},
                                                "online": {"type": "boolean"},
                                            },
                                        },
                                    }
                                },
                            },
                            "contacts sorted by name",
                        ),
                        **_errors(401, 429),
                    },
                }
            },
            "/ws": {
                "get": {
                    "summary": "WebSocket upgrade for the JSON signaling protocol (docs/signaling.md)",
                    "responses": {"101": {"description": "Switching protocols"}},
                }
            },
            "/jsonrpc": {
                "get": {
                    "summary": "WebSocket upgrade for JSON-RPC 2.0 signaling (announce, offer, answer, "
                    "ice_candidate, disconnect; in a call hold, resume, dtmf, transfer, message; "
                    "docs/signaling.md). Credentials here (headers, ?api_key=, ?token=) or in announce",
                    "security": [{}, *security],
                    "parameters": [
                        {"name": "api_key", "in": "query", "required": False, "schema": {"type": "string"}},
                        {"name": "token", "in": "query", "required": False, "schema": {"type": "string"}},
                    ],
                    "responses": {"101": {"description": "Switching protocols"}, **_errors(401, 429)},
                }
            },
            **_whip_paths(security),
            **admin_paths(),  # the admin page and API (openapi_admin.py)
            **audio_stream_paths(security),  # live audio streams (audio_stream/openapi.py)
            **_whep_paths(security),
            **_rooms_paths(security),
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
                    "summary": "Send a WebRTC offer and call metadata.dial (or the credentials' default "
                    "destination; with transfer_of, the target of that session's REFER); the answer comes "
                    "as soon as it exists, before the far end picks up",
                    "security": security,
                    "requestBody": {
                        "required": True,
                        **_json({"$ref": "#/components/schemas/OfferRequest"}, ""),
                    },
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/OfferResponse"}, "The answer"),
                        **_errors(
                            *_OFFER_ERRORS,
                            e409="The session_id chosen is taken (one of the caller's own sessions: an offer "
                            "for it restarts its ICE while its call is connected, or, from a new "
                            "RTCPeerConnection or while the call waits for its lost media, renews the "
                            "media on a new web leg; else 409); or the "
                            "transfer_of session has no call or no transfer requested (`field` names which)",
                        ),
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
                        "200": _json({"$ref": "#/components/schemas/SessionStatus"}, "status: received"),
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
                        **_json({"$ref": "#/components/schemas/CloseRequest"}, ""),
                    },
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/SessionStatus"}, "status: closed"),
                        **_errors(*_API_ERRORS),
                    },
                }
            },
            **{
                f"/webrtc/{action}": {
                    "post": {
                        "summary": summary,
                        "security": security,
                        "requestBody": {
                            "required": True,
                            **_json({"$ref": "#/components/schemas/ControlRequest"}, fields),
                        },
                        "responses": {
                            "200": _json({"$ref": "#/components/schemas/SessionStatus"}, "done or under way"),
                            **_errors(
                                *_API_ERRORS,
                                409,
                                e409="The session has no call in progress, or its "
                                "state refuses the action (a hold during a hold...)",
                            ),
                        },
                    }
                }
                for action, summary, fields in _CONTROLS
            },
            "/webrtc/sessions/{session_id}": {
                "get": {
                    "summary": "The session's call progress (for polling); readable for 120 s after it ended",
                    "security": security,
                    "parameters": [_SESSION_PARAM],
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/SessionProgress"}, "The progress"),
                        **_errors(401, 404, 429),
                    },
                }
            },
            "/webrtc/sessions/{session_id}/events": {
                "get": {
                    "summary": "The session's progress events as server-sent events (event: ringing, "
                    "early_media, answered, failed, ended, dtmf, held, resumed, web_lost (the gateway stopped "
                    "receiving the browser's audio: cause, seconds; the call waits web_auth.reconnect_grace "
                    "for a new offer with this session_id), renewed (that offer's new web leg carries the "
                    "call), message (chat text from the SIP "
                    "party: MESSAGE in the call's dialog, also on the call's data channel), message_result "
                    "(the answer to the browser's data channel text), transfer (state of the session's own "
                    "transfer), transfer_requested (to: the SIP party's REFER, carried out by POST "
                    "/webrtc/offer with transfer_of), error (code: a control refused after its 200), "
                    "quality (legs: per leg web and sip its mos, loss, remote_loss, jitter, rtt and poor; "
                    "poor: the legs under quality.poor_mos), recording (state, mode, files: the call's recording), closed; "
                    "data: a "
                    "ProgressEvent); resumes after Last-Event-ID or ?after=; ends after the final event",
                    "security": security,
                    "parameters": [
                        _SESSION_PARAM,
                        {"name": "after", "in": "query", "required": False, "schema": {"type": "integer"}},
                        {
                            "name": "Last-Event-ID",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "text/event-stream",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}},
                        },
                        **_errors(400, 401, 404, 429, 503),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "token from a WebSocket login"},
                "basic": {"type": "http", "scheme": "basic", "description": "user id and web secret"},
                "adminToken": ADMIN_TOKEN_SCHEME,
                "apiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-API-Key",
                    "description": "users[].api_keys[].key (also accepted as Authorization: Bearer <key>)",
                },
            },
            "schemas": {**schemas(), **admin_schemas()},
        },
    }


def _whip_paths(security: list[dict[str, list[str]]]) -> dict[str, Any]:
    """WHIP (RFC 9725): the offer and answer are application/sdp, trickle an sdpfrag."""
    sdp_body = {"required": True, "content": {"application/sdp": {"schema": {"type": "string"}}}}
    created = {
        "description": "The SDP answer; Location: the session resource; ETag; Link: rel=ice-server",
        "content": {"application/sdp": {"schema": {"type": "string"}}},
    }
    post = {
        "summary": "WHIP: send an SDP offer, call the credentials' default destination (or {destination})",
        "security": security,
        "requestBody": sdp_body,
        "responses": {"201": created, **_errors(400, 401, 403, 404, 408, 413, 415, 429, 500, **_SDP_ERRORS)},
    }
    options = {
        "summary": "WHIP endpoint discovery (RFC 9725 §4.2): Accept-Post: application/sdp, Link: rel=ice-server",
        "responses": {
            "204": {"description": "Accept-Post; Link: STUN for anyone, TURN with valid credentials"},
            **_errors(401),
        },
    }
    resource = [_SESSION_PARAM]
    destination = [{"name": "destination", "in": "path", "required": True, "schema": {"type": "string"}}]
    return {
        "/whip": {"post": post, "options": options},
        "/whip/{destination}": {
            "post": {**post, "parameters": destination},
            "options": {**options, "parameters": destination},
        },
        "/whip/sessions/{session_id}": {
            "patch": {
                "summary": "Trickle ICE candidates (application/trickle-ice-sdpfrag), or an ICE restart: new "
                "ice-ufrag/ice-pwd with If-Match: * (RFC 9725 §4.3.3)",
                "security": security,
                "parameters": resource,
                "requestBody": {
                    "required": True,
                    "content": {"application/trickle-ice-sdpfrag": {"schema": {"type": "string"}}},
                },
                "responses": {
                    "200": {
                        "description": "ICE restarted: the gateway's new ice-ufrag/ice-pwd and candidates; "
                        "ETag: the new ICE session's",
                        "content": {"application/trickle-ice-sdpfrag": {"schema": {"type": "string"}}},
                    },
                    "204": {"description": "Candidates taken"},
                    **_errors(400, 401, 404, 412, 415, 422, 428, **_SDPFRAG_ERRORS),
                },
            },
            "delete": {
                "summary": "End the WHIP session and its call",
                "security": security,
                "parameters": resource,
                "responses": {"200": {"description": "Ended"}, **_errors(401, 404)},
            },
        },
    }


_ROOM_FORBIDDEN: Final = (
    "A room the user may not watch (not its owner, and rooms.rules do not allow it), open or not"
)


def _whep_paths(security: list[dict[str, list[str]]]) -> dict[str, Any]:
    """WHEP (draft-ietf-wish-whep): playback of a room's mix, or of a WHIP / HTTP API session's far end
    (gateway/signaling/whip/whep.py, gateway/runtime/playback.py)."""
    sdp_text = {"application/sdp": {"schema": {"type": "string"}}}
    resource = [_SESSION_PARAM]
    return {
        "/whep/{room_id}": {
            "post": {
                "summary": "WHEP: send a recvonly SDP offer, hear the room's mix (browsers and SIP parties), "
                "or the far end's audio of a WHIP / HTTP API session's call",
                "security": security,
                "parameters": [
                    {
                        "name": "room_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                        "description": "A room's id, or the id of one of the caller's WHIP / HTTP API "
                        "sessions (or of its call): the far end's audio, in its own codec (PCMU, PCMA...)",
                    }
                ],
                "requestBody": {"required": True, "content": sdp_text},
                "responses": {
                    "201": {
                        "description": "The SDP answer; Location: the player resource",
                        "content": sdp_text,
                    },
                    **_errors(400, 401, 404, 409, 413, 415, 501, **_SDP_ERRORS),
                    "403": _json(_ERROR_REF, _ROOM_FORBIDDEN),
                },
            }
        },
        "/whep/sessions/{session_id}": {
            "patch": {
                "summary": "Trickle ICE and ICE restarts are not offered on a player: 405",
                "parameters": resource,
                "responses": {"405": {"description": "Method not allowed (Allow: DELETE)"}},
            },
            "delete": {
                "summary": "End the playback",
                "security": security,
                "parameters": resource,
                "responses": {"200": {"description": "Ended"}, **_errors(401, 404)},
            },
        },
    }


def _rooms_paths(security: list[dict[str, list[str]]]) -> dict[str, Any]:
    """Rooms ("WebRTC Implementation in FastAPI"): peers relay offers, answers and candidates; docs/signaling.md."""
    anyone = [{}, *security]  # rooms.allow_anonymous
    room = {"name": "room_id", "in": "path", "required": True, "schema": {"type": "string"}}
    peer = {"name": "peer_id", "in": "path", "required": True, "schema": {"type": "string"}}
    rooms = {
        "type": "object",
        "properties": {
            "rooms": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "room_id": {"type": "string"},
                        "peers": {"type": "integer"},
                        "owner": {"type": ["string", "null"]},
                    },
                },
            }
        },
    }
    peers = {
        "type": "object",
        "properties": {
            "room_id": {"type": "string"},
            "peers": {"type": "array", "items": {"type": "string"}},
        },
    }
    return {
        "/webrtc/signaling/{room_id}/{peer_id}": {
            "get": {
                "summary": "WebSocket upgrade: join a room as peer_id; offer/answer/ice_candidate with "
                "target_peer_id are relayed with from_peer_id; peer_joined, peer_left, existing_peers. "
                "Credentials here (headers, ?api_key=, ?token=) or in a first `login` message. "
                "`dial {to}` calls a SIP party into the room (`dialing`, then `sip_party` events; the "
                "gateway joins as the peer `gateway` and mixes the audio), `hangup {call_id}` ends one",
                "security": anyone,
                "parameters": [
                    room,
                    peer,
                    {"name": "api_key", "in": "query", "required": False, "schema": {"type": "string"}},
                    {"name": "token", "in": "query", "required": False, "schema": {"type": "string"}},
                ],
                "responses": {"101": {"description": "Switching protocols"}, **_errors(400, 401, 404)},
            }
        },
        "/webrtc/rooms": {
            "get": {
                "summary": "The open rooms the user may watch (its own, and those rooms.rules allow), "
                "their owners and how many peers each holds",
                "security": anyone,
                "responses": {"200": _json(rooms, "Rooms, oldest first"), **_errors(401, 404)},
            }
        },
        "/webrtc/rooms/{room_id}/peers": {
            "get": {
                "summary": "The peers of a room, in joining order",
                "security": anyone,
                "parameters": [room],
                "responses": {
                    "200": _json(peers, "Peers"),
                    **_errors(400, 401, 404),
                    "403": _json(_ERROR_REF, _ROOM_FORBIDDEN),
                },
            }
        },
        "/webrtc/client": {
            "get": {
                "summary": "The rooms demo page: audio (and chat on a data channel) between browsers",
                "responses": {"200": {"description": "HTML"}, "404": {"description": "Rooms are disabled"}},
            }
        },
    }
