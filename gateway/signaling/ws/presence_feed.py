"""Presence pushed over `/ws` (issue 16 leftover): a `presence` event when a contact logs in or out, so
the softphone page need not poll `GET /contacts`.

`PresenceFeed` knows the logged-in `/ws` sessions (`watch` at login, `unwatch` at close). When a user's
first session opens (`online: true`) or her last one closes (`online: false`), every watching session
whose user may call her (the contacts rule of `GET /contacts`: `contacts.may_see`) gets
`presence {user, display_name, number, online}`. A session is never told about its own user.

Several gateways: `relay` (gateway/cluster/presence_channel.py) hears this instance's transitions first:
it publishes them to the others, and says whether to tell the local watchers (not "offline" while the
user still holds a session on another instance); the transitions of the others reach `push`.
"""

from __future__ import annotations

import logging
from typing import Protocol

from gateway.identity.lookup import IdentityMap
from gateway.identity.model import WebUser
from gateway.identity.policy import may_call
from gateway.signaling.events import PresenceChanged
from gateway.signaling.service import SessionSink

logger = logging.getLogger(__name__)


def may_see(caller: WebUser, user: WebUser, identity: IdentityMap) -> bool:
    """Whether `user` is one of `caller`'s contacts: another web user of her tenant (users[].tenant,
    config/pbxs.py) with a number `caller` may dial."""
    number = user.aor.user
    if user.id == caller.id or number is None or user.tenant != caller.tenant:
        return False
    domain = identity.pbx_domain
    return may_call(caller, number, domain) or may_call(caller, str(user.aor), domain)


class PresenceRelay(Protocol):
    async def local_change(self, user_id: str, online: bool) -> bool:
        """This instance's transition of `user_id`: passed on; whether the local watchers are told."""
        ...


class PresenceFeed:
    def __init__(self, identity: IdentityMap) -> None:
        self._identity = identity
        self._watchers: dict[str, SessionSink] = {}  # session id -> session
        self.relay: PresenceRelay | None = None  # several gateways: the others' transitions (see above)

    def watch(self, session: SessionSink) -> None:
        self._watchers[session.id] = session

    def unwatch(self, session: SessionSink) -> None:
        self._watchers.pop(session.id, None)

    async def changed(self, user_id: str, online: bool) -> None:
        """`user_id` came online (her first session) or went offline (her last): tell her watchers."""
        if self.relay is not None and not await self.relay.local_change(user_id, online):
            return
        await self.push(user_id, online)

    async def push(self, user_id: str, online: bool) -> None:
        """Tell the watchers who may see `user_id` that she is online or offline (now, as is)."""
        user = await self._identity.store.get(user_id)
        if user is None or user.aor.user is None:
            return
        event = PresenceChanged(user.id, user.display_name, user.aor.user, online)
        logger.info("presence: %s %s", user.id, "online" if online else "offline")
        for session in list(self._watchers.values()):
            if session.closed or not may_see(session.user, user, self._identity):
                continue
            try:
                await session.send_event(event)
            except Exception:  # one socket's failure must not keep the others uninformed
                logger.exception("presence for session %s not sent", session.id)
