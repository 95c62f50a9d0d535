"""The params of each JSON-RPC method, decoded and checked (sans-I/O). A bad value raises `BadRequest`
naming the field, which the dispatcher answers with -32602 Invalid params.

    announce       {peer_id, capabilities?, credentials?: {api_key} | {token} | {user, secret}}
    offer          {sdp: "<offer>" | {type: "offer", sdp}, type?: "offer", to? | target_peer_id?, metadata?: {dial?},
                    transfer_of?} | {call_id, sdp}          (the latter: an ICE restart of that call)
    answer         {call_id, sdp: "<answer>" | {type: "answer", sdp}, type?: "answer"}
    ice_candidate  {call_id?, candidate: {candidate, sdpMid, sdpMLineIndex} | "<candidate line>" | null}
    disconnect     {call_id?, reason?}
    hold, resume   {call_id?}
    dtmf           {call_id?, digits, duration_ms?}       (0-9 * # A-D, at most 32; 40-2000 ms each)
    transfer       {call_id?, to} | {call_id?, replaces}   (blind, or attended to another call's far end)
    message        {call_id?, body}                       (chat: a MESSAGE in the call's dialog)
    record         {call_id?, action}                     (start, pause, resume or stop its recording)
    merge          {call_ids: [active, held]}             (three-way: one conference mixed in the gateway)
    split          {call_id}                              (out of its conference: held again)
    ping           {}

The document's browser client sends `offer` with `{sdp: offer.sdp, type: offer.type}` and no
destination: the credentials' default destination is called then (docs/signaling.md). The call
controls' fields are checked by the HTTP API's `control_request` (POST /webrtc/{action}): one rule for
both dialects.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from gateway.signaling.errors import BadRequest
from gateway.signaling.http_api.offer_protocol import control_request
from gateway.signaling.service import JsonValue
from gateway.signaling.ws.protocol import MAX_DESTINATION_CHARS, MAX_SDP_CHARS
from gateway.signaling.ws.recording import RECORD_ACTIONS
from sdp import IceCandidateInit, SdpError, candidate_from_json

_PEER_ID: Final = re.compile(r"[A-Za-z0-9._~:@+-]{1,128}\Z")
MAX_REASON_CHARS: Final = 256
MAX_CAPABILITIES_CHARS: Final = 2048


@dataclass(frozen=True, slots=True)
class Credentials:
    api_key: str | None = None
    token: str | None = None
    user: str | None = None
    secret: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.api_key is None and self.token is None and (self.user is None or self.secret is None):
            raise BadRequest("credentials need api_key, token, or user and secret", field="credentials")


@dataclass(frozen=True, slots=True)
class Announce:
    peer_id: str
    capabilities: JsonValue = None
    credentials: Credentials | None = None

    def __post_init__(self) -> None:
        if not _PEER_ID.match(self.peer_id):
            raise BadRequest(f"peer_id {self.peer_id[:40]!r} is not a peer id", field="peer_id")


@dataclass(frozen=True, slots=True)
class OfferParams:
    sdp: str
    to: str | None = None
    target_peer_id: str | None = None  # another announced peer: relayed end to end (relay.py)
    transfer_of: str | None = None  # the peer's call whose SIP party asked for this one (transfer_requested)
    call_id: str | None = None  # one of the peer's calls: the offer restarts its ICE (issue 34)

    def __post_init__(self) -> None:
        if self.call_id is not None and (self.to, self.target_peer_id, self.transfer_of) != (None,) * 3:
            raise BadRequest("an offer for call_id (an ICE restart) places no call: no to", field="call_id")
        if self.target_peer_id is not None:
            if not _PEER_ID.match(self.target_peer_id):
                raise BadRequest("target_peer_id is not a peer id", field="target_peer_id")
            if self.to is not None:
                raise BadRequest("give to or target_peer_id, not both", field="target_peer_id")
            if self.transfer_of is not None:
                raise BadRequest("a call to a peer carries out no transfer", field="transfer_of")


@dataclass(frozen=True, slots=True)
class AnswerParams:
    call_id: str
    sdp: str


@dataclass(frozen=True, slots=True)
class CandidateParams:
    call_id: str | None
    candidate: IceCandidateInit | None


@dataclass(frozen=True, slots=True)
class DisconnectParams:
    call_id: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ControlParams:
    """`hold`, `resume`, `dtmf`, `transfer` or `message` on the peer's call `call_id` (None: its only
    call), with the fields its `action` takes; a transfer has `to` (blind) or `replaces` (attended)."""

    action: str
    call_id: str | None = None
    digits: str = ""
    duration_ms: int | None = None
    to: str = ""
    replaces: str | None = None
    body: str = ""
    recording: str = ""  # record: start, pause, resume or stop
    other: str | None = None  # merge: the second of `call_ids`


Params = Announce | OfferParams | AnswerParams | CandidateParams | DisconnectParams | ControlParams | None
# control_request's session_id: the HTTP API names its session there; ours is the socket (not checked)
_HTTP_SESSION: Final = "jsonrpc"


def _object(params: Mapping[str, JsonValue] | Sequence[JsonValue]) -> Mapping[str, JsonValue]:
    if not isinstance(params, Mapping):
        raise BadRequest("params must be an object (by name)", field="params")
    return params


def _text(data: Mapping[str, JsonValue], name: str, max_chars: int, *, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise BadRequest(f"{name} is required", field=name)
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > max_chars:
        raise BadRequest(f"{name} must be a non-empty string of at most {max_chars} characters", field=name)
    return value


def _sdp(data: Mapping[str, JsonValue], kind: str) -> str:
    """`sdp` as text (with `type` beside it, as RTCSessionDescription's fields) or as `{type, sdp}`."""
    value = data.get("sdp")
    kind_field, given = "type", data.get("type")
    if isinstance(value, Mapping):
        kind_field, given, value = "sdp.type", value.get("type"), value.get("sdp")
    if given is not None and given != kind:
        raise BadRequest(f"{kind_field} must be {kind!r}, got {str(given)[:20]!r}", field=kind_field)
    if not isinstance(value, str) or len(value) > MAX_SDP_CHARS:
        raise BadRequest(f"sdp must be the SDP {kind} (text, or {{type, sdp}})", field="sdp")
    if not value.lstrip().startswith("v=0"):
        raise BadRequest("sdp is not a session description (must start with v=0)", field="sdp")
    return value


def _destination(data: Mapping[str, JsonValue]) -> str | None:
    to = _text(data, "to", MAX_DESTINATION_CHARS)
    metadata = data.get("metadata")
    if to is None and isinstance(metadata, Mapping):
        to = _text(metadata, "dial", MAX_DESTINATION_CHARS)
    elif metadata is not None and not isinstance(metadata, Mapping):
        raise BadRequest("metadata must be an object", field="metadata")
    if to is not None and any(c.isspace() or not c.isprintable() for c in to.strip()):
        raise BadRequest("to must be a number or SIP URI without spaces", field="to")
    return to.strip() if to is not None else None


def _credentials(data: Mapping[str, JsonValue]) -> Credentials | None:
    value = data.get("credentials")
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise BadRequest("credentials must be an object", field="credentials")
    return Credentials(
        _text(value, "api_key", 4096), _text(value, "token", 4096), _text(value, "user", 64), _text(value, "secret", 1024)
    )  # fmt: skip


def _candidate(data: Mapping[str, JsonValue]) -> IceCandidateInit | None:
    if "candidate" not in data:
        raise BadRequest("candidate is required (null ends the candidates)", field="candidate")
    raw = data["candidate"]
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = {"candidate": raw, "sdpMLineIndex": 0}
    try:
        return candidate_from_json(raw)
    except SdpError as exc:
        raise BadRequest(f"bad ICE candidate: {exc.message}", field="candidate") from None


def _call_id(data: Mapping[str, JsonValue], name: str) -> str | None:
    """Another call of the peer named in `name` (a call id has a peer id's characters)."""
    value = _text(data, name, 128)
    if value is not None and not _PEER_ID.match(value):
        raise BadRequest(f"{name} {value[:40]!r} is not a call id", field=name)
    return value


def _three_way(action: str, data: Mapping[str, JsonValue]) -> ControlParams:
    """`merge {call_ids: [a, b]}` (as `/ws`'s), `split {call_id}`."""
    if action == "split":
        call_id = _call_id(data, "call_id")
        if call_id is None:
            raise BadRequest("call_id is required: the call to take out of its conference", field="call_id")
        return ControlParams(action, call_id)
    ids = data.get("call_ids")
    if (
        not isinstance(ids, list)
        or len(ids) != 2
        or not all(isinstance(i, str) and _PEER_ID.match(i) for i in ids)
    ):
        raise BadRequest("call_ids must list two call ids: the active call and a held one", field="call_ids")
    return ControlParams(action, str(ids[0]), other=str(ids[1]))


def _control(action: str, data: Mapping[str, JsonValue]) -> ControlParams:
    """A call control's params: `digits`, `duration_ms`, `to` and `body` checked by the HTTP API's
    `control_request` for the same action; `replaces` (an attended transfer) is this dialect's own."""
    call_id = _text(data, "call_id", 128)
    if action == "transfer":
        replaces = _call_id(data, "replaces")
        if replaces is not None:
            if data.get("to") is not None:
                raise BadRequest("transfer takes to (blind) or replaces (attended), not both", field="to")
            return ControlParams(action, call_id, replaces=replaces)
        if data.get("to") is None:
            raise BadRequest("transfer needs to (blind) or replaces (attended)", field="to")
    fields = {name: data[name] for name in ("digits", "duration_ms", "to", "body") if name in data}
    checked = control_request(action, {**fields, "session_id": _HTTP_SESSION})
    return ControlParams(action, call_id, checked.digits, checked.duration_ms, checked.to, None, checked.body)


def _record(data: Mapping[str, JsonValue]) -> ControlParams:
    action = data.get("action")
    if not isinstance(action, str) or action not in RECORD_ACTIONS:
        raise BadRequest(f"action must be one of {', '.join(RECORD_ACTIONS)}, got {action!r}", field="action")
    return ControlParams("record", _text(data, "call_id", 128), recording=action)


def params_of(method: str, raw: Mapping[str, JsonValue] | Sequence[JsonValue]) -> Params:
    """The checked params of `method` (one of jsonrpc.METHODS)."""
    data = _object(raw)
    match method:
        case "announce":
            capabilities = data.get("capabilities")
            if len(str(capabilities)) > MAX_CAPABILITIES_CHARS:
                raise BadRequest("capabilities are too large", field="capabilities")
            peer_id = _text(data, "peer_id", 128, required=True) or ""
            return Announce(peer_id, capabilities, _credentials(data))
        case "offer":
            target_peer = _text(data, "target_peer_id", 128)
            return OfferParams(
                _sdp(data, "offer"),
                _destination(data),
                target_peer,
                _call_id(data, "transfer_of"),
                _call_id(data, "call_id"),
            )
        case "answer":
            return AnswerParams(_text(data, "call_id", 128, required=True) or "", _sdp(data, "answer"))
        case "ice_candidate":
            return CandidateParams(_text(data, "call_id", 128), _candidate(data))
        case "disconnect":
            return DisconnectParams(_text(data, "call_id", 128), _text(data, "reason", MAX_REASON_CHARS))
        case "hold" | "resume" | "dtmf" | "transfer" | "message":
            return _control(method, data)
        case "record":
            return _record(data)
        case "merge" | "split":
            return _three_way(method, data)
        case "ping":
            return None
    raise BadRequest(f"unknown method {method[:40]!r}", field="method")


def basic_credentials(user: str, secret: str) -> str:
    """`announce`'s user and secret as HTTP Basic credentials (the API's own check takes them)."""
    return base64.b64encode(f"{user}:{secret}".encode()).decode()
