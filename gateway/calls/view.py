"""`CallView`: read access to a call's state, the base of `CallMachine` (gateway/calls/machine.py).

The records themselves (gateway/calls/records.py) are in the slots declared here; only `CallMachine`'s
methods replace them. The flat names other packages read (`call.state`, `call.session_id`,
`call.local_hold`, `call.reinvite`, ...) are read-only properties over those records: assigning one
raises AttributeError, and tests/calls/test_records.py fails when a module outside machine.py tries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from gateway.calls.records import (
    Attachment,
    Hold,
    InviteProgress,
    Renegotiation,
    Setup,
    SipProgress,
    Transfer,
    WebProgress,
    WebSdp,
)
from gateway.calls.states import CallDirection, CallState, Reinvite, TimerName

if TYPE_CHECKING:
    from gateway.calls.reasons import Reason
    from gateway.config.pbxs import CallerId
    from gateway.identity.model import WebUser


_UP: Final = frozenset({CallState.CONNECTED, CallState.HOLDING})  # both legs are up (either may hold)


class CallView:
    """A call's state, read only."""

    __slots__ = (
        "_attachment",
        "_connected_at",
        "_created_at",
        "_end_reason",
        "_ended_at",
        "_hold",
        "_offer_waiters",
        "_renegotiation",
        "_ringing",
        "_setup",
        "_sip",
        "_state",
        "_timers",
        "_transfer",
        "_web",
        "call_id",
        "clock",
    )

    call_id: str
    clock: Callable[[], float]
    _state: CallState
    _created_at: float
    _connected_at: float | None
    _ended_at: float | None
    _end_reason: Reason | None
    _timers: set[TimerName]
    _ringing: dict[str, str]
    _offer_waiters: set[str]
    _setup: Setup
    _sip: SipProgress
    _web: WebProgress
    _hold: Hold
    _renegotiation: Renegotiation
    _attachment: Attachment
    _transfer: Transfer

    @property
    def state(self) -> CallState:
        return self._state

    @property
    def created_at(self) -> float:
        return self._created_at

    @property
    def connected_at(self) -> float | None:
        return self._connected_at

    @property
    def ended_at(self) -> float | None:
        return self._ended_at

    @property
    def end_reason(self) -> Reason | None:
        return self._end_reason

    @property
    def timers(self) -> frozenset[TimerName]:
        return frozenset(self._timers)

    @property
    def ringing(self) -> Mapping[str, str]:
        """Inbound, while ringing: session id -> user id."""
        return MappingProxyType(self._ringing)

    @property
    def offer_waiters(self) -> frozenset[str]:
        """Inbound, ringing: sessions that ring only with our offer (SIP libraries)."""
        return frozenset(self._offer_waiters)

    @property
    def setup(self) -> Setup:
        return self._setup

    @property
    def sip(self) -> SipProgress:
        return self._sip

    @property
    def web(self) -> WebProgress:
        return self._web

    @property
    def hold(self) -> Hold:
        return self._hold

    @property
    def renegotiation(self) -> Renegotiation:
        return self._renegotiation

    @property
    def attachment(self) -> Attachment:
        return self._attachment

    @property
    def transfer(self) -> Transfer:
        return self._transfer

    @property
    def sessions(self) -> frozenset[str]:
        """Browser sessions still involved (ringing, or carrying the call and not yet told its end)."""
        if self._state is CallState.CLOSED:
            return frozenset()
        carrying = {self.session_id} if self.session_id is not None and not self.web_gone else set()
        return frozenset(self._ringing) | carrying

    @property
    def duration(self) -> float | None:
        """Seconds connected, when the call was."""
        if self._connected_at is None:
            return None
        end = self._ended_at if self._ended_at is not None else self.clock()
        return end - self._connected_at

    @property
    def direction(self) -> CallDirection | None:
        return self._setup.direction

    @property
    def user(self) -> WebUser | None:
        return self._setup.user

    @property
    def target(self) -> str | None:
        return self._setup.target

    @property
    def direct(self) -> bool:
        return self._setup.direct

    @property
    def pbx(self) -> str | None:
        return self._setup.pbx

    @property
    def caller_id(self) -> CallerId | None:
        return self._setup.caller_id

    @property
    def sip_headers(self) -> tuple[tuple[str, str], ...]:
        return self._setup.sip_headers

    @property
    def remote_uri(self) -> str | None:
        return self._setup.remote_uri

    @property
    def sip_offer(self) -> str | None:
        return self._setup.sip_offer

    @property
    def passthrough(self) -> bool:
        return self._setup.passthrough

    @property
    def redirects(self) -> tuple[str, ...]:
        return self._setup.redirects

    @property
    def session_id(self) -> str | None:
        """The session carrying the call (dialer, or who answered)."""
        return self._web.session_id

    @property
    def web_gone(self) -> bool:
        return self._web.gone

    @property
    def web_offer_requested(self) -> bool:
        return self._web.sdp in (WebSdp.OFFER_REQUESTED, WebSdp.OFFER_SENT, WebSdp.ANSWER_RECEIVED)

    @property
    def web_offer_sent(self) -> bool:
        return self._web.sdp in (WebSdp.OFFER_SENT, WebSdp.ANSWER_RECEIVED)

    @property
    def web_answer_received(self) -> bool:
        return self._web.sdp is WebSdp.ANSWER_RECEIVED

    @property
    def web_answer_sent(self) -> bool:
        return self._web.sdp is WebSdp.ANSWER_SENT

    @property
    def early_web_offer(self) -> str | None:
        return self._web.early_offer

    @property
    def media_up(self) -> bool:
        return self._web.media_up

    @property
    def invite_sent(self) -> bool:
        return self._sip.invite is not InviteProgress.UNSENT

    @property
    def provisional_seen(self) -> bool:
        return self._sip.invite is InviteProgress.PROVISIONAL

    @property
    def rang(self) -> bool:
        return self._sip.rang

    @property
    def early_sip_sdp(self) -> str | None:
        return self._sip.early_sdp

    @property
    def local_sip_sdp(self) -> str | None:
        return self._sip.local_sdp

    @property
    def early_renegotiated(self) -> bool:
        return self._sip.early_renegotiated

    @property
    def local_hold(self) -> bool:
        return self._hold.local

    @property
    def remote_hold(self) -> bool:
        return self._hold.remote

    @property
    def want_local_hold(self) -> bool:
        return self._hold.want_local

    @property
    def reinvite(self) -> Reinvite | None:
        return self._renegotiation.phase

    @property
    def reinvite_hold(self) -> bool:
        return self._renegotiation.hold

    @property
    def reinvite_offer(self) -> str | None:
        return self._renegotiation.offer

    @property
    def reinvite_for_web(self) -> bool:
        return self._renegotiation.for_web

    @property
    def remote_hold_pending(self) -> bool:
        return self._renegotiation.remote_hold

    @property
    def offer_in_200(self) -> bool:
        return self._renegotiation.initial

    @property
    def detached(self) -> bool:
        """No session carries the call (its web leg may still be up: away)."""
        return self._attachment in (Attachment.DETACHED, Attachment.AWAY)

    @property
    def away(self) -> bool:
        """No session, the web leg still up: a reattach may take the call back without an offer."""
        return self._attachment is Attachment.AWAY

    @property
    def web_lost(self) -> bool:
        """No web leg (it failed, or went with its session)."""
        return self._attachment in (Attachment.WEB_LOST, Attachment.DETACHED)

    @property
    def reattaching(self) -> bool:
        return self._attachment in (Attachment.REATTACHING, Attachment.RELAYING)

    @property
    def relaying(self) -> bool:
        """A pass-through call taken back: the browser's new offer is at the far end (reconnect.py)."""
        return self._attachment is Attachment.RELAYING

    @property
    def transfer_out(self) -> str | None:
        return self._transfer.out

    @property
    def transfer_in(self) -> str | None:
        return self._transfer.into

    @property
    def transfer_in_replaces(self) -> tuple[str, bool]:
        """The Replaces the SIP party's REFER asks the web user's INVITE to carry ("" for none), and
        whether it names a dialog of this gateway (the INVITE then goes to its own listener)."""
        return self._transfer.into_replaces, self._transfer.into_own

    @property
    def replacing(self) -> bool:
        return self._transfer.replacing

    @property
    def picked_up_by(self) -> tuple[str, str | None] | None:
        return self._transfer.picked_up_by

    @property
    def pickup_offerless(self) -> bool:
        return self._transfer.pickup_offerless

    # --- questions the runtime asks (it carries the answer out; the call decides) -----------------

    @property
    def replaceable(self) -> bool:
        """Whether an attended transfer may replace this call: the web user's consultation call, whose
        far end the transferee is sent to (RFC 3891), must be connected or holding."""
        return self._state in _UP

    @property
    def may_renew_web(self) -> bool:
        """Whether a failed web leg (ICE or DTLS failed, the browser silent) may be renewed by its
        browser (`MediaWebLost`, gateway/calls/connected/reconnect.py) rather than end the call: only while the
        call is up. The runtime adds whether that browser can come back."""
        return self._state in _UP

    def may_wait_for(self, session_id: str) -> bool:
        """Whether this call may outlive ``session_id`` going away and wait for its browser (reconnect
        grace, gateway/calls/connected/reconnect.py): only a connected or held call, carried by that session."""
        return self._state in _UP and self._web.session_id == session_id

    @property
    def waits_for_browser(self) -> bool:
        """Detached and still up: a session of its login may take it back (`reattach`)."""
        return self._state in _UP and self._attachment in (Attachment.DETACHED, Attachment.AWAY)
