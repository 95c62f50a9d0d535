"""HTTP-API and WHIP sessions shared by the instances: which instance owns session id X.

A session (its WebRTC leg, its call) lives in the process that answered its offer; the others must know
where, so that `POST /webrtc/close`, `/webrtc/ice-candidate`, `GET /webrtc/sessions/{id}` and WHIP's
`PATCH`/`DELETE` reach it through any instance (gateway/signaling/cluster_http.py forwards them).
`{prefix}http:{session id}` holds the owner's instance id with a lease, renewed at every heartbeat while
the session lives here and deleted when it closes, signed (`<instance id>;<HMAC of session id and
owner>`, gateway/cluster/signing.py): an owner Redis names without a valid signature is ignored, so a
Redis writer cannot send a session's requests elsewhere.

`ClusterOfferApi` is the `OfferService` the HTTP routes get: the local one, recording ownership.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import redis.asyncio as aioredis

from gateway.cluster.errors import ClusterUnavailable
from gateway.cluster.node import ClusterNode
from gateway.cluster.signing import OWNER
from gateway.identity import WebUser
from gateway.signaling.errors import ServiceError
from gateway.signaling.http_api.progress import SessionProgress
from gateway.signaling.service import (
    IceRestartService,
    JsonValue,
    OfferResult,
    OfferService,
    WhipRenewals,
    session_key,
)
from sdp import IceCandidateInit, IceParameters, TrickleFragment

logger = logging.getLogger(__name__)

# Lua: delete the key only if this instance still owns it (another may have taken it over meanwhile)
RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class SessionOwners:
    """Which instance owns each id of one kind: HTTP-API and WHIP sessions (`http`), or the logins whose
    `/ws` calls wait for their browser (`detached`: a page's reconnect to another instance is relayed to
    the owner, gateway/signaling/ws/relay.py)."""

    def __init__(
        self,
        node: ClusterNode,
        local_ids: Callable[[], Iterable[str]],
        kind: str = "http",
        outlive_ms: int = 0,
    ) -> None:
        self._node = node
        self._local_ids = local_ids
        self._kind = kind
        # how much longer than this instance's lease a record lasts: `carried` outlives a dead instance
        # until a survivor has taken its calls over (gateway/cluster/wiring.py `relay_to`)
        self._outlive_ms = outlive_ms
        node.add_refresher(f"{kind} owners", self.refresh, self.leave)

    @property
    def _px(self) -> int:
        return self._node.lease_ms + self._outlive_ms

    def _key(self, session_id: str) -> str:
        return self._node.key(self._kind, session_id)

    def _value(self, session_id: str) -> str:
        """This instance as the session's owner, signed."""
        return self._node.signer.seal(OWNER, self._node.id, session_id)

    async def claim(self, session_id: str) -> None:
        node = self._node
        await node.run(
            "record the session's owner",
            lambda c: c.set(self._key(session_id), self._value(session_id), px=self._px),
        )

    async def owner(self, session_id: str) -> str | None:
        """The instance owning `session_id`; None when none does or the record is not signed (logged)."""
        key = self._key(session_id)
        sealed = await self._node.get("find the session's owner", key)
        return self._node.signer.unseal(OWNER, sealed, key, "a session owner", session_id)

    async def release(self, session_id: str) -> None:
        node, value = self._node, self._value(session_id)
        with contextlib.suppress(ClusterUnavailable):  # the lease lapses anyway
            await node.run("forget the session", lambda c: c.eval(RELEASE, 1, self._key(session_id), value))

    async def refresh(self) -> None:
        ids = tuple(self._local_ids())
        if not ids:
            return
        node = self._node

        async def renew(client: aioredis.Redis) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for session_id in ids:
                pipe.set(self._key(session_id), self._value(session_id), px=self._px)
            result: list[Any] = await pipe.execute()
            return result

        await node.run("renew session ownership", renew)

    async def leave(self) -> None:
        for session_id in tuple(self._local_ids()):
            await self.release(session_id)


class ClusterOfferApi:
    """The local `OfferService`, with each new session's owner recorded in Redis and removed on close."""

    def __init__(self, local: OfferService, owners: SessionOwners) -> None:
        self._local = local
        self.owners = owners

    async def offer(
        self,
        user: WebUser,
        sdp: str,
        dial: str | None,
        metadata: Mapping[str, JsonValue],
        session_id: str | None,
        *,
        api_key: str | None = None,
        transfer_of: str | None = None,
        renewable: bool = False,
    ) -> OfferResult:
        result = await self._local.offer(
            user,
            sdp,
            dial,
            metadata,
            session_id,
            api_key=api_key,
            transfer_of=transfer_of,
            renewable=renewable,
        )
        try:
            await self.owners.claim(session_key(user.id, result.session_id))
        except ClusterUnavailable:  # the session works here; other instances answer 503 for it meanwhile
            logger.warning("HTTP session %s: owner not recorded (Redis unavailable)", result.session_id)
        return result

    async def progress(self, user: WebUser, session_id: str) -> SessionProgress:
        return await self._local.progress(user, session_id)

    def whip_waiting(self, user: WebUser, destination: str, api_key: str | None) -> str | None:
        """A resource of this instance (a publish to its destination is forwarded here: cluster_http)."""
        local = self._local
        return local.whip_waiting(user, destination, api_key) if isinstance(local, WhipRenewals) else None

    def whip_resource(self, user: WebUser, session_id: str) -> bool:
        return isinstance(self._local, WhipRenewals) and self._local.whip_resource(user, session_id)

    async def add_candidate(self, user: WebUser, session_id: str, candidate: IceCandidateInit | None) -> None:
        await self._local.add_candidate(user, session_id, candidate)

    async def close(self, user: WebUser, session_id: str) -> None:
        await self._local.close(user, session_id)
        await self.owners.release(session_key(user.id, session_id))

    async def control(
        self, user: WebUser, session_id: str, action: str, *, digits: str = "", duration_ms: int | None = None,
        to: str = "", body: str = "", replaces: str = "", other: str = "",
    ) -> None:  # fmt: skip
        """A session of this instance (the others forward the request here: cluster_http; `replaces` and
        `other` must be sessions of this instance too)."""
        await self._local.control(
            user, session_id, action, digits=digits, duration_ms=duration_ms, to=to, body=body,
            replaces=replaces, other=other,
        )  # fmt: skip

    async def restart_ice(self, user: WebUser, session_id: str, remote: IceParameters) -> TrickleFragment:
        """A session of this instance (the others forward WHIP's PATCH here: cluster_http)."""
        if not isinstance(self._local, IceRestartService):
            raise ServiceError("ICE restarts are not supported", code="ice_restart", http_status=501)
        return await self._local.restart_ice(user, session_id, remote)
