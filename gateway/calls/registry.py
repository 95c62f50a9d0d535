"""`CallRegistry`: every call of the gateway, by call id and by browser session. Sans-I/O.

A web user may have several calls at once, and an inbound call may ring several sessions; the
registry owns one `CallMachine` per call, routes events to it, keeps the index session -> calls
in step with each machine's `sessions` after every event, and forgets a call once it is closed.
A session that goes away (`session_closed`) ends each of its calls as the call's state requires
(BYE when connected, CANCEL when inviting, 480 when it was the last to ring), through the
machines' own WebDisconnected handling. Call ids come from an injected factory.

Each new call is admitted against its user's caps first (gateway/calls/caps.py): a dial over a cap
raises CallLimitReached before the machine exists (no SIP, no ports); an inbound call does not ring a
user who is at her calls cap. A dial with an API key is admitted against the key's own caps first, and
the registry remembers which calls each key dialled. `port_pairs` (injected: the RTP allocator's count per call) feeds the
port budget.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from gateway.calls import caps
from gateway.calls.boundary.commands import Command
from gateway.calls.boundary.events import Event, SipIncomingInvite, WebDial, WebDisconnected
from gateway.calls.errors import UnknownCall
from gateway.calls.machine import CallMachine
from gateway.calls.settings import CallSettings
from gateway.calls.states import CallState
from gateway.identity.model import Found, WebUser

logger = logging.getLogger(__name__)


def _new_call_id() -> str:
    return uuid.uuid4().hex


class CallRegistry:
    def __init__(
        self,
        settings: CallSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        new_call_id: Callable[[], str] = _new_call_id,
        jitter: Callable[[], float] = random.random,
        port_pairs: Callable[[str], int] = lambda call_id: 0,
    ) -> None:
        self.settings = settings if settings is not None else CallSettings()
        self._clock = clock
        self._new_call_id = new_call_id
        self._jitter = jitter
        self._last_started: CallMachine | None = None
        self._calls: dict[str, CallMachine] = {}
        self._by_session: dict[str, set[str]] = {}
        self._rung: dict[str, dict[str, str]] = {}  # call id -> each session it rang -> its user
        self._keys: dict[str, str] = {}  # call id -> the API key it was dialled with (caps.admit_key)
        self.port_pairs = port_pairs

    def __len__(self) -> int:
        return len(self._calls)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._calls

    def __iter__(self) -> Iterator[CallMachine]:
        return iter(list(self._calls.values()))

    def get(self, call_id: str) -> CallMachine:
        try:
            return self._calls[call_id]
        except KeyError:
            raise UnknownCall(call_id) from None

    def calls_of(self, session_id: str) -> tuple[str, ...]:
        """Ids of the calls that involve `session_id` (ringing it, or carried by it), oldest first."""
        ids = self._by_session.get(session_id, set())
        return tuple(call_id for call_id in self._calls if call_id in ids)

    def dial(self, event: WebDial) -> tuple[str, list[Command]]:
        """Start an outbound call; the new call id and its first commands. CallLimitReached (nothing
        started) when it would take its user over one of her caps."""
        user_id, key = event.user.id, event.api_key
        if key is not None:
            caps.admit_key(self.settings.caps.for_key(key), self.key_usage(key))
        caps.admit(user_id, self.settings.caps.for_user(user_id), self.usage(user_id))
        call_id, commands = self._start(event)
        if key is not None and call_id in self._calls:
            self._keys[call_id] = key
        return call_id, commands

    def usage(self, user_id: str) -> caps.Usage:
        """The calls, unanswered calls and RTP port pairs `user_id` holds now."""
        calls = ((call, self._rung.get(call.call_id, {})) for call in self._calls.values())
        return caps.usage(user_id, calls, self.port_pairs)

    def key_usage(self, key_id: str) -> caps.Usage:
        """The calls, and unanswered calls, dialled with the API key `key_id` that are not over yet."""
        return caps.key_usage(
            call for call_id, call in self._calls.items() if self._keys.get(call_id) == key_id
        )

    def incoming(self, event: SipIncomingInvite) -> tuple[str, list[Command]]:
        """Start an inbound call from a new INVITE; the new call id and its first commands. Users already
        ringing `max_ringing_per_user` calls are not rung again (486 when nobody is left to ring)."""
        if isinstance(event.target, Found):
            ringing: dict[str, int] = {}
            for call in self._calls.values():
                for user_id in set(call.ringing.values()):
                    ringing[user_id] = ringing.get(user_id, 0) + 1
            limit = self.settings.max_ringing_per_user
            busy = frozenset(
                user.id
                for user in event.target.users
                if ringing.get(user.id, 0) >= limit or self._at_calls_cap(user.id)
            )
            if busy:
                event = dataclasses.replace(event, busy_users=busy)
        return self._start(event)

    def _at_calls_cap(self, user_id: str) -> bool:
        limits = self.settings.caps.for_user(user_id)
        return limits is not None and self.usage(user_id).calls >= limits.calls

    def handle(self, call_id: str, event: Event) -> list[Command]:
        """Route one event to its call (UnknownCall when there is none)."""
        call = self.get(call_id)
        try:
            return call.handle(event)
        finally:
            self._sync(call)

    def session_closed(self, session_id: str) -> list[Command]:
        """The browser session went away: every call it is part of hears WebDisconnected."""
        commands: list[Command] = []
        for call_id in self.calls_of(session_id):
            commands.extend(self.handle(call_id, WebDisconnected(session_id)))
        self._by_session.pop(session_id, None)
        return commands

    def discard(self, call_id: str) -> None:
        """Forget a call whatever its state (the driver tore it down after an unexpected error)."""
        self._rung.pop(call_id, None)
        self._keys.pop(call_id, None)
        if self._calls.pop(call_id, None) is None:
            return
        for session_id, ids in list(self._by_session.items()):
            ids.discard(call_id)
            if not ids:
                del self._by_session[session_id]
        logger.warning("call=%s discarded", call_id)

    def adopt(self, data: Mapping[str, Any], users: Callable[[str], WebUser | None]) -> CallMachine:
        """A call of another gateway instance carried on here (its `CallMachine.to_dict()`, taken over
        when that instance died: gateway/runtime/continuity/takeover.py). UnknownCall if the id is in use here."""
        call = CallMachine.from_dict(data, users, self.settings, clock=self._clock, jitter=self._jitter)
        if call.call_id in self._calls:
            raise UnknownCall(call.call_id)  # never two calls under one id
        self._calls[call.call_id] = call
        self._sync(call)
        logger.info("call=%s adopted (%s)", call.call_id, call.state.value)
        return call

    def started(self, call_id: str) -> CallMachine | None:
        """The machine of the call the last `dial`/`incoming` started, open or already closed (a call
        refused at once, 480 or a dial policy's refusal, is forgotten before its runtime sees it, and
        its record needs it: issue 36)."""
        call = self._last_started
        return call if call is not None and call.call_id == call_id else None

    def _start(self, event: WebDial | SipIncomingInvite) -> tuple[str, list[Command]]:
        call_id = self._new_call_id()
        if call_id in self._calls:
            raise UnknownCall(call_id)  # the factory repeated itself: refuse rather than mix calls
        call = CallMachine(call_id, self.settings, clock=self._clock, jitter=self._jitter)
        self._calls[call_id] = call
        self._last_started = call
        logger.debug("call=%s created (%s)", call_id, type(event).__name__)
        try:
            return call_id, call.handle(event)
        finally:
            self._sync(call)

    def _sync(self, call: CallMachine) -> None:
        """Re-index `call` by its sessions; forget it when closed."""
        now = call.sessions
        if call.ringing:
            self._rung.setdefault(call.call_id, {}).update(call.ringing)
        for session_id, ids in list(self._by_session.items()):
            if call.call_id in ids and session_id not in now:
                ids.discard(call.call_id)
                if not ids:
                    del self._by_session[session_id]
        for session_id in now:
            self._by_session.setdefault(session_id, set()).add(call.call_id)
        if call.state is CallState.CLOSED:
            del self._calls[call.call_id]
            self._rung.pop(call.call_id, None)
            self._keys.pop(call.call_id, None)
            logger.debug("call=%s forgotten", call.call_id)
