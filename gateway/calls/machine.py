"""`CallMachine`: one call, pairing one web leg with one SIP leg. Sans-I/O.

How it works: `handle(event)` looks the pair (state, type of event) up in `TRANSITIONS`
(gateway/calls/table.py). A pair that is not there raises `IllegalEvent` naming both; a pair that
is there runs its handler, which may still refuse the event when the call's direction or progress
rules it out (a 2xx before the INVITE went out). Handlers validate before they change anything,
so a refused event leaves the call as it was. They change state only through `_set_state`, which
logs `call=<id> old -> new`, and they return commands for the SIP UA, the media bridge, signaling
and the timers; the machine itself does no I/O and reads time only from the injected clock.

Timers are named (`TimerName`): the machine starts and cancels them by command and ignores a
TimerFired for one it does not consider running (a cancel that raced the firing). On entering
`closing` every timer but CLOSING is cancelled; on entering `closed` all are. In `closed` every
event raises, so no command can follow the end of a call.

Each browser session involved in a call is told about its end exactly once (NotifyEnded for the
session carrying the call, StopRinging for sessions that only rang), unless it disconnected.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from gateway.calls.commands import CancelTimer, Command, NotifyEnded, StartTimer, StopRinging
from gateway.calls.errors import IllegalEvent, WrongSession
from gateway.calls.reasons import EndReason, Reason, local_reason
from gateway.calls.settings import CallSettings
from gateway.calls.states import CallDirection, CallState, Reinvite, TimerName
from gateway.calls.table import TRANSITIONS

if TYPE_CHECKING:
    from gateway.calls.events import Event
    from gateway.identity.model import WebUser

logger = logging.getLogger(__name__)


class CallMachine:
    def __init__(
        self,
        call_id: str,
        settings: CallSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.call_id = call_id
        self.settings = settings if settings is not None else CallSettings()
        self.clock = clock
        self.jitter = jitter  # in [0, 1): spreads 491 retries (RFC 3261 §14.1)
        self.state = CallState.IDLE
        self.direction: CallDirection | None = None
        self.created_at = clock()
        self.connected_at: float | None = None
        self.ended_at: float | None = None
        self.end_reason: Reason | None = None
        # the web side
        self.session_id: str | None = None  # the session carrying the call (dialer, or who answered)
        self.user: WebUser | None = None  # outbound: the dialing user
        self.ringing: dict[str, str] = {}  # inbound, while ringing: session id -> user id
        self.web_gone = False  # the carrying session was told the end, or disconnected
        # call setup
        self.target: str | None = None  # outbound Request-URI
        self.direct = (
            False  # outbound: the INVITE goes to the target's host (a web user of ours), not the PBX
        )
        self.sip_headers: tuple[tuple[str, str], ...] = ()  # outbound: the web call's custom headers
        self.remote_uri: str | None = None  # inbound From URI
        self.sip_offer: str | None = None  # inbound: the INVITE's offer (None: a late offer)
        self.passthrough = False  # inbound: the offer goes to the browser as it is (runtime/passthrough.py)
        self.offer_in_200 = False  # late offer: our offer is in the INVITE's 200 until the ACK answers it
        self.invite_sent = False
        self.redirects: list[str] = []  # outbound: the 3xx targets followed, in order (calls/redirects.py)
        self.provisional_seen = False
        self.rang = False  # NotifyRinging sent
        self.early_sip_sdp: str | None = None
        self.web_offer_sent = False
        # inbound, ringing: sessions that ring only with our offer (SIP libraries), and that offer
        self.offer_waiters: set[str] = set()
        self.web_offer_requested = False  # MediaOfferToWeb went out (while ringing, or on accept)
        self.early_web_offer: str | None = None
        self.web_answer_received = False
        self.web_answer_sent = False
        self.media_up = False
        self.local_sip_sdp: str | None = None  # the last SDP we gave the SIP party
        # hold and re-INVITEs
        self.local_hold = False
        self.remote_hold = False
        self.want_local_hold = False
        self.reinvite: Reinvite | None = None
        self.reinvite_hold = False  # what our pending re-INVITE asks for
        self.reinvite_offer: str | None = None
        self.reinvite_for_web = False  # our pending re-INVITE carries the browser's own new offer
        self.remote_hold_pending = False  # what the SIP party's pending re-INVITE says
        # transfer (gateway/calls/transfer.py): our REFER out (what it asks for), theirs being reported on
        self.transfer_out: str | None = None  # the destination or consultation call of our REFER
        self.transfer_in: str | None = None  # the target the SIP party referred the web user to
        self.replacing = False  # an INVITE with Replaces is taking the SIP leg over (replaces.py)
        self.picked_up_by: tuple[str, str | None] | None = None  # its (From URI, display): pickup.py
        self.pickup_offerless = False  # that INVITE had no offer: ours goes in its 200 (pickup.py)
        self.early_renegotiated = False  # an UPDATE's offer changed the early session (early_update.py)
        # reconnect grace (reconnect.py): the browser went away (detached) or its media failed (web_lost)
        self.detached = False
        self.web_lost = False
        self.reattaching = False  # MediaRenewWeb is out
        self.timers: set[TimerName] = set()
        self._out: list[Command] = []

    def __repr__(self) -> str:
        return f"<CallMachine {self.call_id} {self.state.value} {self.direction}>"

    @property
    def sessions(self) -> frozenset[str]:
        """Browser sessions still involved (ringing, or carrying the call and not yet told its end)."""
        if self.state is CallState.CLOSED:
            return frozenset()
        carrying = {self.session_id} if self.session_id is not None and not self.web_gone else set()
        return frozenset(self.ringing) | carrying

    @property
    def duration(self) -> float | None:
        """Seconds connected, when the call was."""
        if self.connected_at is None:
            return None
        end = self.ended_at if self.ended_at is not None else self.clock()
        return end - self.connected_at

    def handle(self, event: Event) -> list[Command]:
        """Feed one event; the commands to carry out, in order."""
        handler = TRANSITIONS.get((self.state, type(event)))
        if handler is None:
            raise IllegalEvent(self.call_id, self.state, event)
        self._out = []
        try:
            handler(self, event)
            return self._out
        finally:
            self._out = []

    # --- used by the handlers -------------------------------------------------------------------

    def _set_state(self, new: CallState) -> None:
        old, self.state = self.state, new
        logger.info("call=%s %s -> %s", self.call_id, old.value, new.value)

    def emit(self, *commands: Command) -> None:
        self._out.extend(commands)

    def illegal(self, event: object, detail: str) -> IllegalEvent:
        return IllegalEvent(self.call_id, self.state, event, detail)

    def require_session(self, session_id: str) -> None:
        """Refuse a session that does not carry this call (or was already told its end)."""
        if session_id != self.session_id or self.web_gone:
            raise WrongSession(self.call_id, session_id)

    def start_timer(self, name: TimerName, seconds: float) -> None:
        self.timers.add(name)
        self.emit(StartTimer(self.call_id, name, seconds))

    def cancel_timer(self, name: TimerName) -> None:
        if name in self.timers:
            self.timers.discard(name)
            self.emit(CancelTimer(self.call_id, name))

    def tell_ended(self, reason: Reason) -> None:
        """Tell the carrying session the call ended (once; not after it disconnected)."""
        if self.end_reason is None:
            self.end_reason = reason
        if self.session_id is None or self.web_gone:
            return
        self.web_gone = True
        self.emit(NotifyEnded(self.session_id, self.call_id, reason.code, reason.message, reason.sip_status))
        logger.info("call=%s ended for session %s: %s", self.call_id, self.session_id, reason.code.value)

    def stop_ringing(self, code: EndReason, sessions: list[str] | None = None) -> None:
        """Stop ringing `sessions` (all ringing ones by default)."""
        reason = local_reason(code)
        for session_id in list(self.ringing) if sessions is None else sessions:
            del self.ringing[session_id]
            self.emit(StopRinging(session_id, self.call_id, reason.message, code))

    def begin_closing(self, timeout: float | None = None) -> None:
        """The browser side is done; wait for the SIP leg to confirm (BYE answered, INVITE ended) for
        ``timeout`` seconds (default: closing_timeout)."""
        for name in sorted(self.timers - {TimerName.CLOSING}):
            self.cancel_timer(name)
        self.start_timer(TimerName.CLOSING, self.settings.closing_timeout if timeout is None else timeout)
        self._set_state(CallState.CLOSING)

    def close(self) -> None:
        for name in sorted(self.timers):
            self.cancel_timer(name)
        self.ringing.clear()
        self.ended_at = self.clock()
        self._set_state(CallState.CLOSED)
