"""Flows that come back (RFC 5626): a SIP library's calls outlive its WebSocket for `reconnect_grace`.

A browser's WebSocket can close while its calls are fine: a proxy or load balancer restarted, the
socket timed out behind a NAT, the laptop changed network. Its WebRTC media does not depend on that
socket, and JsSIP and SIP.js keep their confirmed sessions, reconnect and REGISTER again. So when a
flow closes, a session with an answered call is *held* here instead of closed: its calls go on, and
the call core is told nothing. The session waits `web_auth.reconnect_grace` seconds for its browser
to register a new flow, which is recognised by (RFC 5626 §4.2, §5.2):

- the `+sip.instance` of an outbound binding it had (JsSIP always sends one, SIP.js with `regId`), or
- the Contact URI of a plain binding (SIP.js keeps its random Contact for the life of its UserAgent),

always for the same authenticated user. After a network change the old socket is often not known dead
yet when the library registers on its new one (no FIN reached us; the heartbeat finds it seconds later):
a session of the same browser with answered calls on a flow still open moves the same way
(service.py, `_left_behind`). The session then moves to the new flow: every dialog's
in-dialog requests (BYE, re-INVITE, INFO, NOTIFY, MESSAGE) go over it, and the library's own
requests come over it (an ICE restart re-INVITE after a network change: issue 34 item 1). A session
with no binding (a library that never registered) cannot be recognised and ends its calls at once,
as do unanswered calls (the library failed their INVITE transactions with its socket).

When the grace runs out first, the session closes and its calls end as they did before: BYE to the
far end.

In a cluster the new flow may reach another instance: the identities of the sessions with answered
calls (`WebSipService.carried`) are recorded in Redis, and that instance relays the flow here by its
REGISTER (gateway/signaling/sip_ws.py), where it is recognised as above.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.websip.registrar import Binding, flow_identity

if TYPE_CHECKING:
    from gateway.websip.sessions import WebSipSession

__all__ = ["LostFlows", "identities"]

logger = logging.getLogger(__name__)


def identities(bindings: list[Binding]) -> frozenset[str]:
    """What recognises a browser's new flow: its outbound instances, else its Contact URIs."""
    return frozenset(flow_identity(b.instance, str(b.contact.uri)) for b in bindings)


@dataclass(slots=True)
class _Held:
    session: WebSipSession
    known: frozenset[str]
    timer: asyncio.TimerHandle


class LostFlows:
    """Sessions whose flow closed under answered calls, waiting for their browser's new flow."""

    def __init__(self, grace: float, expired: Callable[[WebSipSession], None]) -> None:
        self.grace = grace
        self._expired = expired  # the session did not come back in time: close it (its calls end)
        self._held: dict[str, _Held] = {}  # session id ->

    def hold(self, session: WebSipSession, bindings: list[Binding]) -> bool:
        """Keep ``session`` (its flow closed, ``bindings`` were its user's there) for the grace; False
        when it cannot come back (no grace, no binding, no answered call)."""
        return self.hold_known(session, identities([b for b in bindings if b.user_id == session.user.id]))

    def hold_known(self, session: WebSipSession, known: frozenset[str]) -> bool:
        """Keep ``session`` for the grace, its browser recognised on a new flow by ``known``
        (`identities`): a session whose flow closed, or one made again for calls taken over from a dead
        instance (gateway/websip/takeover.py)."""
        if self.grace <= 0 or not known or not session.answered_calls():
            return False
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self.grace, self._expire, session.id)
        self._held[session.id] = _Held(session, known, timer)
        logger.info(
            "%s's SIP WebSocket %s:%d closed with %d call(s) up: they wait %g s for a new flow",
            session.user.id,
            *session.flow.address,
            len(session.answered_calls()),
            self.grace,
        )
        return True

    def claim(self, user_id: str, bindings: list[Binding]) -> WebSipSession | None:
        """The held session of ``user_id`` that ``bindings`` (a new flow's, just registered) bring back."""
        known = identities([b for b in bindings if b.user_id == user_id])
        for session_id, held in list(self._held.items()):
            if held.session.user.id == user_id and held.known & known:
                held.timer.cancel()
                del self._held[session_id]
                return held.session
        return None

    def held(self, session_id: str) -> WebSipSession | None:
        found = self._held.get(session_id)
        return None if found is None else found.session

    def holds(self, session: WebSipSession) -> bool:
        return session.id in self._held

    def known_of(self, session: WebSipSession) -> frozenset[str]:
        """What recognises the held ``session``'s browser (empty when it is not held)."""
        found = self._held.get(session.id)
        return frozenset() if found is None else found.known

    def known(self) -> frozenset[str]:
        """What recognises the held sessions' browsers (`identities`)."""
        return frozenset().union(*(held.known for held in self._held.values()))

    def release(self, session: WebSipSession) -> bool:
        """Stop holding ``session`` (its calls ended meanwhile); whether it was held."""
        held = self._held.pop(session.id, None)
        if held is not None:
            held.timer.cancel()
        return held is not None

    def drain(self) -> list[WebSipSession]:
        """Every held session, no longer held (the service is closing)."""
        sessions = [h.session for h in self._held.values()]
        for held in self._held.values():
            held.timer.cancel()
        self._held.clear()
        return sessions

    def _expire(self, session_id: str) -> None:
        held = self._held.pop(session_id, None)
        if held is not None:
            logger.info(
                "%s's SIP library did not register a new flow within %g s: its calls end",
                held.session.user.id,
                self.grace,
            )
            self._expired(held.session)

    def __len__(self) -> int:
        return len(self._held)
