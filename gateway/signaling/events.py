"""The browser's WebSocket JSON protocol, gateway side: the messages the gateway sends, as JSON text.

Sans-I/O like `ws/protocol.py`. Replies (`registered`, `ack`, `pong`, `error` with the request's `id`) answer
requests; events (`incoming`, `connected`, `held`, `quality`...: docs/signaling.md) go by `Session.send_event`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from gateway.calls.boundary.caller import NO_DETAILS, CallerDetails
from gateway.signaling.call_quality import CallQuality as CallQuality
from gateway.signaling.conference import Merged, Split
from gateway.signaling.errors import SignalingError
from gateway.signaling.ws.lamp_events import ContactState as ContactState
from gateway.signaling.ws.lamp_events import Voicemail as Voicemail
from gateway.signaling.ws.protocol import RequestId
from gateway.signaling.ws.recording import RecordingChanged as RecordingChanged
from sdp import IceCandidateInit


@dataclass(frozen=True, slots=True)
class IceServerInfo:
    """One RTCIceServer for the browser's RTCConfiguration (credentials only go to logged-in users)."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, object]:
        result: dict[str, object] = {"urls": list(self.urls)}
        if self.username is not None:
            result["username"] = self.username
        if self.credential is not None:
            result["credential"] = self.credential
        return result


# --- replies -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Registered:
    """The reply to a successful `login`: who the user is, their ICE servers, a token for reconnects,
    whether this gateway carries video (`codecs.video` not empty: the page offers its video controls) and
    how long a call waits for its page after a lost socket (`web_auth.reconnect_grace`: a page that cannot
    get back within it ends its calls itself, saying why, instead of "reconnecting" for ever)."""

    id: RequestId
    session_id: str
    user: str
    display_name: str
    sip: str
    ice_servers: tuple[IceServerInfo, ...]
    token: str = field(repr=False)
    token_expires_in: int
    video: bool = False
    reconnect_grace: float = 30.0

    def to_json(self) -> dict[str, object]:
        return {
            "type": "registered",
            "id": self.id,
            "session_id": self.session_id,
            "user": self.user,
            "display_name": self.display_name,
            "sip": self.sip,
            "ice_servers": [s.to_json() for s in self.ice_servers],
            "token": self.token,
            "token_expires_in": self.token_expires_in,
            "video": self.video,
            "reconnect_grace": self.reconnect_grace,
        }


@dataclass(frozen=True, slots=True)
class Ack:
    """The reply to any other accepted request; the reply to `call` carries the new `call_id`."""

    id: RequestId
    request: str
    call_id: str | None = None
    status: int | None = None  # `message`: the SIP status the far side answered

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "type": "ack",
            "id": self.id,
            "request": self.request,
            "call_id": self.call_id,
        }
        if self.status is not None:
            data["status"] = self.status
        return data


@dataclass(frozen=True, slots=True)
class Pong:
    id: RequestId

    def to_json(self) -> dict[str, object]:
        return {"type": "pong", "id": self.id}


@dataclass(frozen=True, slots=True)
class ErrorMessage:
    """`error {code, message, field}`, with the `id` of the request it refuses and the call it concerns."""

    code: str
    message: str
    field: str | None = None
    id: RequestId = None
    call_id: str | None = None
    sip_status: int | None = None  # not sent: the SIP WebSocket dialect's status for a refused re-INVITE

    @classmethod
    def from_error(
        cls, error: SignalingError, rid: RequestId = None, call_id: str | None = None
    ) -> ErrorMessage:
        return cls(error.code, error.message, error.field, rid, call_id)

    def to_json(self) -> dict[str, object]:
        result: dict[str, object] = {
            "type": "error",
            "id": self.id,
            "code": self.code,
            "message": self.message,
            "field": self.field,
        }
        if self.call_id is not None:
            result["call_id"] = self.call_id
        return result


# --- events pushed by the call layer ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Incoming:
    """A call for this user: ring. `sdp` is the gateway's offer when it is ready at ringing time;
    otherwise an `offer` event follows the browser's `answer`."""

    call_id: str
    from_uri: str
    display_name: str | None = None
    sdp: str | None = None
    details: CallerDetails = NO_DETAILS  # asserted identity, diversions, passed headers

    def to_json(self) -> dict[str, object]:
        details = self.details
        asserted = (
            {"uri": details.asserted_uri, "display_name": details.asserted_display}
            if details.asserted_uri is not None
            else None
        )
        return {
            "type": "incoming",
            "call_id": self.call_id,
            "from": self.from_uri,
            "display_name": self.display_name,
            "sdp": self.sdp,
            "asserted_identity": asserted,
            "diverted_from": [{"uri": uri, "reason": reason} for uri, reason in details.diversions],
            "headers": dict(details.headers),
        }


@dataclass(frozen=True, slots=True)
class Offer:
    """The gateway's WebRTC offer for an inbound call; the browser answers with `answer {call_id, sdp}`."""

    call_id: str
    sdp: str

    def to_json(self) -> dict[str, object]:
        return {"type": "offer", "call_id": self.call_id, "sdp": self.sdp}


@dataclass(frozen=True, slots=True)
class Answer:
    """The gateway's answer to the browser's own new offer mid-call (`offer {call_id, sdp}`): video added
    or dropped, once the SIP side answered its re-INVITE; an ICE restart, at once (issue 34)."""

    call_id: str
    sdp: str

    def to_json(self) -> dict[str, object]:
        return {"type": "answer", "call_id": self.call_id, "sdp": self.sdp}


@dataclass(frozen=True, slots=True)
class Ringing:
    call_id: str

    def to_json(self) -> dict[str, object]:
        return {"type": "ringing", "call_id": self.call_id}


@dataclass(frozen=True, slots=True)
class Redirected:
    """The PBX redirected the call (3xx); the gateway follows it to `target` (a SIP URI)."""

    call_id: str
    target: str
    status: int

    def to_json(self) -> dict[str, object]:
        return {
            "type": "redirected",
            "call_id": self.call_id,
            "target": self.target,
            "sip_status": self.status,
        }


@dataclass(frozen=True, slots=True)
class EarlyMedia:
    """Audio before the answer; `sdp` is the gateway's answer to the browser's offer (outbound calls)."""

    call_id: str
    sdp: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"type": "early_media", "call_id": self.call_id, "sdp": self.sdp}


@dataclass(frozen=True, slots=True)
class EarlyAnswer:
    """The gateway's answer to the browser's offer as soon as it exists, before the far end answers (a
    `call` with `early_answer: true`); that call's `early_media` and `connected` then carry no `sdp`."""

    call_id: str
    sdp: str

    def to_json(self) -> dict[str, object]:
        return {"type": "answer", "call_id": self.call_id, "sdp": self.sdp}


@dataclass(frozen=True, slots=True)
class Connected:
    """The call is answered; `sdp` is the gateway's answer when early media did not carry it already."""

    call_id: str
    sdp: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"type": "connected", "call_id": self.call_id, "sdp": self.sdp}


@dataclass(frozen=True, slots=True)
class Held:
    call_id: str
    by: Literal["local", "remote"] = "remote"
    direction: Literal["sendonly", "inactive"] = "sendonly"  # the SIP party's hold SDP's; not in the JSON

    def to_json(self) -> dict[str, object]:
        return {"type": "held", "call_id": self.call_id, "by": self.by}


@dataclass(frozen=True, slots=True)
class Resumed:
    call_id: str
    by: Literal["local", "remote"] = "remote"

    def to_json(self) -> dict[str, object]:
        return {"type": "resumed", "call_id": self.call_id, "by": self.by}


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    """A keypad digit from the SIP party."""

    call_id: str
    digit: str
    duration_ms: int

    def to_json(self) -> dict[str, object]:
        return {"type": "dtmf", "call_id": self.call_id, "digit": self.digit, "duration_ms": self.duration_ms}


@dataclass(frozen=True, slots=True)
class InfoReceived:
    """An INFO body from the SIP party (RFC 6086), of a content type in sip.info_content_types."""

    call_id: str
    content_type: str
    body: str

    def to_json(self) -> dict[str, object]:
        return {"type": "info", "call_id": self.call_id, "content_type": self.content_type, "body": self.body}


@dataclass(frozen=True, slots=True)
class InfoResult:
    """The SIP party's final answer to the browser's `info`."""

    call_id: str
    status: int

    def to_json(self) -> dict[str, object]:
        return {"type": "info_result", "call_id": self.call_id, "status": self.status}


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A text message (SIP MESSAGE, RFC 3428) for this user, outside any call."""

    from_uri: str
    display_name: str | None
    body: str

    def to_json(self) -> dict[str, object]:
        return {
            "type": "message",
            "from": self.from_uri,
            "display_name": self.display_name,
            "body": self.body,
        }


@dataclass(frozen=True, slots=True)
class CallMessage:
    """Chat text from the SIP party of a call (SIP MESSAGE in its dialog, RFC 3428 §4)."""

    call_id: str
    body: str

    def to_json(self) -> dict[str, object]:
        return {"type": "message", "call_id": self.call_id, "body": self.body}


@dataclass(frozen=True, slots=True)
class MessageResult:
    """The SIP party's final answer to the MESSAGE carrying the browser's chat text (a `message {call_id,
    body}`, or text on the call's data channel)."""

    call_id: str
    status: int

    def to_json(self) -> dict[str, object]:
        return {"type": "message_result", "call_id": self.call_id, "status": self.status}


@dataclass(frozen=True, slots=True)
class PresenceChanged:
    """A contact (a web user this user may call) came online (her first session) or went offline."""

    user: str
    display_name: str
    number: str
    online: bool

    def to_json(self) -> dict[str, object]:
        return {"type": "presence", "user": self.user, "display_name": self.display_name,
                "number": self.number, "online": self.online}  # fmt: skip


@dataclass(frozen=True, slots=True)
class IceCandidate:
    """A gateway ICE candidate for the browser's `addIceCandidate`; None: the gateway has no more."""

    call_id: str
    candidate: IceCandidateInit | None

    def to_json(self) -> dict[str, object]:
        value = self.candidate.to_json() if self.candidate is not None else None
        return {"type": "ice", "call_id": self.call_id, "candidate": value}


@dataclass(frozen=True, slots=True)
class Ended:
    """The call is over for this session: `reason` is a code (docs/signaling.md), `sip_status` the SIP
    final response that ended it, if any."""

    call_id: str
    reason: str
    message: str = ""
    sip_status: int | None = None

    def to_json(self) -> dict[str, object]:
        return {"type": "ended", "call_id": self.call_id, "reason": self.reason, "message": self.message,
                "sip_status": self.sip_status}  # fmt: skip


@dataclass(frozen=True, slots=True)
class SipRegistration:
    """The state of the gateway's registration of this user's SIP identity at the PBX (`pbx.register`):
    sent after login when there is one, and on every change. `state`: registered, registering,
    retry wait, failed, unregistered..."""

    aor: str
    state: str
    reason: str = ""

    def to_json(self) -> dict[str, object]:
        return {"type": "sip_registration", "aor": self.aor, "state": self.state, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class PbxState:
    """Whether the phone system answers the gateway's OPTIONS keep-alive (`pbx.keepalive_interval`): sent
    after login when known, and on every change. `state`: reachable, unreachable (calls will fail)."""

    state: str

    def to_json(self) -> dict[str, object]:
        return {"type": "pbx", "state": self.state}


@dataclass(frozen=True, slots=True)
class Transfer:
    """How the web user's transfer of `call_id` goes: `state` requested, accepted, progress, succeeded
    (the call ends `transferred`) or failed (the call goes on); `sip_status` of the REFER's answer or of
    the far end's call to the target (its NOTIFY's sipfrag)."""

    call_id: str
    state: str
    sip_status: int | None = None
    message: str = ""

    def to_json(self) -> dict[str, object]:
        return {"type": "transfer", "call_id": self.call_id, "state": self.state,
                "sip_status": self.sip_status, "message": self.message}  # fmt: skip


@dataclass(frozen=True, slots=True)
class TransferRequested:
    """The SIP party asks the web user to call `to` instead (it sent REFER, and her policy allows `to`):
    the browser places that call with `call {to, sdp, transfer_of: call_id}`."""

    call_id: str
    to: str

    def to_json(self) -> dict[str, object]:
        return {"type": "transfer_requested", "call_id": self.call_id, "to": self.to}


@dataclass(frozen=True, slots=True)
class Replaced:
    """The call's SIP party changed: an INVITE with Replaces took the SIP side over (an attended
    transfer or a pickup there, RFC 3891). `from`/`display` name the new party; the audio goes on."""

    call_id: str
    from_uri: str
    display: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"type": "replaced", "call_id": self.call_id, "from": self.from_uri, "display": self.display}


@dataclass(frozen=True, slots=True)
class CallSummary:
    """One call in `calls`: what the page needs to show it again before its audio is back."""

    call_id: str
    direction: str  # "outbound" (the web user called) | "inbound"
    state: str  # "connected" | "holding"
    remote: str | None  # the SIP party: the number or URI called, or the caller's From URI
    local_hold: bool = False
    remote_hold: bool = False
    connected_for: float | None = None  # seconds since the call was answered
    end_to_end: bool = False  # its media is the browser's with the far end: kept, taken back without an offer

    def to_json(self) -> dict[str, object]:
        return {
            "call_id": self.call_id,
            "direction": self.direction,
            "state": self.state,
            "remote": self.remote,
            "held_local": self.local_hold,
            "held_remote": self.remote_hold,
            "connected_for": None if self.connected_for is None else round(self.connected_for, 1),
            "end_to_end": self.end_to_end,
        }


@dataclass(frozen=True, slots=True)
class Calls:
    """After a login with a session token: the calls of the same login whose browser went away less
    than web_auth.reconnect_grace seconds ago. Each is taken back with `reattach {call_id, sdp}`."""

    calls: tuple[CallSummary, ...]

    def to_json(self) -> dict[str, object]:
        return {"type": "calls", "calls": [call.to_json() for call in self.calls]}


@dataclass(frozen=True, slots=True)
class Reattached:
    """The answer to `reattach`'s offer: the call's audio is back on the browser's new RTCPeerConnection;
    `held_local`/`held_remote` say who holds it now. Without `sdp`: the answer to a `reattach` without an
    offer (the browser kept its end-to-end media)."""

    call_id: str
    sdp: str | None
    local_hold: bool = False
    remote_hold: bool = False

    def to_json(self) -> dict[str, object]:
        found: dict[str, object] = {"type": "reattached", "call_id": self.call_id}
        if self.sdp is not None:
            found["sdp"] = self.sdp
        return {**found, "held_local": self.local_hold, "held_remote": self.remote_hold}


@dataclass(frozen=True, slots=True)
class WebLost:
    """No audio from the browser on call `call_id` (`cause` `silence`: no RTP for `seconds`): the SIP side
    hears a "reconnecting" fill until it is back; a page that hears this can `reattach`."""

    call_id: str
    cause: str
    seconds: float = 0.0

    def to_json(self) -> dict[str, object]:
        return {"type": "web_lost", "call_id": self.call_id, "cause": self.cause, "seconds": self.seconds}


Event = (
    Incoming
    | Offer
    | Answer
    | Ringing
    | Redirected
    | EarlyMedia
    | EarlyAnswer
    | Connected
    | Held
    | Resumed
    | DtmfReceived
    | InfoReceived
    | InfoResult
    | MessageReceived
    | CallMessage
    | MessageResult
    | PresenceChanged
    | IceCandidate
    | Ended
    | ErrorMessage
    | SipRegistration
    | PbxState
    | Transfer
    | TransferRequested
    | Replaced
    | Calls
    | Reattached
    | WebLost
    | CallQuality
    | RecordingChanged
    | ContactState
    | Voicemail
    | Merged
    | Split
)
ServerMessage = Event | Registered | Ack | Pong
EVENT_TYPES: tuple[str, ...] = (
    "incoming",
    "offer",
    "answer",
    "ringing",
    "early_media",
    "connected",
    "held",
    "resumed",
    "dtmf",
    "ice",
    "ended",
    "error",
    "sip_registration",
    "pbx",
    "transfer",
    "transfer_requested",
    "calls",
    "reattached",
    "message",
    "message_result",
    "presence",
    "quality",
    "recording",
    "contact_state",
    "voicemail",
    "merged",
    "split",
)


def encode(message: ServerMessage) -> str:
    """One message as compact JSON text that is always valid UTF-8: SIP headers are decoded with
    `surrogateescape`, so a caller's display name can hold lone surrogates, which would fail the
    WebSocket's UTF-8 encoding (the event lost); such messages get `\\uXXXX` escapes (valid JSON)."""
    text = json.dumps(message.to_json(), separators=(",", ":"), ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(message.to_json(), separators=(",", ":"))
    return text


def as_mapping(message: ServerMessage) -> Mapping[str, object]:
    return message.to_json()
