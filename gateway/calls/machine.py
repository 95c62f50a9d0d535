"""`CallMachine`: one call, pairing one web leg with one SIP leg. Sans-I/O.

How it works: `handle(event)` looks the pair (state, type of event) up in `TRANSITIONS`
(gateway/calls/table.py). A pair that is not there raises `IllegalEvent` naming both; a pair that
is there runs its handler, which may still refuse the event when the call's direction or progress
rules it out (a 2xx before the INVITE went out). Handlers validate before they change anything,
so a refused event leaves the call as it was. They return commands for the SIP UA, the media bridge,
signaling and the timers; the machine itself does no I/O and reads time only from the injected clock.

The call's state is a handful of frozen records (gateway/calls/records.py: hold per side, the
re-INVITE in progress, attachment, transfer, SIP and web progress, setup) that only this class
replaces. Handlers change them through its methods (`enter`, `reinvite_to`, `attach_to`, ...), never
by assignment; each method checks its move against the record's table (`STATE_MOVES`,
`REINVITE_MOVES`, ...) and raises `IllegalMove` naming the old and new value. Every change of the
call's state or of a progress enum is logged at INFO as `call=<id> [what] old -> new`. The old flat
names (`call.local_hold`, `call.reinvite`, ...) stay readable as properties. `snapshot()` is the
whole state as one `CallRecord`; `to_dict()`/`from_dict()` make it plain JSON and back.

Timers are named (`TimerName`): the machine starts and cancels them by command and ignores a
TimerFired for one it does not consider running (a cancel that raced the firing). On entering
`closing` every timer but CLOSING is cancelled; on entering `closed` all are. In `closed` every
event raises, so no command can follow the end of a call.

Each browser session involved in a call is told about its end exactly once (NotifyEnded for the
session carrying the call, StopRinging for sessions that only rang), unless it disconnected.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from gateway.calls.boundary.commands import CancelTimer, Command, NotifyEnded, StartTimer, StopRinging
from gateway.calls.errors import IllegalEvent, IllegalMove, WrongSession
from gateway.calls.reasons import EndReason, Reason, local_reason
from gateway.calls.records import (
    ATTACHMENT_MOVES,
    INVITE_MOVES,
    REINVITE_MOVES,
    STATE_MOVES,
    WEB_SDP_MOVES,
    Attachment,
    CallRecord,
    InviteProgress,
    Renegotiation,
    WebSdp,
    check_move,
)
from gateway.calls.settings import CallSettings
from gateway.calls.states import CallDirection, CallState, Reinvite, Side, TimerName
from gateway.calls.table import TRANSITIONS
from gateway.calls.view import CallView

if TYPE_CHECKING:
    from gateway.calls.boundary.events import Event
    from gateway.config.pbxs import CallerId
    from gateway.identity.model import WebUser

logger = logging.getLogger(__name__)


class CallMachine(CallView):
    __slots__ = ("_out", "jitter", "settings")

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
        self._out: list[Command] = []
        self._restore(CallRecord(call_id, created_at=clock()))

    def _restore(self, record: CallRecord) -> None:
        self._state = record.state
        self._created_at = record.created_at
        self._connected_at = record.connected_at
        self._ended_at = record.ended_at
        self._end_reason = record.end_reason
        self._timers = set(record.timers)
        self._ringing = dict(record.ringing)  # inbound, while ringing: session id -> user id
        self._offer_waiters = set(record.offer_waiters)
        self._setup = record.setup
        self._sip = record.sip
        self._web = record.web
        self._hold = record.hold
        self._renegotiation = record.renegotiation
        self._attachment = record.attachment
        self._transfer = record.transfer

    def __repr__(self) -> str:
        return f"<CallMachine {self.call_id} {self._state.value} {self.direction}>"

    # --- the whole state ---------------------------------------------------------------------------

    def snapshot(self) -> CallRecord:
        return CallRecord(
            call_id=self.call_id,
            state=self._state,
            created_at=self._created_at,
            connected_at=self._connected_at,
            ended_at=self._ended_at,
            end_reason=self._end_reason,
            timers=frozenset(self._timers),
            ringing=tuple(self._ringing.items()),
            offer_waiters=frozenset(self._offer_waiters),
            setup=self._setup,
            sip=self._sip,
            web=self._web,
            hold=self._hold,
            renegotiation=self._renegotiation,
            attachment=self._attachment,
            transfer=self._transfer,
        )

    @classmethod
    def from_record(
        cls,
        record: CallRecord,
        settings: CallSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> CallMachine:
        """A machine resuming ``record`` (its timers are the runtime's to start again)."""
        call = cls(record.call_id, settings, clock=clock, jitter=jitter)
        call._restore(record)
        return call

    def to_dict(self) -> dict[str, Any]:
        return self.snapshot().to_dict()

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        users: Callable[[str], WebUser | None],
        settings: CallSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> CallMachine:
        return cls.from_record(CallRecord.from_dict(data, users), settings, clock=clock, jitter=jitter)

    # --- handling events ----------------------------------------------------------------------------

    def handle(self, event: Event) -> list[Command]:
        """Feed one event; the commands to carry out, in order."""
        handler = TRANSITIONS.get((self._state, type(event)))
        if handler is None:
            raise IllegalEvent(self.call_id, self._state, event)
        self._out = []
        try:
            handler(self, event)
            return self._out
        finally:
            self._out = []

    def emit(self, *commands: Command) -> None:
        self._out.extend(commands)

    def illegal(self, event: object, detail: str) -> IllegalEvent:
        return IllegalEvent(self.call_id, self._state, event, detail)

    def require_session(self, session_id: str) -> None:
        """Refuse a session that does not carry this call (or was already told its end)."""
        if session_id != self.session_id or self.web_gone:
            raise WrongSession(self.call_id, session_id)

    # --- the call's state ---------------------------------------------------------------------------

    def enter(self, new: CallState) -> None:
        """Move the call to ``new`` (STATE_MOVES says from where)."""
        check_move(self.call_id, "the call", STATE_MOVES, self._state, new)
        old, self._state = self._state, new
        logger.info("call=%s %s -> %s", self.call_id, old.value, new.value)

    def settle(self) -> None:
        """Connected, or holding while either side holds (no move when already there)."""
        state = CallState.HOLDING if self._hold.any else CallState.CONNECTED
        if state is not self._state:
            self.enter(state)

    def mark_connected(self) -> None:
        self._connected_at = self.clock()

    def end_with(self, reason: Reason) -> None:
        """The reason the call ends with (a refusal's, before anyone is told)."""
        self._end_reason = reason

    def start_timer(self, name: TimerName, seconds: float) -> None:
        self._timers.add(name)
        self.emit(StartTimer(self.call_id, name, seconds))

    def cancel_timer(self, name: TimerName) -> None:
        if name in self._timers:
            self._timers.discard(name)
            self.emit(CancelTimer(self.call_id, name))

    def timers_lost(self) -> None:
        """The timers this record names ran on a gateway instance that died: none runs here (takeover)."""
        self._timers = set()

    def timer_fired(self, name: TimerName) -> None:
        """``name`` fired: no longer running."""
        self._timers.discard(name)

    def tell_ended(self, reason: Reason) -> None:
        """Tell the carrying session the call ended (once; not after it disconnected)."""
        if self._end_reason is None:
            self._end_reason = reason
        session_id = self.session_id
        if session_id is None or self.web_gone:
            return
        self.web_left()
        self.emit(NotifyEnded(session_id, self.call_id, reason.code, reason.message, reason.sip_status))
        logger.debug("call=%s ended for session %s: %s", self.call_id, session_id, reason.code.value)

    def begin_closing(self, timeout: float | None = None) -> None:
        """The browser side is done; wait for the SIP leg to confirm (BYE answered, INVITE ended) for
        ``timeout`` seconds (default: closing_timeout)."""
        for name in sorted(self._timers - {TimerName.CLOSING}):
            self.cancel_timer(name)
        self.start_timer(TimerName.CLOSING, self.settings.closing_timeout if timeout is None else timeout)
        self.enter(CallState.CLOSING)

    def close(self) -> None:
        for name in sorted(self._timers):
            self.cancel_timer(name)
        self._ringing.clear()
        self._ended_at = self.clock()
        self.enter(CallState.CLOSED)

    def _log_move(self, what: str, old: object, new: object) -> None:
        if old != new:  # (the call's own state moves are INFO: `enter`; these are details)
            logger.debug("call=%s %s %s -> %s", self.call_id, what, _text(old), _text(new))

    # --- setup -------------------------------------------------------------------------------------

    def start_outbound(
        self,
        session_id: str,
        user: WebUser,
        headers: tuple[tuple[str, str], ...],
        *,
        direct: bool,
        grace: float | None = None,
    ) -> None:
        self._setup = dataclasses.replace(
            self._setup, direction=CallDirection.OUTBOUND, user=user, sip_headers=headers, direct=direct
        )
        self._web = dataclasses.replace(self._web, session_id=session_id, grace=grace)

    @property
    def reconnect_grace(self) -> float:
        """Seconds the call waits for its browser to come back: its dialect's (WebDial.grace), else
        web_auth.reconnect_grace."""
        return self.settings.reconnect_grace if self._web.grace is None else self._web.grace

    def start_inbound(self, remote_uri: str) -> None:
        self._setup = dataclasses.replace(self._setup, direction=CallDirection.INBOUND, remote_uri=remote_uri)

    def take_sip_offer(self, sdp: str | None, *, passthrough: bool) -> None:
        """Inbound: the INVITE's offer (None: a late offer), and whether it goes to the browser as it is."""
        self._setup = dataclasses.replace(self._setup, sip_offer=sdp, passthrough=passthrough)

    def dial_to(self, target: str, pbx: str | None = None, caller_id: CallerId | None = None) -> None:
        """The Request-URI, and (several PBXs, config/pbxs.py) the PBX chosen and the From presented."""
        self._setup = dataclasses.replace(self._setup, target=target, pbx=pbx, caller_id=caller_id)

    def redirect_to(self, target: str) -> None:
        """A 3xx followed: a new INVITE to ``target`` (RFC 3261 §8.1.3.4), waited for as the first."""
        self._setup = dataclasses.replace(
            self._setup, target=target, redirects=(*self._setup.redirects, target)
        )
        self.invite_to(InviteProgress.SENT)

    # --- the web side ------------------------------------------------------------------------------

    def ring(self, session_id: str, user_id: str) -> None:
        self._ringing.setdefault(session_id, user_id)
        self.mark_rang()  # (inbound: a web user rang; the call record tells a refusal of theirs from ours)

    def unring(self, session_id: str) -> None:
        """``session_id`` no longer rings (it went away), without telling it."""
        del self._ringing[session_id]

    def stop_ringing(self, code: EndReason, sessions: list[str] | None = None) -> None:
        """Stop ringing `sessions` (all ringing ones by default)."""
        reason = local_reason(code)
        for session_id in list(self._ringing) if sessions is None else sessions:
            del self._ringing[session_id]
            self.emit(StopRinging(session_id, self.call_id, reason.message, code))

    def wait_for_offer(self, session_id: str) -> None:
        """A ringing session rings only with our offer (a SIP library)."""
        self._offer_waiters.add(session_id)

    def answered_by(self, session_id: str) -> None:
        """A ringing session takes the call: it carries it from now on."""
        del self._ringing[session_id]
        self._offer_waiters.discard(session_id)
        self._web = dataclasses.replace(self._web, session_id=session_id)

    def web_left(self) -> None:
        """The carrying session was told the end, or went away: nothing more is told to it."""
        self._web = dataclasses.replace(self._web, gone=True)

    def web_sdp_to(self, new: WebSdp) -> None:
        check_move(self.call_id, "web sdp", WEB_SDP_MOVES, self._web.sdp, new)
        self._log_move("web sdp", self._web.sdp, new)
        self._web = dataclasses.replace(self._web, sdp=new)

    def keep_web_offer(self, sdp: str) -> None:
        """Inbound: the offer the bridge made for the browser (sent now or on accept)."""
        self._web = dataclasses.replace(self._web, early_offer=sdp)

    def web_media_up(self) -> None:
        self._web = dataclasses.replace(self._web, media_up=True)

    # --- the SIP side ------------------------------------------------------------------------------

    def invite_to(self, new: InviteProgress) -> None:
        check_move(self.call_id, "invite", INVITE_MOVES, self._sip.invite, new)
        self._log_move("invite", self._sip.invite, new)
        self._sip = dataclasses.replace(self._sip, invite=new)

    def mark_rang(self) -> None:
        self._sip = dataclasses.replace(self._sip, rang=True)

    def early_answer_from_sip(self, sdp: str) -> None:
        self._sip = dataclasses.replace(self._sip, early_sdp=sdp)

    def gave_sip(self, sdp: str | None) -> None:
        """The SDP we gave the SIP party last (an INVITE's offer, an answer, a re-offer)."""
        self._sip = dataclasses.replace(self._sip, local_sdp=sdp)

    def renegotiated_early(self) -> None:
        """An UPDATE changed the early session: the INVITE's 2xx repeats the old answer."""
        self._sip = dataclasses.replace(self._sip, early_renegotiated=True)

    # --- hold --------------------------------------------------------------------------------------

    def wish_hold(self, held: bool) -> None:
        """The web user's wish (hold or resume), made a fact by our next re-INVITE."""
        self._hold = dataclasses.replace(self._hold, want_local=held)

    def hold_to(self, side: Side, held: bool) -> bool:
        """Hold by ``side`` is now ``held``; whether that changed anything."""
        old = self._hold.local if side is Side.LOCAL else self._hold.remote
        if old == held:
            return False
        if side is Side.LOCAL:
            self._hold = dataclasses.replace(self._hold, local=held)
        else:
            self._hold = dataclasses.replace(self._hold, remote=held)
        logger.info("call=%s %s hold %s -> %s", self.call_id, side.value, _on(old), _on(held))
        return True

    # --- re-INVITE in progress ---------------------------------------------------------------------

    def reinvite_to(
        self,
        phase: Reinvite | None,
        *,
        offer: str | None = None,
        hold: bool | None = None,
        for_web: bool | None = None,
        remote_hold: bool | None = None,
        initial: bool | None = None,
        tries: int | None = None,
    ) -> None:
        """Move the re-INVITE in progress to ``phase`` (REINVITE_MOVES); the other fields change only
        when given (``tries`` starts again at 0 with each new re-INVITE of ours)."""
        old = self._renegotiation
        check_move(self.call_id, "reinvite", REINVITE_MOVES, old.phase, phase)
        self._log_move("reinvite", old.phase, phase)
        kept = 0 if phase is Reinvite.PREPARING else old.tries
        self._renegotiation = Renegotiation(
            phase=phase,
            hold=old.hold if hold is None else hold,
            offer=old.offer if offer is None else offer,
            for_web=old.for_web if for_web is None else for_web,
            remote_hold=old.remote_hold if remote_hold is None else remote_hold,
            initial=old.initial if initial is None else initial,
            tries=kept if tries is None else tries,
        )

    # --- reconnect grace ---------------------------------------------------------------------------

    def attach_to(self, new: Attachment) -> None:
        check_move(self.call_id, "attachment", ATTACHMENT_MOVES, self._attachment, new)
        self._log_move("attachment", self._attachment, new)
        self._attachment = new

    def reattach_by(self, session_id: str, *, relayed: bool = False) -> None:
        """A session takes the call back: it carries it, and a new web leg is being made (``relayed``:
        a pass-through call's, its new offer sent to the far end)."""
        self.attach_to(Attachment.RELAYING if relayed else Attachment.REATTACHING)
        self._web = dataclasses.replace(self._web, session_id=session_id, gone=False)

    # --- transfer and takeover ---------------------------------------------------------------------

    def transfer_out_to(self, target: str | None) -> None:
        """Our REFER goes out for ``target`` (None: it is over). One at a time."""
        if (self._transfer.out is None) == (target is None):
            raise IllegalMove(self.call_id, "transfer out", self._transfer.out, target)
        self._log_move("transfer out", self._transfer.out, target)
        self._transfer = dataclasses.replace(self._transfer, out=target)

    def transfer_in_to(self, target: str | None, replaces: str = "", *, own: bool = False) -> None:
        """The SIP party's REFER to ``target`` is being carried out (None: it is over), its INVITE to carry
        ``replaces`` (``own``: a dialog of this gateway). One at a time."""
        if (self._transfer.into is None) == (target is None):
            raise IllegalMove(self.call_id, "transfer in", self._transfer.into, target)
        self._log_move("transfer in", self._transfer.into, target)
        self._transfer = dataclasses.replace(
            self._transfer,
            into=target,
            into_replaces=replaces if target else "",
            into_own=own and bool(target),
        )

    def replacing_to(self, replacing: bool) -> None:
        """An INVITE with Replaces is (or is no longer) taking the SIP leg over."""
        self._log_move("replacing", self._transfer.replacing, replacing)
        self._transfer = dataclasses.replace(self._transfer, replacing=replacing)

    def picked_up(self, from_uri: str, display: str | None, *, offerless: bool) -> None:
        """An INVITE with Replaces picks the ringing call up (pickup.py)."""
        if self._transfer.replacing:
            raise IllegalMove(self.call_id, "pickup", "replacing", from_uri)
        self.replacing_to(True)
        self._transfer = dataclasses.replace(
            self._transfer, picked_up_by=(from_uri, display), pickup_offerless=offerless
        )

    def pickup_refused(self) -> None:
        self.replacing_to(False)
        self._transfer = dataclasses.replace(self._transfer, picked_up_by=None)

    def pickup_answered(self) -> None:
        """The pickup is answered (its offer in our 200 when it had none: ``pickup_offerless`` ends)."""
        self.replacing_to(False)
        self._transfer = dataclasses.replace(self._transfer, pickup_offerless=False)


def _on(held: bool) -> str:
    return "on" if held else "off"


def _text(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, (CallState, Reinvite, Attachment, InviteProgress, WebSdp)):
        return str(value.value)
    return str(value)
