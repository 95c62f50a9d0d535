"""The HTTP offer/answer API's request bodies, decoded and checked (sans-I/O, like ws/protocol.py).

    POST /webrtc/offer          {sdp: {type: "offer", sdp}, session_id?, metadata?: {dial?, ...},
                                 transfer_of?}                        (the session whose REFER it obeys)
    POST /webrtc/ice-candidate  {session_id, candidate: {candidate, sdpMid, sdpMLineIndex} | null}
    POST /webrtc/close          {session_id, reason?}
    POST /webrtc/hold, /webrtc/resume   {session_id}
    POST /webrtc/dtmf           {session_id, digits, duration_ms?}   (0-9 * # A-D, 40-2000 ms each)
    POST /webrtc/transfer       {session_id, to}                     (blind: REFER to the far end)
                                {session_id, replaces}               (attended: to another session's
                                                                      far end, RFC 3891)
    POST /webrtc/message        {session_id, body}                   (chat: MESSAGE in the call's dialog)

`metadata` is a JSON object echoed back untouched; `metadata.dial`, when present, is the destination to
call (a number or SIP URI); without it the credentials' default destination is called, or with
`transfer_of` (a session of the caller's whose SIP party sent REFER: `transfer_requested`) the REFER's
target.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from gateway.signaling.errors import BadRequest
from gateway.signaling.service import JsonValue
from gateway.signaling.ws.protocol import DTMF_DIGITS, MAX_DESTINATION_CHARS, MAX_INFO_CHARS, read_sdp
from sdp import IceCandidateInit, SdpError, candidate_from_json

_SESSION_ID: Final = re.compile(r"[A-Za-z0-9._~:@+-]{1,128}\Z")
MAX_REASON_CHARS: Final = 256


@dataclass(frozen=True, slots=True)
class OfferRequest:
    sdp: str
    session_id: str | None = None
    dial: str | None = None
    metadata: Mapping[str, JsonValue] = field(default_factory=dict)
    transfer_of: str | None = None  # the caller's session whose REFER this call carries out


@dataclass(frozen=True, slots=True)
class CandidateRequest:
    session_id: str
    candidate: IceCandidateInit | None


@dataclass(frozen=True, slots=True)
class CloseRequest:
    session_id: str
    reason: str | None = None  # why the client closes (logged)


def _object(data: object) -> Mapping[str, object]:
    if not isinstance(data, dict):
        raise BadRequest(f"the body must be a JSON object, got {type(data).__name__}")
    return data


def _session_id(data: Mapping[str, object], required: bool = True, name: str = "session_id") -> str | None:
    """The session id in field `name` (`session_id`, or one naming another session of the caller's)."""
    value = data.get(name)
    if value is None:
        if required:
            raise BadRequest(f"{name} is required", field=name)
        return None
    if not isinstance(value, str) or not _SESSION_ID.match(value):
        raise BadRequest(f"{name} {str(value)[:40]!r} is not a session id", field=name)
    return value


def offer_request(data: object) -> OfferRequest:
    body = _object(data)
    sdp = read_sdp(body, "sdp", "offer")
    if sdp is None:
        raise BadRequest("sdp is required", field="sdp")
    metadata = body.get("metadata", {})
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise BadRequest("metadata must be a JSON object", field="metadata")
    dial = metadata.get("dial")
    if dial is not None:
        if not isinstance(dial, str) or not dial.strip() or len(dial) > MAX_DESTINATION_CHARS:
            raise BadRequest("metadata.dial must be a number or SIP URI", field="metadata.dial")
        if any(ch.isspace() or ord(ch) < 0x20 for ch in dial.strip()):
            raise BadRequest("metadata.dial must not contain spaces", field="metadata.dial")
        dial = dial.strip()
    transfer_of = _session_id(body, required=False, name="transfer_of")
    return OfferRequest(sdp, _session_id(body, required=False), dial, metadata, transfer_of)


def candidate_request(data: object) -> CandidateRequest:
    body = _object(data)
    session_id = _session_id(body)
    if session_id is None:
        raise BadRequest("session_id is required", field="session_id")
    if "candidate" not in body:
        raise BadRequest("candidate is required (null ends the candidates)", field="candidate")
    raw = body["candidate"]
    if raw is None:
        return CandidateRequest(session_id, None)
    try:
        return CandidateRequest(session_id, candidate_from_json(raw))
    except SdpError as exc:
        raise BadRequest(f"bad ICE candidate: {exc.message}", field="candidate") from None


def close_request(data: object) -> CloseRequest:
    body = _object(data)
    session_id = _session_id(body)
    if session_id is None:
        raise BadRequest("session_id is required", field="session_id")
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS):
        raise BadRequest(f"reason must be a string of at most {MAX_REASON_CHARS} characters", field="reason")
    return CloseRequest(session_id, reason)


@dataclass(frozen=True, slots=True)
class ControlRequest:
    """An action on a session's call: hold, resume, dtmf, transfer or message (the fields it takes;
    a transfer has `to` or `replaces`)."""

    action: str
    session_id: str
    digits: str = ""
    duration_ms: int | None = None
    to: str = ""
    body: str = ""
    replaces: str = ""  # attended transfer: the caller's other session, whose far end takes the call
    other: str = ""  # merge (`with`): the caller's other session, whose call joins this one's


CONTROL_ACTIONS: Final = ("hold", "resume", "dtmf", "transfer", "message", "merge", "split")


def control_request(action: str, data: object) -> ControlRequest:
    """``POST /webrtc/{action}``'s body (the module note), checked as the WebSocket protocol checks the
    same request: the error names the field."""
    body = _object(data)
    session_id = _session_id(body)
    assert session_id is not None  # required
    if action == "dtmf":
        digits = _text(body, "digits", 32).upper()
        bad = sorted(set(digits) - DTMF_DIGITS)
        if bad:
            raise BadRequest(f"digits may hold only 0-9 * # A-D, not {''.join(bad)!r}", field="digits")
        duration = body.get("duration_ms")
        if duration is not None and (
            not isinstance(duration, int) or isinstance(duration, bool) or not 40 <= duration <= 2000
        ):
            raise BadRequest(
                f"duration_ms must be an integer from 40 to 2000, got {duration!r}", field="duration_ms"
            )
        return ControlRequest(action, session_id, digits=digits, duration_ms=duration)
    if action == "transfer":
        if body.get("replaces") is not None:
            return _attended(body, session_id)
        to = _text(body, "to", MAX_DESTINATION_CHARS).strip()
        if not to or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in to):
            raise BadRequest("to must be a number or SIP address, without control characters", field="to")
        return ControlRequest(action, session_id, to=to)
    if action == "message":
        text = _text(body, "body", MAX_INFO_CHARS)
        if len(text.encode("utf-8")) > MAX_INFO_CHARS:
            raise BadRequest(f"body is longer than {MAX_INFO_CHARS} bytes in UTF-8", field="body")
        return ControlRequest(action, session_id, body=text)
    if action == "merge":  # three-way calls: `with` names her other session, one of the two held
        other = _session_id(body, name="with")
        if other is None:
            raise BadRequest("with is required: the session whose call joins this one's", field="with")
        if other == session_id:
            raise BadRequest("a call cannot be merged with itself: with names session_id", field="with")
        return ControlRequest(action, session_id, other=other)
    return ControlRequest(action, session_id)


def _attended(body: Mapping[str, object], session_id: str) -> ControlRequest:
    """An attended transfer: `replaces` names the caller's other session (her consultation call)."""
    if body.get("to") is not None:
        raise BadRequest("a transfer takes to (blind) or replaces (attended), not both", field="replaces")
    replaces = _session_id(body, name="replaces")
    assert replaces is not None  # present
    if replaces == session_id:
        raise BadRequest("replaces must name another session than session_id", field="replaces")
    return ControlRequest("transfer", session_id, replaces=replaces)


def _text(data: Mapping[str, object], name: str, max_chars: int) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{name} is required: a non-empty string", field=name)
    if len(value) > max_chars:
        raise BadRequest(f"{name} is longer than {max_chars} characters", field=name)
    return value
