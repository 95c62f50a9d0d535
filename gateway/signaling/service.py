"""The boundary between signaling and the call layer: what signaling asks, and how it is told things.

Signaling calls a `CallService` for every WebSocket request about calls and an `OfferService` for the
HTTP offer/answer API; the call layer implements both (gateway/app.py wires them). The call layer talks
back to one browser through the `SessionSink` it was given in `session_opened` (`send_event`).

A service refuses a request by raising a `SignalingError` (usually `ServiceError(message, code=...,
field=..., http_status=...)`, or `NotFound`/`Forbidden`/`Conflict`); the browser gets it as an `error`
message (WebSocket) or an error body (HTTP). Any other exception is logged and reported as
`internal_error` without details.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from gateway.identity import WebUser
from gateway.signaling.events import Event
from sdp import IceCandidateInit, IceParameters, TrickleFragment

if TYPE_CHECKING:
    from gateway.signaling.http_api.progress import SessionProgress

JsonValue = None | bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"]


class SessionSink(Protocol):
    """One logged-in browser session (one WebSocket) as the call layer sees it."""

    @property
    def id(self) -> str:
        """The session id (unique per WebSocket; the same id is in presence and in `registered`)."""
        ...

    @property
    def user(self) -> WebUser: ...

    @property
    def closed(self) -> bool: ...

    async def send_event(self, event: Event) -> None:
        """Push one event to the browser; after the session closed, events are dropped (logged at DEBUG)."""
        ...


@runtime_checkable
class EarlyAnswerSink(Protocol):
    """A `SessionSink` that wants the gateway's WebRTC answer to its offer as soon as it exists, before
    the far end picks up (the HTTP offer API, JSON-RPC): the call layer hands it over with `web_answer`
    and then only tells progress (`ringing`, `connected` ...) as events."""

    def web_answer(self, call_id: str, sdp: str) -> None: ...


@runtime_checkable
class SelectiveEarlyAnswerSink(EarlyAnswerSink, Protocol):
    """An `EarlyAnswerSink` for some of its calls only: the WebSocket protocol's `call` with
    `early_answer: true` (the others get the answer in `early_media`/`connected`)."""

    def wants_early_answer(self, call_id: str) -> bool: ...


class CallService(Protocol):
    """What the call layer does for WebSocket sessions. `call_id`s are the service's own."""

    async def session_opened(self, session: SessionSink) -> None:
        """A browser logged in: it may now receive `incoming` calls."""
        ...

    async def session_closed(self, session: SessionSink) -> None:
        """The browser went away (socket closed, heartbeat lost, shutdown): end its calls cleanly."""
        ...

    async def dial(
        self,
        session: SessionSink,
        to: str,
        sdp: str,
        headers: tuple[tuple[str, str], ...] = (),
        transfer_of: str | None = None,
    ) -> str:
        """Start an outbound call to `to` with the browser's offer `sdp` (and custom SIP `headers`, which
        must be in sip.pass_headers); returns the new call id. `transfer_of`: the session's call whose
        REFER this call carries out (its progress is NOTIFYed)."""
        ...

    async def transfer(
        self, session: SessionSink, call_id: str, to: str | None, replaces: str | None
    ) -> None:
        """Transfer `call_id` (REFER, RFC 3515): blind to `to`, or attended to the far end of the session's
        consultation call `replaces` (RFC 3891); progress comes as `transfer` events."""
        ...

    async def answer(self, session: SessionSink, call_id: str, sdp: str | None) -> None:
        """Accept a ringing call; `sdp` is the browser's answer to the gateway's offer (None: not yet)."""
        ...

    async def reject(self, session: SessionSink, call_id: str, status: int) -> None:
        """Turn down a ringing call with SIP `status` (480, 486 or 603)."""
        ...

    async def request_offer(self, session: SessionSink, call_id: str) -> None:
        """A ringing session that can only ring with the gateway's WebRTC offer (a SIP library: the offer
        goes in its INVITE) asks for it; it comes as an `offer` event while others may still ring, and
        `answer(session, call_id, sdp)` with the answer takes the call."""
        ...

    async def cancel(self, session: SessionSink, call_id: str) -> None:
        """Give up an outbound call before it is answered."""
        ...

    async def hangup(self, session: SessionSink, call_id: str) -> None: ...

    async def hold(self, session: SessionSink, call_id: str) -> None: ...

    async def resume(self, session: SessionSink, call_id: str) -> None: ...

    async def dtmf(self, session: SessionSink, call_id: str, digits: str, duration_ms: int | None) -> None:
        """Send keypad `digits` (0-9 * # A-D) on the SIP leg, each for `duration_ms` (None: default)."""
        ...

    async def info(self, session: SessionSink, call_id: str, content_type: str, body: str) -> None:
        """Send an INFO with `body` of `content_type` to the call's SIP party (`info_result` follows)."""
        ...

    async def message(self, session: SessionSink, to: str, body: str) -> int:
        """Send a text message (SIP MESSAGE) to `to` under the outbound policy; the SIP final status."""
        ...

    async def add_candidate(
        self, session: SessionSink, call_id: str, candidate: IceCandidateInit | None
    ) -> None:
        """A trickled browser candidate for the call's web leg. None: the browser has no more candidates
        at all; an `IceCandidateInit` whose `candidate` is None: no more for that stream (its mid)."""
        ...


@runtime_checkable
class KeyedSink(Protocol):
    """A `SessionSink` authenticated with an API key (the HTTP offer API, WHIP, JSON-RPC): `api_key` is
    the key's id (gateway.config.users.api_key_id), None for other credentials; the key's own caps
    count its calls in every dialect (gateway/calls/caps.py)."""

    @property
    def api_key(self) -> str | None: ...


@runtime_checkable
class ResumableSink(SessionSink, Protocol):
    """A `SessionSink` whose browser can come back after its socket closed (the softphone's WebSocket
    sessions): `token_family` is the login its session tokens descend from (gateway/signaling/tokens.py),
    `logged_out` whether it ended with a `logout` (its calls end then, no grace)."""

    @property
    def token_family(self) -> str | None: ...

    @property
    def logged_out(self) -> bool: ...

    async def replaced(self) -> None:
        """A newer login of the same family took over while this socket looked open (a network change:
        no FIN came): close as if the socket had gone (its calls wait for that login), then the socket."""
        ...


@runtime_checkable
class ChatService(Protocol):
    """A `CallService` that carries chat in calls (SIP MESSAGE in the call's dialog, RFC 3428 §4)."""

    async def call_message(self, session: SessionSink, call_id: str, body: str) -> None:
        """Send `body` to the SIP party of call `call_id`; its answer comes as `message_result`."""
        ...


@runtime_checkable
class MergeService(Protocol):
    """A `CallService` that merges a web user's calls into one conference mixed in the gateway (three-way
    calls, issue 37 item 2: gateway/runtime/merge/)."""

    async def merge(self, session: SessionSink, call_ids: list[str]) -> str:
        """Merge the session's active call and its held call (`call_ids`, two ids); the conference id. The
        session is told `merged`; a refusal names `call_ids`."""
        ...

    async def split(self, session: SessionSink, call_id: str) -> None:
        """Take `call_id` out of its conference: it is held again; the session is told `split`."""
        ...


@runtime_checkable
class RecordService(Protocol):
    """A `CallService` that records calls (gateway/runtime/recordings.py)."""

    async def record(self, session: SessionSink, call_id: str, action: str) -> dict[str, object]:
        """Start, pause, resume or stop the recording of the session's call `call_id`; its state now (the
        session is told `recording`); a refusal names `call_id` or `action`."""
        ...


@runtime_checkable
class ReattachService(Protocol):
    """A `CallService` that keeps calls through a reconnect (web_auth.reconnect_grace)."""

    async def reattach(self, session: SessionSink, call_id: str, sdp: str | None) -> None:
        """Take call `call_id` back with the browser's new offer `sdp`: a call of the session's login whose
        browser went away (listed in `calls`), or the session's own call renewing its media; the answer
        comes as `reattached`. Without `sdp`: a call whose media flows end to end (`end_to_end` in
        `calls`), kept by the browser as it was: only its signaling comes back."""
        ...


@runtime_checkable
class ReofferService(Protocol):
    """A `CallService` that takes the browser's own new offer during a call (video added or dropped)."""

    async def reoffer(self, session: SessionSink, call_id: str, sdp: str) -> None:
        """The browser's new offer for its connected call `call_id`; the answer comes as `answer`
        once the SIP side took it, a refusal as `error {code: renegotiation_failed}`."""
        ...


@runtime_checkable
class PassthroughQuery(Protocol):
    """A `CallService` that says which calls pass their media through (`media: passthrough`)."""

    def passthrough(self, call_id: str) -> bool:
        """Whether call `call_id`'s ICE, DTLS and media are the far end's (the gateway carries none)."""
        ...


@runtime_checkable
class WebIceRestartService(Protocol):
    """A `CallService` whose calls restart ICE in place for a browser's new offer (issue 34)."""

    async def restart_web_ice(self, session: SessionSink, call_id: str, offer: str) -> str | None:
        """When `offer` (the browser's new offer for its call `call_id`, on the same RTCPeerConnection)
        restarts ICE (new ice-ufrag, RFC 8839 §4.4.1.1.1), the web leg restarts it in place and the answer
        comes back; None when it does not (hold, resume, a refresh, video). `BadOffer` for a new DTLS
        fingerprint, `Conflict` (code `ice_restart`) when the call's web leg cannot restart now."""
        ...


@dataclass(frozen=True, slots=True)
class OfferResult:
    """The gateway's answer to an HTTP offer, and the session it belongs to."""

    session_id: str
    sdp: str  # the gateway's SDP answer
    ice_candidates: tuple[IceCandidateInit, ...] = ()  # candidates not in the SDP (usually none)
    metadata: Mapping[str, JsonValue] = field(default_factory=dict)  # the request's, untouched
    call_id: str | None = None  # the call the session placed


def whip_key(user_id: str, destination: str) -> str:
    """A user's WHIP publishing to a destination, as a cluster records where it is (gateway/cluster)."""
    return f"{user_id}\x1f{destination}"


def session_key(user_id: str, session_id: str) -> str:
    """An HTTP session's key beyond its user (a cluster's owner records): a session id names the
    session within its user's own (two users may choose the same one, and neither can tell: issue 32
    item 10). Session ids have no `/` (docs/signaling.md), so the key splits at its last one."""
    return f"{user_id}/{session_id}"


def peer_family(user_id: str, peer_id: str) -> str:
    """The key a JSON-RPC peer's calls are found by across instances (a cluster's `detached` and `carried`
    records, gateway/cluster/wiring.py), beside the `/ws` logins' token families: a peer id is its
    user's (gateway/signaling/jsonrpc/relay.py), so the key names both."""
    return f"rpc:{user_id}:{peer_id}"


@runtime_checkable
class PeerSink(Protocol):
    """A `SessionSink` another instance can make again, under its id, for its calls when this one dies
    (runtime/continuity/takeover.py): a JSON-RPC peer with an announced id (`takeover_peer`, else None),
    which takes them back there by announcing it again."""

    @property
    def takeover_peer(self) -> str | None: ...

    def forget_call(self, call_id: str) -> None:
        """The call goes on at another instance (a drain handed it over): the peer no longer holds it."""
        ...


@runtime_checkable
class RenewingSink(Protocol):
    """A `SessionSink` without a socket whose browser renews its lost web media with a new offer of its
    own (an HTTP API session: `POST /webrtc/offer` with its `session_id`, issue 34): when the media goes,
    its connected call waits `web_auth.reconnect_grace` for that offer instead of ending at once."""

    @property
    def renews_media(self) -> bool: ...


@runtime_checkable
class FlowSink(Protocol):
    """A `SessionSink` whose browser's own dialog another instance can carry on when this one dies
    (runtime/continuity/takeover.py), or takes over from this one while it drains: a SIP library over
    WebSocket (gateway/websip/takeover.py). Its library renews the call's media there with a re-INVITE
    once it is back on a flow."""

    def handover(self, call_id: str) -> dict[str, Any] | None:
        """What a survivor needs of call ``call_id``'s dialog with the browser (plain JSON); None when it
        cannot be carried on now (not answered, a change under way)."""
        ...

    def forget_call(self, call_id: str) -> None:
        """The call goes on at another instance with the browser's dialog (a drain handed it over): no
        longer held here, and nothing said to the browser."""
        ...


@runtime_checkable
class WebRenewalService(Protocol):
    """A `CallService` that says whether a call waits for new web media (its web leg lost, or its
    instance died and a survivor carries it on): the browser's next offer is then taken as a
    `reattach` by the carrying session, a new web leg on the same SIP leg (issue 34)."""

    def web_media_lost(self, session: SessionSink, call_id: str) -> bool: ...


class OfferService(Protocol):
    """What the call layer does for the HTTP offer/answer API (one WebRTC session per offer)."""

    async def offer(
        self,
        user: WebUser,
        sdp: str,
        dial: str | None,
        metadata: Mapping[str, JsonValue],
        session_id: str | None,
        *,
        api_key: str | None = None,
        transfer_of: str | None = None,
        renewable: bool = False,
    ) -> OfferResult:
        """Answer the browser's offer `sdp` and call `dial`; the answer comes as soon as it exists (the
        call's progress follows in `progress`). `session_id`: the id the caller chose for the new
        session (a taken one is refused with `Conflict`, but one of the user's own connected sessions
        takes an offer that restarts its ICE: issue 34); `api_key`: the id of the API key the offer
        came with (its own caps apply: `KeyedSink`); `transfer_of`: the user's session whose SIP party
        sent the REFER (`transfer_requested`) this call carries out (`dial` None: the REFER's target;
        the referrer is NOTIFYed how the call goes); `renewable`: the browser renews lost media with a
        new offer for the session (the HTTP API; not WHIP, whose client cannot), so its call waits
        `reconnect_grace` for that instead of ending (`RenewingSink`)."""
        ...

    async def progress(self, user: WebUser, session_id: str) -> SessionProgress:
        """The state and progress events of session `session_id`; `NotFound` for an unknown session (or
        another user's). Finished sessions stay readable for a while (`SignalingLimits.session_retention`)."""
        ...

    async def add_candidate(self, user: WebUser, session_id: str, candidate: IceCandidateInit | None) -> None:
        """A trickled candidate for session `session_id`; raises `NotFound` for an unknown session."""
        ...

    async def close(self, user: WebUser, session_id: str) -> None:
        """End session `session_id` (and its call); raises `NotFound` for an unknown session."""
        ...

    async def control(
        self, user: WebUser, session_id: str, action: str, *, digits: str = "", duration_ms: int | None = None,
        to: str = "", body: str = "", replaces: str = "", other: str = "",
    ) -> None:  # fmt: skip
        """An action on session `session_id`'s call, as the WebSocket protocol's requests of the same
        names: hold, resume, dtmf (`digits`), transfer (blind to `to`, or attended: to the far end of
        the user's other session `replaces`), message (chat, `body`), merge (with the call of the user's
        other session `other`: three-way calls), split. `NotFound` for an unknown session,
        `Conflict` when it has no call in progress, the call layer's refusal."""
        ...


@runtime_checkable
class RecordingOffers(Protocol):
    """An `OfferService` that records its sessions' calls (POST /webrtc/record)."""

    async def record(self, user: WebUser, session_id: str, action: str) -> dict[str, object]:
        """Start, pause, resume or stop the recording of session `session_id`'s call: its state now."""
        ...


@runtime_checkable
class WhipRenewals(Protocol):
    """An `OfferService` that keeps a WHIP resource's call for its client's next publish (issue 34)."""

    def whip_waiting(self, user: WebUser, destination: str, api_key: str | None) -> str | None:
        """The id of `user`'s WHIP resource calling `destination` (opened with the same API key) whose
        call waits for new media (taken over from an instance that died): a publish to that destination
        renews it (`offer` with its `session_id`) instead of placing a second call. None: a new call."""
        ...

    def whip_resource(self, user: WebUser, session_id: str) -> bool:
        """Whether `session_id` is one of `user`'s live WHIP resources here (one taken over included)."""
        ...


@runtime_checkable
class IceRestartService(Protocol):
    """An `OfferService` whose sessions can restart ICE (WHIP's PATCH with new credentials, RFC 9725)."""

    async def restart_ice(self, user: WebUser, session_id: str, remote: IceParameters) -> TrickleFragment:
        """Restart the session's ICE with the client's new credentials `remote`; our new credentials and
        candidates come back as the fragment to answer with. `NotFound` for an unknown session,
        `ServiceError` (HTTP 422) when its media cannot restart now (not connected yet, pass-through)."""
        ...
