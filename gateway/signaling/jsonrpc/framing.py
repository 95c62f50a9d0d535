"""JSON-RPC 2.0 (https://www.jsonrpc.org/specification) as RemoteMedia's "WebRTC Transport Integration
Guide" uses it over a WebSocket: framing, validation and encoding only (sans-I/O, like ws/protocol.py).

One text frame holds one message or a batch (§6: a non-empty array). Each element is decoded into a
`Call` (a request with an `id`, or a notification without one, §4.1) or an `RpcError` that must be
answered (§5.1 codes):

    -32700 parse error       the frame is not JSON (answered with id null)
    -32600 invalid request   not an object, jsonrpc not "2.0", method not a string, a bad id or params
    -32601 method not found  (decided by the dispatcher: `METHODS`)
    -32602 invalid params    a method's params missing or of the wrong kind (`params_of`)
    -32603 internal error    a bug in the gateway
    -32000..-32099           the gateway's own (APP_CODES): unauthorized, not found, forbidden, ...,
                             -32008 peer_id_taken (another user holds the announced peer id)

`decode(text)` -> `Frame` (the calls, the errors to send, whether it was a batch); replies are built with
`result()` and `error()` and joined with `encode_batch()`. Responses sent *to* the gateway (it never
sends requests) are ignored. The methods' params are read by `gateway/signaling/jsonrpc/params.py`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from gateway.signaling.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    SignalingError,
    Timeout,
    TooLarge,
    Unauthorized,
)
from gateway.signaling.service import JsonValue

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603
# The gateway's own codes (§5.1 reserves -32000 to -32099 for implementation-defined server errors).
CALL_FAILED: Final = -32000  # the call layer refused or the far end turned the call down
UNAUTHORIZED: Final = -32001
NOT_FOUND: Final = -32002
FORBIDDEN: Final = -32003
CONFLICT: Final = -32004
RATE_LIMITED: Final = -32005
TIMEOUT: Final = -32006
TOO_LARGE: Final = -32007
PEER_ID_TAKEN: Final = -32008  # announce: the peer id is another user's (relay.py)


class PeerIdTaken(Conflict):
    """`announce` of a peer id another user holds (issue 32 item 2): refused, the holder untouched."""

    code = "peer_id_taken"


APP_CODES: Final[tuple[tuple[type[SignalingError], int], ...]] = (
    (PeerIdTaken, PEER_ID_TAKEN),
    (Unauthorized, UNAUTHORIZED),
    (NotFound, NOT_FOUND),
    (Forbidden, FORBIDDEN),
    (Conflict, CONFLICT),
    (RateLimited, RATE_LIMITED),
    (Timeout, TIMEOUT),
    (TooLarge, TOO_LARGE),
)
METHODS: Final = frozenset({
    "announce", "offer", "answer", "ice_candidate", "disconnect", "ping",
    "hold", "resume", "dtmf", "transfer", "message",  # in a call (issue 33): /ws's and the HTTP API's
    "record",  # a call's recording (issue 37 item 3)
    "merge", "split",  # three-way calls (issue 37 item 2), as /ws's
})  # fmt: skip
MAX_BATCH: Final = 32
MAX_METHOD_CHARS: Final = 64
MAX_ID_CHARS: Final = 128

RpcId = str | int | None


@dataclass(frozen=True, slots=True)
class Call:
    """A request (`id` present: it gets a response) or a notification (`notification`: none)."""

    method: str
    params: Mapping[str, JsonValue] | Sequence[JsonValue]
    id: RpcId = None
    notification: bool = False

    def __post_init__(self) -> None:
        if not self.method or len(self.method) > MAX_METHOD_CHARS:
            raise ValueError(f"method {self.method[:40]!r} is empty or too long")
        if self.notification and self.id is not None:
            raise ValueError(f"a notification has no id, got {self.id!r}")


@dataclass(frozen=True, slots=True)
class RpcError:
    """An error response to send (`id` None when the request's id could not be read)."""

    code: int
    message: str
    id: RpcId = None
    data: Mapping[str, JsonValue] | None = None

    def to_json(self) -> dict[str, JsonValue]:
        error: dict[str, JsonValue] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = dict(self.data)
        return {"jsonrpc": "2.0", "error": error, "id": self.id}


@dataclass(frozen=True, slots=True)
class Frame:
    calls: tuple[Call, ...] = ()
    errors: tuple[RpcError, ...] = ()  # to be sent as they are (in a batch: among the batch's responses)
    batch: bool = False


def result(rpc_id: RpcId, value: JsonValue) -> dict[str, JsonValue]:
    return {"jsonrpc": "2.0", "result": value, "id": rpc_id}


def notification(method: str, params: Mapping[str, JsonValue]) -> dict[str, JsonValue]:
    return {"jsonrpc": "2.0", "method": method, "params": dict(params)}


def error_from(exc: SignalingError, rpc_id: RpcId) -> RpcError:
    """A signaling error as a JSON-RPC error: a bad field is -32602, the rest the gateway's codes; `data`
    carries the gateway's reason, the field and the HTTP status the same refusal has in the HTTP API."""
    data: dict[str, JsonValue] = {"reason": exc.code, "http_status": exc.http_status}
    if exc.field is not None:
        data["field"] = exc.field
    if isinstance(exc, BadRequest) and not isinstance(exc, TooLarge) and exc.code == "bad_request":
        return RpcError(INVALID_PARAMS, exc.message, rpc_id, data)
    code = next((c for kind, c in APP_CODES if isinstance(exc, kind)), CALL_FAILED)
    return RpcError(code, exc.message, rpc_id, data)


def encode(message: Mapping[str, JsonValue] | Sequence[Mapping[str, JsonValue]]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def decode(text: str | bytes) -> Frame:
    """One WebSocket frame (see the module note); never raises."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # a UnicodeDecodeError is a ValueError too
        return Frame(errors=(RpcError(PARSE_ERROR, "Parse error: the message is not JSON"),))
    if isinstance(data, list):
        if not data:
            return Frame(errors=(RpcError(INVALID_REQUEST, "Invalid Request: an empty batch"),))
        if len(data) > MAX_BATCH:
            message = f"Invalid Request: a batch of {len(data)} (at most {MAX_BATCH})"
            return Frame(errors=(RpcError(INVALID_REQUEST, message),))
        calls: list[Call] = []
        errors: list[RpcError] = []
        for item in data:
            decoded = _one(item)
            if isinstance(decoded, RpcError):
                errors.append(decoded)
            elif decoded is not None:
                calls.append(decoded)
        return Frame(tuple(calls), tuple(errors), batch=True)
    decoded = _one(data)
    if isinstance(decoded, RpcError):
        return Frame(errors=(decoded,))
    return Frame(calls=(decoded,) if decoded is not None else ())


def id_of(text: str | bytes) -> RpcId:
    """The id of the single request in ``text`` (a frame refused unread: rate limited), null when it
    holds none that is valid (a batch, not JSON, a bad id): §5 answers those with a null id."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    found = _read_id(data) if isinstance(data, dict) else None
    return None if isinstance(found, RpcError) else found


def _read_id(item: Mapping[str, object]) -> RpcId | RpcError:
    """§4: a String, Number (integers here) or Null; a fraction or anything else is invalid."""
    value = item.get("id")
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, str) and len(value) <= MAX_ID_CHARS:
        return value
    return RpcError(INVALID_REQUEST, "Invalid Request: id must be a string, an integer or null")


def _one(item: object) -> Call | RpcError | None:
    """One element: a `Call`, the `RpcError` to answer, or None (a response sent to us: ignored)."""
    if not isinstance(item, dict):
        return RpcError(INVALID_REQUEST, "Invalid Request: not an object")
    rpc_id = _read_id(item)
    if isinstance(rpc_id, RpcError):
        return rpc_id
    if item.get("jsonrpc") != "2.0":
        return RpcError(INVALID_REQUEST, 'Invalid Request: jsonrpc must be "2.0"', rpc_id)
    if "method" not in item and ("result" in item or "error" in item):
        return None
    method = item.get("method")
    if not isinstance(method, str) or not method or len(method) > MAX_METHOD_CHARS:
        return RpcError(INVALID_REQUEST, "Invalid Request: method must be a non-empty string", rpc_id)
    params = item.get("params", {})
    if not isinstance(params, dict | list):
        return RpcError(INVALID_REQUEST, "Invalid Request: params must be an object or an array", rpc_id)
    return Call(method, params, rpc_id, notification="id" not in item)


@dataclass(slots=True)
class Replies:
    """The responses to one frame, in order; `encoded()` is None when nothing is to be sent (§6: a
    batch of notifications gets no reply at all)."""

    batch: bool
    items: list[dict[str, JsonValue]] = field(default_factory=list)

    def add(self, item: dict[str, JsonValue]) -> None:
        self.items.append(item)

    def encoded(self) -> str | None:
        if not self.items:
            return None
        return encode(self.items) if self.batch else encode(self.items[0])


URGENT: Final = frozenset({"ping", "disconnect"})  # run at once, beside any other request
CONTROLS: Final = frozenset(
    {"hold", "resume", "dtmf", "transfer", "message", "merge", "split"}
)  # a call's lane


def lane_of(call: Call) -> tuple[bool, str | None]:
    """Whether a single request of an authenticated peer runs beside the others, and in which lane
    (issue 32 item 7): `ping` and `disconnect` at once (a hang-up never waits for a pending offer),
    `offer`, and a trickle or call control without `call_id`, one after the other (a browser trickles
    before the offer's result names the call), a call's `answer`, `ice_candidate` and controls in its
    order; `announce` and unknown methods in the reader's turn."""
    if call.method in URGENT:
        return True, None
    params = call.params if isinstance(call.params, Mapping) else {}
    call_id = params.get("call_id")
    in_call = call.method == "ice_candidate" or call.method in CONTROLS
    if call.method == "answer" or (in_call and isinstance(call_id, str)):
        return True, f"call:{call_id}"
    if call.method == "offer" or in_call:
        return True, "calls"
    return False, None
