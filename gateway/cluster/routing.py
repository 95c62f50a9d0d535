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

A user whose sessions are split over instances (two tabs that HAProxy sent to different instances) is
rung on all of them by the same means: the instance the INVITE reached, holding some of her sessions,
answers 302 with one Contact per holder, its own first (each tagged, so none redirects again), and
Kamailio forks the INVITE to them in parallel (RFC 3261 §16.6: get_redirects turns the Contacts into
branches; the first 200 wins, the other branches are CANCELled). Why not ask the owners over the internal
HTTP API to ring: the call would then have its media on one instance and its ringing on others, and the
answer would have to travel back; with the fork each instance rings and answers its own sessions as for
any call. The cost is one Redis round trip per inbound call (a script: her presence sets, then the
holders' records), and a 302 round trip only when she is split. Without Redis she is rung where the call landed.

Web-to-web calls (runtime/web_calls.py): the callee's INVITE goes to this instance's own listener when
she has a session here, else to the advertised SIP address of an instance that holds her
(`web_route`), tagged so that it rings her sessions there and is not redirected (the caller's user agent
would not follow a 302 to a host that is not the PBX's). So a web-to-web call rings the callee's
sessions on one instance: this one if she is here, else the first live holder.
"""

from __future__ import annotations

import logging
from typing import Final

from gateway.cluster.errors import ClusterUnavailable
from gateway.cluster.node import ClusterNode, InstanceInfo
from gateway.cluster.presence import ClusterPresence
from gateway.identity.model import Found, NotOnline, WebUser
from gateway.sip.transactions.tu import IncomingRequest
from gateway.sip.useragent.incoming import IncomingCall

logger = logging.getLogger(__name__)

MARKER: Final = "gw-cluster"


class ClusterRouting:
    def __init__(self, node: ClusterNode, presence: ClusterPresence) -> None:
        self._node = node
        self._presence = presence

    async def redirect(
        self, call: IncomingCall | IncomingRequest, target: NotOnline | Found
    ) -> tuple[str, ...]:
        """The Contacts to answer 302 with (RFC 3261 §21.3.3), or () to handle the call here.

        NotOnline here: the Contacts of the live instances (not draining) holding sessions of the users
        `target` names; () when none. Raises ClusterUnavailable without Redis (the caller answers 503:
        the edge tries another instance). Found here: () unless other instances hold sessions of them
        too; then this instance's own Contact first and theirs (the edge forks to all). Without Redis:
        () (ring here). Never a Contact for an INVITE that was redirected here already."""
        uri = call.request.uri
        if MARKER in str(uri):
            return ()
        try:
            holders = await self._holders(target.users, "route to the user's instance")
        except ClusterUnavailable:
            if isinstance(target, Found):
                logger.warning(
                    "call=%s: Redis unavailable, ringing the sessions here only", call.request.call_id
                )
                return ()
            raise
        number = getattr(uri, "user", None) or (target.users[0].aor.user or target.users[0].id)
        contacts = [self._contact(number, str(self._node.settings.advertise.sip))] if isinstance(target, Found) else []  # fmt: skip
        for info in holders:
            if isinstance(info, InstanceInfo) and not info.draining:
                contacts.append(self._contact(number, info.sip))
        return tuple(contacts) if len(contacts) > isinstance(target, Found) else ()

    async def web_route(self, callee: WebUser) -> str | None:
        """The Request-URI of a web-to-web call for `callee`, who has no session here: the advertised SIP
        address of a live instance that holds her, tagged (rings there, never redirected); None when she
        is online nowhere (or Redis is unavailable)."""
        number = callee.aor.user or callee.id
        try:
            holders = await self._holders((callee,), "route to the user's instance")
        except ClusterUnavailable:
            return None
        for info in holders:
            if isinstance(info, InstanceInfo) and not info.draining:
                logger.info("web-to-web call for %s: routed to instance %s", callee.id, info.id)
                return self._contact(number, info.sip)
        return None

    async def _holders(self, users: tuple[WebUser, ...], what: str) -> list[InstanceInfo | str]:
        """The other live instances holding sessions of `users`, with their records: one round trip (a
        script reading the presence sets and the instances' hashes; it used to be two)."""
        return await self._node.holders(what, tuple(self._presence.key(u.id) for u in users))

    def _contact(self, number: str, sip: str) -> str:
        return f"sip:{number}@{sip};{MARKER}={self._node.id}"
