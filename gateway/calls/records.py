"""The records a call's state is made of, and the moves allowed between their values. Sans-I/O.

How it works: `CallMachine` (gateway/calls/machine.py) holds one frozen record per concern and replaces a
record whole when the concern changes; nothing else writes them. Its handlers (gateway/calls/*.py) ask
the machine for a change by name (`call.reinvite_to(Reinvite.SENT, offer=...)`); where a record has a
progress enum, the machine looks the move (old, new) up in that enum's table below and raises
`IllegalMove` naming both when it is not there, as `CallState`'s moves (`STATE_MOVES`) and sipcore's
transactions do. A handler validates before it changes anything, so a table miss is a bug in a handler,
never a peer's doing.

    Hold          who holds (RFC 3264 §8.4): the web user, the SIP party, and what the web user wants
    Renegotiation the one re-INVITE (or early UPDATE, RFC 3311) in progress: `Reinvite`, what it offers
    Attachment    whether the browser and its web leg are with the call (reconnect grace, reconnect.py)
    Transfer      REFER out and in (RFC 3515), an INVITE with Replaces taking the leg (RFC 3891)
    SipProgress   our INVITE (`InviteProgress`) and the SDPs given and taken on the SIP side
    WebProgress   the web side's offer/answer (`WebSdp`), the carrying session, ringing sessions
    Setup         who calls whom, fixed at the start (a followed 3xx changes the target, RFC 3261 §8.1.3.4)

`CallRecord` is all of them with the call's state and timers: `to_dict()` is plain JSON (str, int,
float, bool, None, lists, dicts) and `CallRecord.from_dict(data, users)` reads it back, so a call can be
stored and resumed elsewhere. A web user is written as its id only (no credentials leave the process):
`users` looks it up again.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, TypeVar

from gateway.calls.errors import IllegalMove, InvalidValue
from gateway.calls.reasons import EndReason, Reason
from gateway.calls.states import CallDirection, CallState, Reinvite, TimerName
from gateway.config.pbxs import CallerId

if TYPE_CHECKING:
    from gateway.identity.model import WebUser

E = TypeVar("E", bound=enum.Enum)


def check_move(
    call_id: str, what: str, table: Mapping[Any, frozenset[Any]], old: object, new: object
) -> None:
    """Raise IllegalMove unless ``table`` lets ``what`` move from ``old`` to ``new``."""
    if new not in table.get(old, frozenset()):
        raise IllegalMove(call_id, what, old, new)


_S = CallState

STATE_MOVES: Final[Mapping[CallState, frozenset[CallState]]] = MappingProxyType(
    {
        _S.IDLE: frozenset({_S.INVITING, _S.INVITED, _S.CLOSED}),
        _S.INVITING: frozenset({_S.EARLY, _S.CONNECTED, _S.HOLDING, _S.CLOSING, _S.CLOSED}),
        _S.INVITED: frozenset({_S.EARLY, _S.CLOSED}),
        _S.EARLY: frozenset({_S.CONNECTED, _S.HOLDING, _S.CLOSING, _S.CLOSED}),
        _S.CONNECTED: frozenset({_S.HOLDING, _S.CLOSING, _S.CLOSED}),
        _S.HOLDING: frozenset({_S.CONNECTED, _S.CLOSING, _S.CLOSED}),
        _S.CLOSING: frozenset({_S.CLOSED}),
        _S.CLOSED: frozenset(),
    }
)
"""The call's own state: where each may go (gateway/calls/table.py says on which events)."""


# --- hold -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hold:
    """Hold per side (RFC 3264 §8.4); the call is holding while either holds. `want_local` is the web
    user's wish, which our next re-INVITE makes a fact (midcall.advance)."""

    local: bool = False  # our re-INVITE offered sendonly, the SIP party agreed
    remote: bool = False  # the SIP party's offer was sendonly or inactive
    want_local: bool = False

    @property
    def any(self) -> bool:
        return self.local or self.remote


# --- re-INVITE in progress ---------------------------------------------------------------------------

_R = Reinvite

REINVITE_MOVES: Final[Mapping[Reinvite | None, frozenset[Reinvite | None]]] = MappingProxyType(
    {
        # every phase may end (None): answered, refused, or the dialog went away (RFC 3261 §15.1.2)
        None: frozenset({None, _R.PREPARING, _R.OFFERING, _R.ANSWERING, _R.AWAITING_ACK}),
        _R.PREPARING: frozenset({None, _R.SENT}),
        _R.SENT: frozenset({None, _R.RETRY_WAIT}),
        # theirs goes first (§14.1); or the same offer again (a pass-through call's browser offer)
        _R.RETRY_WAIT: frozenset({None, _R.OFFERING, _R.ANSWERING, _R.SENT}),
        _R.ANSWERING: frozenset({None, _R.ASKING_WEB}),
        _R.ASKING_WEB: frozenset({None, _R.ANSWERING}),
        _R.OFFERING: frozenset({None, _R.AWAITING_ACK}),
        _R.AWAITING_ACK: frozenset({None}),
    }
)


@dataclass(frozen=True, slots=True)
class Renegotiation:
    """The one re-INVITE (or early UPDATE) in progress, and what it is about. `offer`, `hold` and
    `for_web` outlive the phase (a 2xx applies `offer` after the phase ended)."""

    phase: Reinvite | None = None
    hold: bool = False  # what our re-INVITE asks for
    offer: str | None = None  # the SDP we offered in it (or in a 200: AWAITING_ACK)
    for_web: bool = False  # ours carries the browser's own new offer (escalation.py)
    remote_hold: bool = False  # what the SIP party's re-INVITE being answered says
    initial: bool = False  # the 200 of the INVITE itself carries our offer (a late offer)
    tries: int = 0  # the same offer sent again after a 491 (a pass-through call taken back: reconnect.py)


# --- reconnect grace ------------------------------------------------------------------------------


class Attachment(enum.StrEnum):
    """Whether the browser and its web leg are with a connected call (reconnect.py)."""

    ATTACHED = "attached"  # the carrying session and its web leg are up
    WEB_LOST = "web_lost"  # the web leg failed; the session may renew it
    DETACHED = "detached"  # the session went away (its web leg too); a session may take the call back
    # the session went away, its web leg still up (a socket lost, its media not): the call's audio goes on,
    # and a session may take the call back without an offer while the leg lasts (`reattach` kept)
    AWAY = "away"
    REATTACHING = "reattaching"  # a new web leg is being made (MediaRenewWeb is out)
    RELAYING = "relaying"  # a pass-through call's new browser offer is at its far end (our re-INVITE)


_A = Attachment

ATTACHMENT_MOVES: Final[Mapping[Attachment, frozenset[Attachment]]] = MappingProxyType(
    {
        _A.ATTACHED: frozenset({_A.WEB_LOST, _A.DETACHED, _A.AWAY, _A.REATTACHING, _A.RELAYING}),
        _A.AWAY: frozenset({_A.ATTACHED, _A.DETACHED, _A.REATTACHING, _A.RELAYING}),
        _A.WEB_LOST: frozenset({_A.DETACHED, _A.REATTACHING, _A.RELAYING}),
        _A.DETACHED: frozenset({_A.REATTACHING, _A.RELAYING}),
        _A.REATTACHING: frozenset({_A.ATTACHED, _A.WEB_LOST, _A.DETACHED}),
        _A.RELAYING: frozenset({_A.ATTACHED, _A.WEB_LOST, _A.DETACHED}),
    }
)


# --- transfer and takeover -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transfer:
    """REFER both ways (RFC 3515, transfer.py) and an INVITE with Replaces (RFC 3891: replaces.py,
    pickup.py). One transfer each way at a time: `out` and `into` move only from None and back."""

    out: str | None = None  # the destination or consultation call of our REFER
    into: str | None = None  # the target the SIP party referred the web user to
    into_replaces: str = ""  # the Replaces that REFER asked the web user's INVITE to carry (RFC 3891)
    into_own: bool = False  # that Replaces names a dialog of this gateway: the INVITE goes to itself
    replacing: bool = False  # an INVITE with Replaces is taking the SIP leg over (its offer with the bridge)
    picked_up_by: tuple[str, str | None] | None = None  # the pickup's (From URI, display)
    pickup_offerless: bool = False  # that INVITE had no offer: ours goes in its 200


# --- the SIP side ----------------------------------------------------------------------------------


class InviteProgress(enum.StrEnum):
    """Our INVITE (outbound): not sent, sent, answered provisionally (the PBX is there)."""

    UNSENT = "unsent"
    SENT = "sent"
    PROVISIONAL = "provisional"


_I = InviteProgress

INVITE_MOVES: Final[Mapping[InviteProgress, frozenset[InviteProgress]]] = MappingProxyType(
    {
        _I.UNSENT: frozenset({_I.SENT}),
        _I.SENT: frozenset({_I.PROVISIONAL, _I.SENT}),  # SENT again: a 3xx followed (redirects.py)
        _I.PROVISIONAL: frozenset({_I.SENT}),
    }
)


@dataclass(frozen=True, slots=True)
class SipProgress:
    invite: InviteProgress = InviteProgress.UNSENT
    rang: bool = False  # NotifyRinging sent
    early_sdp: str | None = None  # the 18x's answer (early media)
    local_sdp: str | None = None  # the last SDP we gave the SIP party
    early_renegotiated: bool = False  # an UPDATE's offer changed the early session (early_update.py)


# --- the web side ----------------------------------------------------------------------------------


class WebSdp(enum.StrEnum):
    """The browser's first offer/answer (JSEP, RFC 8829). Inbound: our offer asked of the bridge, sent,
    answered; outbound the browser offered in its dial, and gets its answer (ANSWER_SENT)."""

    NONE = "none"
    OFFER_REQUESTED = "offer_requested"  # MediaOfferToWeb went out (while ringing, or on accept)
    OFFER_SENT = "offer_sent"
    ANSWER_RECEIVED = "answer_received"
    ANSWER_SENT = "answer_sent"  # outbound


_W = WebSdp

WEB_SDP_MOVES: Final[Mapping[WebSdp, frozenset[WebSdp]]] = MappingProxyType(
    {
        _W.NONE: frozenset({_W.OFFER_REQUESTED, _W.ANSWER_SENT}),
        # ANSWER_RECEIVED at once: a SIP library answers the offer it rang with (inbound.early_answer)
        _W.OFFER_REQUESTED: frozenset({_W.OFFER_SENT, _W.ANSWER_RECEIVED}),
        _W.OFFER_SENT: frozenset({_W.ANSWER_RECEIVED}),
        _W.ANSWER_RECEIVED: frozenset(),
        _W.ANSWER_SENT: frozenset(),
    }
)


@dataclass(frozen=True, slots=True)
class WebProgress:
    session_id: str | None = None  # the session carrying the call (dialer, or who answered)
    gone: bool = False  # the carrying session was told the end, or disconnected
    sdp: WebSdp = WebSdp.NONE
    early_offer: str | None = None  # inbound: the offer made for the browser (while ringing or after)
    media_up: bool = False  # inbound: WebRTC is up (MediaConnected)
    # seconds the carrying session's dialect waits for lost media (None: web_auth.reconnect_grace); the
    # HTTP API's client has no socket to come back on, so it gets its own, shorter one (WebDial.grace)
    grace: float | None = None


# --- setup ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Setup:
    direction: CallDirection | None = None
    user: WebUser | None = None  # outbound: the dialing user
    target: str | None = None  # outbound Request-URI
    direct: bool = False  # outbound: the INVITE goes to the target's host (a web user of ours), not the PBX
    sip_headers: tuple[tuple[str, str], ...] = ()  # outbound: the web call's custom headers
    remote_uri: str | None = None  # inbound From URI
    sip_offer: str | None = None  # inbound: the INVITE's offer (None: a late offer)
    passthrough: bool = False  # inbound: the offer goes to the browser as it is (runtime/passthrough.py)
    redirects: tuple[str, ...] = ()  # outbound: the 3xx targets followed, in order (redirects.py)
    pbx: str | None = None  # outbound: the PBX chosen among several (config/pbxs.py); None: `pbx:`
    caller_id: CallerId | None = None  # outbound: what the From presents (a route's or that PBX's)


# --- the whole call --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallRecord:
    """Everything a call is, but its settings, clock and jitter (the instance's own) and the commands
    of the event being handled. Times are the clock's readings."""

    call_id: str
    state: CallState = CallState.IDLE
    created_at: float = 0.0
    connected_at: float | None = None
    ended_at: float | None = None
    end_reason: Reason | None = None
    timers: frozenset[TimerName] = frozenset()  # running: the runtime holds their deadlines
    ringing: tuple[tuple[str, str], ...] = ()  # inbound, ringing: (session id, user id), in ring order
    offer_waiters: frozenset[str] = frozenset()  # ringing sessions that ring only with our offer
    setup: Setup = field(default_factory=Setup)
    sip: SipProgress = field(default_factory=SipProgress)
    web: WebProgress = field(default_factory=WebProgress)
    hold: Hold = field(default_factory=Hold)
    renegotiation: Renegotiation = field(default_factory=Renegotiation)
    attachment: Attachment = Attachment.ATTACHED
    transfer: Transfer = field(default_factory=Transfer)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: enums by value, tuples and sets as (sorted) lists, the user by id."""
        setup = self.setup
        reason = self.end_reason
        return {
            "call_id": self.call_id,
            "state": self.state.value,
            "created_at": self.created_at,
            "connected_at": self.connected_at,
            "ended_at": self.ended_at,
            "end_reason": None
            if reason is None
            else {"code": reason.code.value, "message": reason.message, "sip_status": reason.sip_status},
            "timers": sorted(t.value for t in self.timers),
            "ringing": [list(pair) for pair in self.ringing],
            "offer_waiters": sorted(self.offer_waiters),
            "setup": {
                "direction": None if setup.direction is None else setup.direction.value,
                "user": None if setup.user is None else setup.user.id,
                "target": setup.target,
                "direct": setup.direct,
                "sip_headers": [list(pair) for pair in setup.sip_headers],
                "remote_uri": setup.remote_uri,
                "sip_offer": setup.sip_offer,
                "passthrough": setup.passthrough,
                "redirects": list(setup.redirects),
                "pbx": setup.pbx,
                "caller_id": None if setup.caller_id is None else _caller_id_dict(setup.caller_id),
            },
            "sip": {
                "invite": self.sip.invite.value,
                "rang": self.sip.rang,
                "early_sdp": self.sip.early_sdp,
                "local_sdp": self.sip.local_sdp,
                "early_renegotiated": self.sip.early_renegotiated,
            },
            "web": {
                "session_id": self.web.session_id,
                "gone": self.web.gone,
                "sdp": self.web.sdp.value,
                "early_offer": self.web.early_offer,
                "media_up": self.web.media_up,
                "grace": self.web.grace,
            },
            "hold": {
                "local": self.hold.local,
                "remote": self.hold.remote,
                "want_local": self.hold.want_local,
            },
            "renegotiation": {
                "phase": None if self.renegotiation.phase is None else self.renegotiation.phase.value,
                "hold": self.renegotiation.hold,
                "offer": self.renegotiation.offer,
                "for_web": self.renegotiation.for_web,
                "remote_hold": self.renegotiation.remote_hold,
                "initial": self.renegotiation.initial,
                "tries": self.renegotiation.tries,
            },
            "attachment": self.attachment.value,
            "transfer": {
                "out": self.transfer.out,
                "into": self.transfer.into,
                "into_replaces": self.transfer.into_replaces,
                "into_own": self.transfer.into_own,
                "replacing": self.transfer.replacing,
                "picked_up_by": None
                if self.transfer.picked_up_by is None
                else list(self.transfer.picked_up_by),
                "pickup_offerless": self.transfer.pickup_offerless,
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], users: Callable[[str], WebUser | None]) -> CallRecord:
        """Read `to_dict()`'s output back; ``users`` finds the dialing web user by id. A value of the
        wrong kind raises InvalidValue naming it."""
        try:
            return _from_dict(data, users)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, InvalidValue):
                raise
            raise InvalidValue(f"not a call record: {type(exc).__name__} {exc}") from None


def _optional(kind: Callable[[Any], E], value: Any) -> E | None:
    return None if value is None else kind(value)


def _caller_id_dict(caller_id: CallerId) -> dict[str, Any]:
    return {"display": caller_id.display, "user": caller_id.user, "privacy": caller_id.privacy}


def _pairs(value: Any) -> tuple[tuple[str, str], ...]:
    return tuple((str(a), str(b)) for a, b in value)


def _from_dict(data: Mapping[str, Any], users: Callable[[str], WebUser | None]) -> CallRecord:
    reason = data["end_reason"]
    setup, sip, web = data["setup"], data["sip"], data["web"]
    hold, reneg, transfer = data["hold"], data["renegotiation"], data["transfer"]
    user = None
    if setup["user"] is not None:
        user = users(setup["user"])
        if user is None:
            raise InvalidValue(f"call {data['call_id']!r}: no web user {setup['user']!r}")
    picked = transfer["picked_up_by"]
    return CallRecord(
        call_id=data["call_id"],
        state=CallState(data["state"]),
        created_at=data["created_at"],
        connected_at=data["connected_at"],
        ended_at=data["ended_at"],
        end_reason=None
        if reason is None
        else Reason(EndReason(reason["code"]), reason["message"], reason["sip_status"]),
        timers=frozenset(TimerName(t) for t in data["timers"]),
        ringing=_pairs(data["ringing"]),
        offer_waiters=frozenset(data["offer_waiters"]),
        setup=Setup(
            direction=_optional(CallDirection, setup["direction"]),
            user=user,
            target=setup["target"],
            direct=setup["direct"],
            sip_headers=_pairs(setup["sip_headers"]),
            remote_uri=setup["remote_uri"],
            sip_offer=setup["sip_offer"],
            passthrough=setup["passthrough"],
            redirects=tuple(setup["redirects"]),
            pbx=setup.get("pbx"),
            caller_id=None if setup.get("caller_id") is None else CallerId(**setup["caller_id"]),
        ),
        sip=SipProgress(
            invite=InviteProgress(sip["invite"]),
            rang=sip["rang"],
            early_sdp=sip["early_sdp"],
            local_sdp=sip["local_sdp"],
            early_renegotiated=sip["early_renegotiated"],
        ),
        web=WebProgress(
            session_id=web["session_id"],
            gone=web["gone"],
            sdp=WebSdp(web["sdp"]),
            early_offer=web["early_offer"],
            media_up=web["media_up"],
            grace=None if web.get("grace") is None else float(web["grace"]),  # (older records lack it)
        ),
        hold=Hold(local=hold["local"], remote=hold["remote"], want_local=hold["want_local"]),
        renegotiation=Renegotiation(
            phase=_optional(Reinvite, reneg["phase"]),
            hold=reneg["hold"],
            offer=reneg["offer"],
            for_web=reneg["for_web"],
            remote_hold=reneg["remote_hold"],
            initial=reneg["initial"],
            tries=int(reneg.get("tries", 0)),  # (absent from an older instance's handover)
        ),
        attachment=Attachment(data["attachment"]),
        transfer=Transfer(
            out=transfer["out"],
            into=transfer["into"],
            into_replaces=transfer.get("into_replaces", ""),
            into_own=transfer.get("into_own", False),
            replacing=transfer["replacing"],
            picked_up_by=None if picked is None else (str(picked[0]), picked[1]),
            pickup_offerless=transfer["pickup_offerless"],
        ),
    )
