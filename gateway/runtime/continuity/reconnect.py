"""Which calls wait for their browser, and who may take them back (web_auth.reconnect_grace).

The call machine keeps a connected call up when its browser goes (gateway/calls/connected/reconnect.py);
this is the driver's side of it. A session that closes without a `logout` and whose login can come back (a
WebSocket session of the softphone protocol, `ResumableSink`, with a token family) leaves its connected
calls *detached* rather than disconnected, recorded here with the login's token family and user. When a
session of the same family and user logs in (a reload of the page, a reconnect after a network change: the
page logs in with its saved token, which keeps the family), it is told those calls (`calls`), and `reattach
{call_id, sdp}` gives it one back. Sessions of other dialects (HTTP offers, JSON-RPC, SIP over WebSocket)
and calls not yet connected end as before. A pass-through call waits too: its media flows end to end
meanwhile, and its `reattach` offer goes to the far end in a re-INVITE. A login whose older session of the
same family still looks open with calls (a network change: no FIN came) takes them over at once
(`lingering`: that session is `replaced`, its socket closed 4010). A call taken over from an instance that
died is told to the sessions of its login already open here too (`newly_waiting`: a page that logged in at
the survivor before the takeover); each session hears of a call once. This module owns the detached calls'
owners; it imports the call layer, the signaling's `SessionSink`/`ResumableSink` and events, and the
runtime's `CallRuntime`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gateway.calls import CallRegistry
from gateway.calls.boundary import events as ev
from gateway.calls.machine import CallMachine
from gateway.calls.states import CallDirection
from gateway.runtime.call_runtime import CallRuntime
from gateway.signaling.errors import NotFound
from gateway.signaling.events import CallSummary
from gateway.signaling.service import RenewingSink, ResumableSink, SessionSink

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Owner:
    family: str
    user_id: str


def _login(session: SessionSink) -> _Owner | None:
    """The login a session belongs to, when it may come back for its calls."""
    if not isinstance(session, ResumableSink) or session.logged_out or not session.token_family:
        return None
    return _Owner(session.token_family, session.user.id)


class Reconnects:
    def __init__(self, registry: CallRegistry) -> None:
        self._registry = registry
        self._detached: dict[str, _Owner] = {}  # call id -> the login that may take it back
        self._listed: dict[str, set[str]] = {}  # call id -> the sessions told it waits (`calls`), once each
        # told the login (token family) of each call that starts waiting here: a cluster records where
        # (gateway/cluster/wiring.py), so that the page's reconnect to another instance is relayed here
        self.on_detached: Callable[[str], None] | None = None
        # whether a call's media flows end to end (the driver's `passthrough`): said in `calls`
        self.end_to_end: Callable[[str], bool] = lambda _call_id: False

    @property
    def grace(self) -> float:
        return self._registry.settings.reconnect_grace

    def _machine(self, call_id: str) -> CallMachine | None:
        return self._registry.get(call_id) if call_id in self._registry else None

    def leaving(self, session: SessionSink, call_id: str, runtime: CallRuntime) -> ev.Event:
        """What call `call_id` hears as `session` closes: WebDetached when it can wait for the browser."""
        owner, machine = _login(session), self._machine(call_id)
        if (
            self.grace > 0
            and owner is not None
            and machine is not None
            and machine.may_wait_for(session.id)
            and runtime.bridge is not None  # (a pass-through call's new offer goes to its far end)
        ):
            self._detached[call_id] = owner
            self._listed.pop(call_id, None)  # detached again: the login's next sessions hear of it
            if self.on_detached is not None:
                self.on_detached(owner.family)
            return ev.WebDetached(session.id)
        return ev.WebDisconnected(session.id)

    def lingering(self, session: SessionSink, others: Iterable[SessionSink]) -> list[ResumableSink]:
        """The open sessions of `session`'s login (not itself) that carry calls: a page whose network
        changed logs in again before its old socket is known dead, and takes them over."""
        owner = _login(session)
        if owner is None:
            return []
        return [
            other
            for other in others
            if other is not session
            and isinstance(other, ResumableSink)
            and not other.closed
            and _login(other) == owner
            and self._registry.calls_of(other.id)
        ]

    def families(self) -> frozenset[str]:
        """The logins (token families) whose calls wait here for their browser."""
        return frozenset(
            owner.family
            for call_id, owner in self._detached.items()
            if (machine := self._machine(call_id)) is not None and machine.waits_for_browser
        )

    def resumable(self, call_id: str, session: SessionSink | None, closed_by_browser: bool = False) -> bool:
        """Whether the web leg of call `call_id`, carried by `session`, is worth waiting for: its login
        may come back, or its browser renews lost media with a new offer (an HTTP API session, a JSON-RPC
        peer) unless it closed its RTCPeerConnection itself (`closed_by_browser`: that is its hang-up,
        for lack of a socket whose loss says more)."""
        if self.grace > 0 and call_id in self._detached:  # its socket went already (away): its login's
            return True  # return takes it back, web leg or not
        if self.grace <= 0 or session is None:
            return False
        if _login(session) is not None:
            return True
        return isinstance(session, RenewingSink) and session.renews_media and not closed_by_browser

    def waiting(self, session: SessionSink) -> tuple[CallSummary, ...]:
        """The detached calls `session`'s login may take back and it was not told yet (forgetting those
        that ended; one taken over but not yet waiting is kept for `newly_waiting`)."""
        owner = _login(session)
        found = []
        for call_id, held_by in list(self._detached.items()):
            machine = self._machine(call_id)
            if machine is None:
                self._forget(call_id)
                continue
            if machine.waits_for_browser and held_by == owner and self._first_told(call_id, session):
                found.append(_summary(machine, self.end_to_end(call_id)))
        return tuple(found)

    def newly_waiting(
        self, call_id: str, sessions: Iterable[SessionSink]
    ) -> list[tuple[SessionSink, CallSummary]]:
        """The open sessions of the login call `call_id` (taken over from an instance that died) waits
        for, which were not told of it: a page that logged in here before the takeover (its login was
        not held for it, or the takeover was slower than that wait) hears of it now, not never."""
        owner, machine = self._detached.get(call_id), self._machine(call_id)
        if owner is None or machine is None or not machine.waits_for_browser:
            return []
        return [
            (session, _summary(machine, self.end_to_end(call_id)))
            for session in sessions
            if not session.closed and _login(session) == owner and self._first_told(call_id, session)
        ]

    def _first_told(self, call_id: str, session: SessionSink) -> bool:
        told = self._listed.setdefault(call_id, set())
        if session.id in told:
            return False
        told.add(session.id)
        return True

    def _forget(self, call_id: str) -> None:
        self._detached.pop(call_id, None)
        self._listed.pop(call_id, None)

    def waits_for(self, session: SessionSink, call_id: str) -> bool:
        """Whether call `call_id` is detached and waits for `session`'s login."""
        machine = self._machine(call_id)
        owner = _login(session)
        return (
            machine is not None
            and machine.detached
            and owner is not None
            and self._detached.get(call_id) == owner
        )

    def claim(self, session: SessionSink, call_id: str) -> None:
        """Check that `session` may reattach call `call_id` (NotFound otherwise, as for any unknown call)."""
        machine = self._machine(call_id)
        if machine is None:
            raise NotFound(f"no call {call_id!r} for this session", field="call_id")
        if machine.detached:
            if not self.waits_for(session, call_id):
                raise NotFound(f"no call {call_id!r} for this session", field="call_id")
            logger.info("call=%s taken back by session %s of %s", call_id, session.id, session.user.id)
            return
        if machine.session_id != session.id:  # renewing one's own media only
            raise NotFound(f"no call {call_id!r} for this session", field="call_id")

    def abandoned(self, session: SessionSink) -> list[str]:
        """A session that logged out: the detached calls of its login end now (the logout says the user
        is done; its tokens can no longer take them back)."""
        if not isinstance(session, ResumableSink) or not session.logged_out or not session.token_family:
            return []
        owner = _Owner(session.token_family, session.user.id)
        ids = [call_id for call_id, held_by in self._detached.items() if held_by == owner]
        for call_id in ids:
            self._forget(call_id)
        return ids

    def owner(self, call_id: str, session: SessionSink | None) -> tuple[str, str] | None:
        """(token family, user id) of the login that may take call `call_id` back: its carrying
        session's, or the one it waits for; None when no login can (another dialect, a logout)."""
        held_by = self._detached.get(call_id)
        if held_by is None and session is not None:
            held_by = _login(session)
        return (held_by.family, held_by.user_id) if held_by is not None else None

    def adopt(self, call_id: str, family: str, user_id: str) -> None:
        """Call `call_id`, taken over from an instance that died, waits here for login `family`."""
        self._detached[call_id] = _Owner(family, user_id)
        self._listed.pop(call_id, None)
        if self.on_detached is not None:
            self.on_detached(family)

    def reattached(self, call_id: str) -> None:
        self._forget(call_id)


def _summary(machine: CallMachine, end_to_end: bool) -> CallSummary:
    outbound = machine.direction is CallDirection.OUTBOUND
    return CallSummary(
        machine.call_id,
        "outbound" if outbound else "inbound",
        machine.state.value,
        machine.target if outbound else machine.remote_uri,
        machine.local_hold,
        machine.remote_hold,
        machine.duration,
        end_to_end,
    )
