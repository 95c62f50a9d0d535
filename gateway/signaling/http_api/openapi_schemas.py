"""The component schemas of the OpenAPI document (openapi.py): the bodies of the HTTP offer API, its
events and errors."""

from __future__ import annotations

from typing import Any, Final

from gateway.signaling.http_api.progress import EVENT_ORDER

SESSION_ID: Final = {"type": "string", "pattern": "^[A-Za-z0-9._~:@+-]{1,128}$"}


def schemas() -> dict[str, Any]:
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
                "session_id": {**SESSION_ID, "description": "the id for the new session (409 if taken)"},
                "metadata": {
                    "type": "object",
                    "description": "echoed back untouched; metadata.dial is the destination to call "
                    "(default: the API key's or the user's default_dial)",
                    "properties": {"dial": {"type": "string", "description": "number or SIP URI"}},
                },
                "transfer_of": {
                    **SESSION_ID,
                    "description": "carry out the REFER of this session's SIP party (its transfer_requested "
                    "event): the new call goes to the REFER's target (unless metadata.dial names another), "
                    "with the REFER's Replaces, and the referrer is NOTIFYed how it goes (404 no such "
                    "session, 409 no transfer requested)",
                },
            },
        },
        "OfferResponse": {
            "type": "object",
            "required": ["sdp", "session_id", "ice_candidates", "metadata"],
            "properties": {
                "sdp": {"$ref": "#/components/schemas/SessionDescription"},
                "session_id": SESSION_ID,
                "ice_candidates": {"type": "array", "items": {"$ref": "#/components/schemas/IceCandidate"}},
                "metadata": {"type": "object", "description": "the request's metadata, untouched"},
                "call_id": {"type": "string"},
                "status_url": {"type": "string", "description": "GET it for the progress"},
                "events_url": {"type": "string", "description": "server-sent progress events"},
            },
        },
        "CloseRequest": {
            "type": "object",
            "required": ["session_id"],
            "properties": {"session_id": SESSION_ID, "reason": {"type": "string", "maxLength": 256}},
        },
        "SessionStatus": {
            "type": "object",
            "required": ["session_id", "status"],
            "properties": {
                "session_id": SESSION_ID,
                "status": {
                    "enum": [
                        "received",
                        "closed",
                        "holding",
                        "resuming",
                        "sent",
                        "transferring",
                        "merging",
                        "splitting",
                    ]
                },
            },
        },
        "ControlRequest": {
            "type": "object",
            "required": ["session_id"],
            "properties": {
                "session_id": SESSION_ID,
                "digits": {"type": "string", "pattern": "^[0-9*#A-Da-d]{1,32}$", "description": "dtmf"},
                "duration_ms": {"type": "integer", "minimum": 40, "maximum": 2000, "description": "dtmf"},
                "to": {"type": "string", "description": "transfer: a number or SIP address (blind)"},
                "replaces": {
                    **SESSION_ID,
                    "description": "transfer, instead of to (attended, RFC 3891): another session of the "
                    "user's, connected, whose far end takes the call",
                },
                "body": {"type": "string", "description": "message: text for the far end (SIP MESSAGE)"},
                "with": {
                    **SESSION_ID,
                    "description": "merge: another session of the user's, whose call joins this one's "
                    "(one of the two held by her)",
                },
            },
        },
        "ProgressEvent": {
            "type": "object",
            "required": ["id", "event", "at"],
            "properties": {
                "id": {"type": "integer"},
                "event": {"enum": list(EVENT_ORDER)},
                "at": {"type": "number", "description": "Unix time"},
                "reason": {
                    "type": "string",
                    "description": "failed/ended: busy, no_such_number, hangup, ...",
                },
                "sip_status": {"type": ["integer", "null"]},
                "message": {"type": "string"},
                "digit": {"type": "string"},
                "duration_ms": {"type": "integer"},
                "by": {"enum": ["local", "remote"]},
                "body": {"type": "string", "description": "message: the SIP party's chat text"},
                "state": {
                    "enum": ["requested", "accepted", "progress", "succeeded", "failed"],
                    "description": "transfer: how the session's own transfer goes",
                },
                "to": {
                    "type": "string",
                    "description": "transfer_requested: where the SIP party's REFER asks the call to go "
                    "(place it with POST /webrtc/offer {transfer_of: <this session>})",
                },
                "code": {"type": "string", "description": "error: destination_not_allowed, ..."},
            },
        },
        "SessionProgress": {
            "type": "object",
            "required": ["session_id", "state", "events", "last_event_id"],
            "properties": {
                "session_id": SESSION_ID,
                "state": {
                    "enum": ["calling", "ringing", "early_media", "answered", "failed", "ended", "closed"]
                },
                "call_id": {"type": ["string", "null"]},
                "dial": {"type": ["string", "null"]},
                "created": {"type": "number"},
                "reason": {"type": ["string", "null"]},
                "sip_status": {"type": ["integer", "null"]},
                "message": {"type": ["string", "null"]},
                "last_event_id": {"type": "integer"},
                "events": {"type": "array", "items": {"$ref": "#/components/schemas/ProgressEvent"}},
            },
        },
        "CandidateRequest": {
            "type": "object",
            "required": ["session_id", "candidate"],
            "properties": {
                "session_id": SESSION_ID,
                "candidate": {"$ref": "#/components/schemas/IceCandidate"},
            },
        },
        "IceServers": {
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
        "Error": {
            "type": "object",
            "required": ["error", "code"],
            "properties": {
                "error": {"type": "string", "description": "a readable message"},
                "code": {"type": "integer", "description": "the HTTP status: 400, 401, 404, 408, 500, ..."},
                "session_id": {"type": "string", "description": "the session concerned, when known"},
                "reason": {
                    "type": "string",
                    "description": "bad_request, unauthorized, not_found, busy, ...",
                },
                "field": {"type": "string", "description": "the request field at fault"},
            },
        },
    }
