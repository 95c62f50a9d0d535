"""Calls for a web user online on another instance: redirected there (RFC 3261 §21.3.3, 302).

Why a redirect and not Kamailio's registrar (usrloc): presence already lives in Redis, renewed by the
heartbeat and lapsing with a dead instance; mirroring every online user as a REGISTER binding into
Kamailio would keep a second copy of it, refreshed per user and cleaned up late (a dead instance's
bindings live until they expire). Instead Kamailio's dispatcher hands the INVITE to any live instance;
if the callee's sessions are elsewhere, that instance answers 302 with the owner's address, and
Kamailio's failure route (`uac_redirect`) sends the INVITE on there: one extra round trip on loopback
or a LAN, no state in Kamailio, and a gateway used without Kamailio does the same for a phone that
follows redirects.

The Contact carries `gw-cluster=<instance id>`: an INVITE that was already redirected is never
redirected again (the user moved between the lookup and the INVITE: 480, not a loop).
"""

from __future__ import annotations

import logging
from typing import Final

from gateway.cluster.node import ClusterNode
from gateway.cluster.presence import ClusterPresence
from gateway.identity.model import NotOnline
from gateway.sip.incoming import IncomingCall

logger = logging.getLogger(__name__)

MARKER: Final = "gw-cluster"


class ClusterRouting:
    def __init__(self, node: ClusterNode, presence: ClusterPresence) -> None:
        self._node = node
        self._presence = presence

    async def redirect(self, call: IncomingCall, target: NotOnline) -> tuple[str, ...]:
        """The Contacts of the live instances (not draining) holding sessions of the users `target`
        names; () when none, or when this INVITE was redirected here already. Raises ClusterUnavailable
        without Redis."""
        uri = call.request_uri
        if MARKER in str(uri):
            return ()
        owners: dict[str, None] = {}
        for user in target.users:
            for instance_id in await self._presence.owners(user.id):
                owners[instance_id] = None
        if not owners:
            return ()
        instances = await self._node.instances()
        number = getattr(uri, "user", None) or (target.users[0].aor.user or target.users[0].id)
        contacts = []
        for instance_id in owners:
            info = instances.get(instance_id)
            if info is None or info.draining:
                continue
            contacts.append(f"sip:{number}@{info.sip};{MARKER}={self._node.id}")
        return tuple(contacts)
