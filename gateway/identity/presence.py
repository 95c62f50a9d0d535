"""Which web users have open sessions (a WebSocket to the softphone), as seen by the identity map.

The in-memory implementation serves a single gateway instance; a Redis one will share it across
instances. Signaling calls `add`/`remove` as WebSockets open and close.
"""

from __future__ import annotations

import logging
from typing import Protocol

logger = logging.getLogger(__name__)


class Presence(Protocol):
    async def sessions_of(self, user_id: str) -> tuple[str, ...]:
        """Open session ids of `user_id` (empty when not online)."""
        ...


class InMemoryPresence:
    def __init__(self) -> None:
        self._sessions: dict[str, dict[str, None]] = {}  # user id -> session ids, in arrival order

    async def add(self, user_id: str, session_id: str) -> None:
        self._sessions.setdefault(user_id, {})[session_id] = None
        logger.info("user %s online: session %s", user_id, session_id)

    async def remove(self, user_id: str, session_id: str) -> None:
        """Forget one session; removing an unknown session is harmless (closes may race)."""
        sessions = self._sessions.get(user_id)
        if sessions is None or session_id not in sessions:
            return
        del sessions[session_id]
        if not sessions:
            del self._sessions[user_id]
        logger.info("user %s: session %s closed", user_id, session_id)

    async def sessions_of(self, user_id: str) -> tuple[str, ...]:
        return tuple(self._sessions.get(user_id, {}))

    async def online_users(self) -> tuple[str, ...]:
        return tuple(self._sessions)
