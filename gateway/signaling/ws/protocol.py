"""The browser's WebSocket JSON protocol, requests side: text in, validated request objects out.

Sans-I/O: no sockets, no event loop. `decode_request(text)` returns one of the request dataclasses
below or raises a `SignalingError` naming the field at fault; it never raises anything else, whatever
the input (tests/signaling/ws/test_protocol.py checks that with hypothesis). The requests and their fields
are listed in docs/signaling.md; decoding is table-driven (`_DECODERS`, one function per `type`).

Every message is a JSON object with a `type`; a request may carry an `id` (string or integer) that the
reply echoes. Calls are named by `call_id` (the gateway assigns it: in the reply to `call` for outbound
calls, in `incoming` for inbound ones).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from gateway.signaling.audio_stream.ws_request import AudioStream, parse_audio_stream
from gateway.signaling.errors import BadRequest, TooLarge, UnknownType
from gateway.signaling.ws.recording import RECORD_ACTIONS
from sdp import IceCandidateInit, SdpError, candidate_from_json

MAX_MESSAGE_BYTES: Final = 64 * 1024
MAX_SDP_CHARS: Final = 48 * 1024
MAX_ID_CHARS: Final = 64
MAX_DESTINATION_CHARS: Final = 256
DTMF_DIGITS: Final = frozenset("0123456789*#ABCD")  # RFC 4733 §3.2 events 0-15
REJECT_STATUSES: Final = (480, 486, 603)  # RFC 3261 §21.4.18, §21.4.24, §21.6.2
_CALL_ID: Final = re.compile(r"[A-Za-z0-9._~:@+-]{1,128}\Z")
_USER_ID: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}\Z")

RequestId = str | int | None


@dataclass(frozen=True, slots=True)
class Login:
    """`login`: `{user, secret}` (web_auth.mode secret or token) or `{token}` (a session token)."""

    id: RequestId
    user: str | None = None
    secret: str | None = None
    token: str | None = None

    def __repr__(self) -> str:  # never show the secret or the token
        return f"Login(id={self.id!r}, user={self.user!r}, token={'***' if self.token else None})"


@dataclass(frozen=True, slots=True)
class Call:
    """`call {to, sdp, headers?, transfer_of?, early_answer?}`: dial `to` (a number or SIP URI) with the
    browser's WebRTC offer; `headers`: custom SIP headers for the INVITE, by name (only those in
    sip.pass_headers); `transfer_of`: the call whose `transfer_requested` this dial carries out;
    `early_answer`: the gateway's answer comes in an `answer` event as soon as it exists (after the
    `ack`, before the far end answers) instead of in `early_media`/`connected`."""

    id: RequestId
    to: str
    sdp: str
    headers: tuple[tuple[str, str], ...] = ()
    transfer_of: str | None = None
    early_answer: bool = False


@dataclass(frozen=True, slots=True)
class Transfer:
    """`transfer {call_id, to}` (blind) or `transfer {call_id, replaces}` (attended: `replaces` is the
    user's consultation call, whose far end takes over `call_id`)."""

    id: RequestId
    call_id: str
    to: str | None = None
    replaces: str | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """`answer {call_id, sdp?}`: accept a ringing call; `sdp` is the browser's answer to the offer."""

    id: RequestId
    call_id: str
    sdp: str | None = None


@dataclass(frozen=True, slots=True)
class Reject:
    """`reject {call_id, status?}`: turn down a ringing call (486 Busy Here by default)."""

    id: RequestId
    call_id: str
    status: int = 486


@dataclass(frozen=True, slots=True)
class Cancel:
    id: RequestId
    call_id: str


@dataclass(frozen=True, slots=True)
class Hangup:
    id: RequestId
    call_id: str


@dataclass(frozen=True, slots=True)
class Hold:
    id: RequestId
    call_id: str


@dataclass(frozen=True, slots=True)
class Resume:
    id: RequestId
    call_id: str


@dataclass(frozen=True, slots=True)
class Merge:
    """`merge {call_ids: [a, b]}`: the active call and a held one become one conference (three-way)."""

    id: RequestId
    call_ids: tuple[str, str]


@dataclass(frozen=True, slots=True)
class Split:
    """`split {call_id}`: take a call out of its conference (it is held again, a call of its own)."""

    id: RequestId
    call_id: str


@dataclass(frozen=True, slots=True)
class Record:
    """`record {call_id, action}`: start, pause, resume or stop the call's recording (ws/recording.py)."""

    id: RequestId
    call_id: str
    action: str


@dataclass(frozen=True, slots=True)
class Dtmf:
    """`dtmf {call_id, digits, duration_ms?}`: keypad digits, each sent for `duration_ms`."""

    id: RequestId
    call_id: str
    digits: str
    duration_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Info:
    """`info {call_id, content_type, body}`: a SIP INFO (RFC 6086) to the other side of the call, of a
    content type in sip.info_content_types; its answer comes as `info_result`."""

    id: RequestId
    call_id: str
    content_type: str
    body: str


@dataclass(frozen=True, slots=True)
class Message:
    """`message {to, body}`: a text message (SIP MESSAGE, RFC 3428, text/plain) to `to`, under the same
    outbound policy as a call; acked with the SIP status the far side answered."""

    id: RequestId
    to: str
    body: str


@dataclass(frozen=True, slots=True)
class CallMessage:
    """`message {call_id, body}`: chat text to the SIP party of the call, as SIP MESSAGE in its dialog
    (RFC 3428 §4); its answer comes as `message_result`."""

    id: RequestId
    call_id: str
    body: str


@dataclass(frozen=True, slots=True)
class Ice:
    """`ice {call_id, candidate}`: a trickled candidate; `candidate` None ends the browser's gathering."""

    id: RequestId
    call_id: str
    candidate: IceCandidateInit | None


@dataclass(frozen=True, slots=True)
class Reoffer:
    """`offer {call_id, sdp}` during a connected call: the browser's own new offer on the same
    RTCPeerConnection (its camera added or stopped); the gateway answers with the `answer` event once
    the SIP side took it, or `error {code: renegotiation_failed}` (the browser rolls back)."""

    id: RequestId
    call_id: str
    sdp: str


@dataclass(frozen=True, slots=True)
class Reattach:
    """`reattach {call_id, sdp}`: take back a call listed in `calls` (or renew the media of one's own
    connected call after its RTCPeerConnection failed) with a new WebRTC offer; `reattached` answers it.
    Without `sdp`: a call listed `end_to_end` whose RTCPeerConnection the browser kept."""

    id: RequestId
    call_id: str
    sdp: str | None


@dataclass(frozen=True, slots=True)
class Ping:
    """`ping`: answered with `pong` (an application-level keepalive for proxies that drop idle sockets)."""

    id: RequestId


@dataclass(frozen=True, slots=True)
class Logout:
    """`logout`: revoke this session's token (and every token of its login, on every gateway sharing the
    revocation store); acknowledged, then the gateway closes the connection (its calls end)."""

    id: RequestId


CallRequest = (
    Call
    | Answer
    | Reject
    | Cancel
    | Hangup
    | Hold
    | Resume
    | Merge
    | Split
    | Record
    | Dtmf
    | AudioStream
    | Ice
    | Info
    | Message
    | CallMessage
    | Transfer
    | Reattach
    | Reoffer
)
Request = Login | Logout | CallRequest | Ping


# --- field readers: each names the field it rejects --------------------------------------------------


def _string(data: Mapping[str, object], name: str, *, max_chars: int, required: bool = True) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise BadRequest(f"{name} is required", field=name)
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string, got {type(value).__name__}", field=name)
    if not value.strip():
        raise BadRequest(f"{name} must not be empty", field=name)
    if len(value) > max_chars:
        raise BadRequest(f"{name} is longer than {max_chars} characters", field=name)
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (`"\ud800"` is valid JSON): nothing downstream takes it
            raise BadRequest(f"{name} is not valid Unicode (lone surrogate)", field=name) from None
    return value


def _required(data: Mapping[str, object], name: str, *, max_chars: int) -> str:
    value = _string(data, name, max_chars=max_chars)
    if value is None:  # _string raised already; this keeps the type checker informed
        raise BadRequest(f"{name} is required", field=name)
    return value


def _call_id(data: Mapping[str, object]) -> str:
    value = _required(data, "call_id", max_chars=128)
    if not _CALL_ID.match(value):
        raise BadRequest(f"call_id {value[:40]!r} is not a call id the gateway gave out", field="call_id")
    return value


def _integer(data: Mapping[str, object], name: str, low: int, high: int) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise BadRequest(f"{name} must be an integer from {low} to {high}, got {value!r}", field=name)
    return value


def read_sdp(data: Mapping[str, object], name: str, kind: str, *, required: bool = True) -> str | None:
    """An SDP given as text or as an RTCSessionDescriptionInit `{type, sdp}` of the expected `kind`."""
    value = data.get(name)
    if isinstance(value, Mapping):
        if value.get("type") != kind:
            raise BadRequest(f"{name}.type must be {kind!r}, got {value.get('type')!r}", field=f"{name}.type")
        text = _string(value, "sdp", max_chars=MAX_SDP_CHARS)
        field = f"{name}.sdp"
    else:
        try:
            text = _string(data, name, max_chars=MAX_SDP_CHARS, required=required)
        except BadRequest as exc:
            raise BadRequest(f"{exc.message} (an SDP {kind}, as text or {{type, sdp}})", field=name) from None
        field = name
    if text is not None and not text.lstrip().startswith("v=0"):
        raise BadRequest(f"{field} is not a session description (must start with v=0)", field=field)
    return text


# --- one decoder per type ------------------------------------------------------------------------------


def _login(rid: RequestId, data: Mapping[str, object]) -> Login:
    token = _string(data, "token", max_chars=1024, required=False)
    if token is not None:
        return Login(rid, token=token)
    if data.get("user") is None and data.get("secret") is None:
        raise BadRequest("login needs user and secret, or a session token", field="user")
    user = _required(data, "user", max_chars=64)
    if not _USER_ID.match(user):
        raise BadRequest(f"user {user[:40]!r} is not a valid user id", field="user")
    return Login(rid, user=user, secret=_required(data, "secret", max_chars=1024))


def _destination(data: Mapping[str, object]) -> str:
    to = _required(data, "to", max_chars=MAX_DESTINATION_CHARS).strip()
    # Spaces are visual separators in a number (`030 123-45`, removed by the call layer's dial_target);
    # control characters are never part of a destination.
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F or ch in "\u2028\u2029" for ch in to):
        raise BadRequest("to must not contain control characters", field="to")
    return to


def _other_call_id(data: Mapping[str, object], name: str) -> str | None:
    if data.get(name) is None:
        return None
    value = _required(data, name, max_chars=128)
    if not _CALL_ID.match(value):
        raise BadRequest(f"{name} {value[:40]!r} is not a call id the gateway gave out", field=name)
    return value


def _call(rid: RequestId, data: Mapping[str, object]) -> Call:
    to = _destination(data)
    sdp = read_sdp(data, "sdp", "offer")
    if sdp is None:
        raise BadRequest("sdp is required", field="sdp")
    headers = data.get("headers", {})
    if not isinstance(headers, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise BadRequest("headers must be an object of strings (header name: value)", field="headers")
    early_answer = data.get("early_answer", False)
    if not isinstance(early_answer, bool):
        raise BadRequest("early_answer must be true or false", field="early_answer")
    return Call(rid, to, sdp, tuple(headers.items()), _other_call_id(data, "transfer_of"), early_answer)


def _transfer(rid: RequestId, data: Mapping[str, object]) -> Transfer:
    call_id = _call_id(data)
    replaces = _other_call_id(data, "replaces")
    if replaces is None:
        return Transfer(rid, call_id, to=_destination(data))
    if data.get("to") is not None:
        raise BadRequest("a transfer has either to (blind) or replaces (attended), not both", field="to")
    return Transfer(rid, call_id, replaces=replaces)


def _answer(rid: RequestId, data: Mapping[str, object]) -> Answer:
    return Answer(rid, _call_id(data), read_sdp(data, "sdp", "answer", required=False))


def _reject(rid: RequestId, data: Mapping[str, object]) -> Reject:
    status = _integer(data, "status", 400, 699)
    if status is not None and status not in REJECT_STATUSES:
        raise BadRequest(f"status must be one of {REJECT_STATUSES}, got {status}", field="status")
    return Reject(rid, _call_id(data), status or 486)


def _dtmf(rid: RequestId, data: Mapping[str, object]) -> Dtmf:
    call_id = _call_id(data)
    digits = _required(data, "digits", max_chars=32).upper()
    bad = sorted(set(digits) - DTMF_DIGITS)
    if bad:
        raise BadRequest(f"digits may hold only 0-9 * # A-D, not {''.join(bad)!r}", field="digits")
    return Dtmf(rid, call_id, digits, _integer(data, "duration_ms", 40, 2000))


MAX_INFO_CHARS: Final = 8192  # an INFO or MESSAGE body (RFC 3428 §7: keep MESSAGE small)


def _info(rid: RequestId, data: Mapping[str, object]) -> Info:
    call_id = _call_id(data)
    content_type = _required(data, "content_type", max_chars=128).strip().lower()
    if not re.fullmatch(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+", content_type):
        raise BadRequest(f"content_type is not a media type: {content_type!r}", field="content_type")
    body = data.get("body", "")
    if not isinstance(body, str) or len(body) > MAX_INFO_CHARS:
        raise BadRequest(f"body must be a string of at most {MAX_INFO_CHARS} characters", field="body")
    return Info(rid, call_id, content_type, body)


def _message(rid: RequestId, data: Mapping[str, object]) -> Message | CallMessage:
    if "call_id" in data:  # chat in a call (its dialog); `to` would name a second destination
        if "to" in data:
            raise BadRequest("a message goes to `to` or into call `call_id`, not both", field="to")
        call_id = _call_id(data)
        body = _required(data, "body", max_chars=MAX_INFO_CHARS)
        if len(body.encode("utf-8")) > MAX_INFO_CHARS:
            raise BadRequest(f"body is longer than {MAX_INFO_CHARS} bytes in UTF-8", field="body")
        return CallMessage(rid, call_id, body)
    to = _required(data, "to", max_chars=MAX_DESTINATION_CHARS).strip()
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in to):
        raise BadRequest("to must not contain control characters", field="to")
    body = _required(data, "body", max_chars=MAX_INFO_CHARS)
    return Message(rid, to, body)


def _ice(rid: RequestId, data: Mapping[str, object]) -> Ice:
    call_id = _call_id(data)
    if "candidate" not in data:
        raise BadRequest("candidate is required (null ends the candidates)", field="candidate")
    raw = data["candidate"]
    if raw is None:
        return Ice(rid, call_id, None)
    if isinstance(raw, Mapping) and isinstance(raw.get("candidate"), str) and len(raw["candidate"]) > 1024:
        raise BadRequest("candidate.candidate is too long", field="candidate.candidate")
    try:
        return Ice(rid, call_id, candidate_from_json(raw))
    except SdpError as exc:
        raise BadRequest(f"bad ICE candidate: {exc.message}", field="candidate") from None


def _call_offer(
    cls: type[Reattach | Reoffer],
) -> Callable[[RequestId, Mapping[str, object]], Request]:
    """A request with a call id and the browser's new offer (`reattach`, `offer` mid-call)."""

    def decode(rid: RequestId, data: Mapping[str, object]) -> Request:
        call_id = _call_id(data)
        sdp = read_sdp(data, "sdp", "offer")
        if sdp is None:
            raise BadRequest("sdp is required", field="sdp")
        return cls(rid, call_id, sdp)

    return decode


def _merge(rid: RequestId, data: Mapping[str, object]) -> Merge:
    raw = data.get("call_ids")
    if not isinstance(raw, list) or len(raw) != 2:
        raise BadRequest("call_ids must list two call ids: the active call and a held one", field="call_ids")
    for item in raw:
        if not isinstance(item, str) or len(item) > 128 or not _CALL_ID.match(item):
            raise BadRequest(f"call_ids: {str(item)[:40]!r} is not a call id the gateway gave out",
                             field="call_ids")  # fmt: skip
    return Merge(rid, (raw[0], raw[1]))


def _record(rid: RequestId, data: Mapping[str, object]) -> Record:
    call_id, action = _call_id(data), data.get("action")
    if not isinstance(action, str) or action not in RECORD_ACTIONS:
        raise BadRequest(f"action must be one of {', '.join(RECORD_ACTIONS)}, got {action!r}", field="action")
    return Record(rid, call_id, action)


def _simple(
    cls: type[Cancel | Hangup | Hold | Resume | Split],
) -> Callable[[RequestId, Mapping[str, object]], Request]:
    return lambda rid, data: cls(rid, _call_id(data))


_DECODERS: Final[Mapping[str, Callable[[RequestId, Mapping[str, object]], Request]]] = {
    "login": _login,
    "call": _call,
    "answer": _answer,
    "reject": _reject,
    "cancel": _simple(Cancel),
    "hangup": _simple(Hangup),
    "hold": _simple(Hold),
    "resume": _simple(Resume),
    "merge": _merge,
    "split": _simple(Split),
    "dtmf": _dtmf,
    "audio_stream": parse_audio_stream,  # gateway/signaling/audio_stream/ws_request.py
    "record": _record,
    "ice": _ice,
    "info": _info,
    "message": _message,
    "transfer": _transfer,
    "reattach": lambda rid, data: Reattach(
        rid, _call_id(data), read_sdp(data, "sdp", "offer", required=False)
    ),
    "offer": _call_offer(Reoffer),
    "ping": lambda rid, data: Ping(rid),
    "logout": lambda rid, data: Logout(rid),
}
REQUEST_TYPES: Final = tuple(_DECODERS)


def peek_id(data: object) -> RequestId:
    """The request `id` to echo in an error, if the message got far enough to have a usable one."""
    if isinstance(data, Mapping):
        rid = data.get("id")
        if isinstance(rid, str) and len(rid) <= MAX_ID_CHARS:
            return rid
        if isinstance(rid, int) and not isinstance(rid, bool) and abs(rid) < 2**53:
            return rid
    return None


def request_id_of(text: str | bytes | None) -> RequestId:
    """The `id` of the request in ``text`` (a message refused unread: rate limited), None when it has
    none that is valid or is no JSON object."""
    if text is None:
        return None
    try:
        return peek_id(json.loads(text))
    except (ValueError, RecursionError):
        return None


def parse_json(text: str | bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> object:
    """The JSON value of one message, after the size check."""
    size = len(text.encode("utf-8", "surrogatepass")) if isinstance(text, str) else len(text)
    if size > max_bytes:
        raise TooLarge(f"message of {size} bytes is above the limit of {max_bytes}")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise BadRequest("message is not valid JSON") from None


def decode_request(text: str | bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> Request:
    return request_from_json(parse_json(text, max_bytes))


def request_from_json(data: object) -> Request:
    if not isinstance(data, dict):
        raise BadRequest(f"a message must be a JSON object, got {type(data).__name__}")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise BadRequest("type is required and must be a string", field="type")
    rid = data.get("id")
    if rid is not None and rid != peek_id(data):
        raise BadRequest(f"id must be a string of up to {MAX_ID_CHARS} characters or an integer", field="id")
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise UnknownType(f"unknown message type {kind[:40]!r}", field="type")
    return decoder(rid if isinstance(rid, (str, int)) else None, data)
