"""Rooms shared by the instances of a cluster (issue 34): the peers of one room meet on one instance.

A room lives in the process where its first peer joined (gateway/signaling/rooms/: its registry, the
sockets it relays between). `{prefix}room:{room_id}` names that instance (signed as the session owners
are, gateway/cluster/sessions.py), taken when the first peer's socket arrives (`place`), renewed at every
heartbeat while the room is open there, lasting a lease after. A rooms socket that reaches another
instance is relayed to the one named (gateway/signaling/rooms/endpoint.py, with the cluster's signed
mark, as a page's `/ws` is), so HAProxy needs no stickiness for rooms.

When that instance dies, its rooms' media goes on (browser to browser); their peers reconnect through
HAProxy wherever they land. The first to arrive takes the room for its instance once the dead one's
lease has lapsed (a record naming an instance that does not answer is waited on until then: at most a
lease and a heartbeat), and the others are relayed there: the room is whole again, its peers told
`existing_peers` / `peer_joined` as on any join. Taking a record replaces exactly the value read (a
script), so two instances racing for a room agree on one; a renewal writes only a record that is this
instance's or absent, so an instance never takes back a room another has taken. A draining instance keeps
the records of its rooms with a conversation (their new peers still join them there) and gives up a
lone peer's (the drain closes its socket: it opens the room again elsewhere).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import redis.asyncio as aioredis

from gateway.cluster.errors import ClusterUnavailable
from gateway.cluster.node import ClusterNode, InstanceInfo, text
from gateway.cluster.sessions import RELEASE
from gateway.cluster.signing import OWNER

logger = logging.getLogger(__name__)

KIND: Final = "room"
LISTING: Final = "rooms"  # {prefix}rooms:{instance}: what each instance's rooms hold (`elsewhere`)
LAPSE_POLL: Final = 0.25  # s between looks at an unreachable owner's lease
TAKEN_KEEP: Final = 15.0  # s a room taken is renewed before it opens here (a takeover's re-INVITE: 8 s)
# Lua: set KEYS[1] to ARGV[2] (PX ARGV[3]) only if it still holds ARGV[1] ("" : absent)
TAKE: Final = (
    "local v = redis.call('get', KEYS[1]) "
    "if (v == false and ARGV[1] == '') or v == ARGV[1] then "
    "redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end return 0"
)
# Lua: renew KEYS[1] as ARGV[1] (PX ARGV[2]) if it is this instance's or absent; 0 when another's
RENEW: Final = (
    "local v = redis.call('get', KEYS[1]) "
    "if v == false or v == ARGV[1] then redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end "
    "return 0"
)


class RoomOwners:
    """Where each open room lives (see the module note)."""

    def __init__(
        self,
        node: ClusterNode,
        local_rooms: Callable[[], Iterable[str]],
        lone: Callable[[str], bool] = lambda room_id: False,
        summaries: Callable[[], Mapping[str, Mapping[str, Any]]] | None = None,
    ) -> None:
        self._node = node
        self._local_rooms = local_rooms
        self._summaries = summaries  # room -> {"peers": [...], "owner": ...}: published for the others
        self._published: dict[str, str] | None = None  # what the last publication wrote (room -> JSON)
        self._generation = node.generation  # of the node's Redis when it was written (node.py)
        self._read_at: tuple[float, dict[str, dict[str, Any]]] | None = None  # the others', when read
        self._lone = lone  # a room with one peer (none in a conversation): given up while draining
        self._lost: set[str] = set()  # rooms open here another instance has taken (warned once)
        self._taken: dict[str, float] = {}  # rooms taken for this instance, not open here yet -> until
        node.add_refresher("room owners", self.refresh)

    def _key(self, room_id: str) -> str:
        return self._node.key(KIND, room_id)

    def _value(self, room_id: str) -> str:
        return self._node.signer.seal(OWNER, self._node.id, room_id)

    async def place(self, room_id: str, unreachable: str | None = None) -> str | None:
        """The base URL of the instance room `room_id` lives on, when another; None: here (taken for this
        instance when free). ``unreachable``: that instance's URL did not answer just now: its lease is
        waited on, then the room is taken. Redis unavailable: here (a room of this instance alone)."""
        home = await self._home(room_id, unreachable)
        return home.http if home is not None else None

    async def lives_at(self, room_id: str) -> str | None:
        """The base URL of the live instance room `room_id` lives on, when another; None: here, nowhere,
        or unknown (Redis unavailable). Nothing is taken (a WHEP viewer only asks where to watch)."""
        node, key = self._node, self._key(room_id)
        try:
            sealed = await node.get("find a room's instance", key)
            owner = node.signer.unseal(OWNER, sealed, key, "a room's instance", room_id) if sealed else None
            peer = await node.instance(owner) if owner is not None and owner != node.id else None
        except ClusterUnavailable:
            return None
        return peer.http if peer is not None else None

    async def sip_home(self, room_id: str) -> str | None:
        """The advertised SIP address of the instance room `room_id` lives on, when another (a SIP call
        to its number goes there); None: here, as `place`, or that instance drains (it takes no new call:
        the call's party joins the room here meanwhile)."""
        home = await self._home(room_id, None)
        return home.sip if home is not None and not home.draining else None

    async def _home(self, room_id: str, unreachable: str | None) -> InstanceInfo | None:
        node, key = self._node, self._key(room_id)
        try:
            for _ in range(3):  # (a race lost to another instance: read again)
                sealed = await node.get("find a room's instance", key)
                owner = (
                    node.signer.unseal(OWNER, sealed, key, "a room's instance", room_id) if sealed else None
                )
                if owner == node.id:
                    return None
                peer = await node.instance(owner) if owner is not None else None
                if peer is not None and peer.http == unreachable:
                    peer = await self._lapsed(owner or "", unreachable)
                if peer is not None:  # (draining too: its rooms left have a conversation)
                    return peer
                if await self._take(key, sealed or "", room_id):
                    # renewed until the room opens here (a party's takeover re-INVITEs first)
                    self._taken[room_id] = asyncio.get_running_loop().time() + TAKEN_KEEP
                    if owner is not None:
                        logger.warning("room %s: taken over from instance %s", room_id[:80], owner)
                    return None
        except ClusterUnavailable:
            logger.warning("room %s: its instance unknown (Redis unavailable): opened here", room_id[:80])
            return None
        logger.warning("room %s: contended by other instances: opened here", room_id[:80])
        return None

    async def _lapsed(self, owner: str, unreachable: str) -> InstanceInfo | None:
        """None once ``owner``'s lease has lapsed (waited for: a lease and a heartbeat at most); its record
        when it answers again at another URL or stays live past that (then relayed there)."""
        node = self._node
        loop = asyncio.get_running_loop()
        deadline = loop.time() + node.lease_ms / 1000 + node.settings.heartbeat + 1.0
        logger.info("a room of instance %s, which does not answer: waiting for its lease to lapse", owner)
        while loop.time() < deadline:
            peer = await node.instance(owner)
            if peer is None:
                return None
            if peer.http != unreachable:
                return peer
            await asyncio.sleep(LAPSE_POLL)
        return await node.instance(owner)

    async def _take(self, key: str, expected: str, room_id: str) -> bool:
        value, px = self._value(room_id), str(self._node.lease_ms)
        taken = await self._node.run("take a room", lambda c: c.eval(TAKE, 1, key, expected, value, px))
        return bool(taken)

    async def refresh(self) -> None:
        try:
            await self._renew()
        finally:
            with contextlib.suppress(ClusterUnavailable):  # (the next heartbeat publishes again)
                await self._publish()

    async def _renew(self) -> None:
        now = asyncio.get_running_loop().time()
        self._taken = {room: until for room, until in self._taken.items() if until > now}
        rooms = tuple(dict.fromkeys((*self._local_rooms(), *self._taken)))
        if not rooms:
            self._lost.clear()
            return
        px = str(self._node.lease_ms)
        # draining: a lone peer's room is given up (its socket is closed, and it opens the room elsewhere)
        gone = {room for room in rooms if self._node.draining and self._lone(room)}

        async def renew(client: aioredis.Redis) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for room_id in rooms:
                if room_id in gone:
                    pipe.eval(RELEASE, 1, self._key(room_id), self._value(room_id))
                else:
                    pipe.eval(RENEW, 1, self._key(room_id), self._value(room_id), px)
            result: list[Any] = await pipe.execute()
            return result

        renewed = await self._node.run("renew room ownership", renew)
        lost = {room for room, ok in zip(rooms, renewed, strict=True) if not ok and room not in gone}
        for room_id in lost - self._lost:
            logger.warning(
                "room %s is open here but another instance has taken it: its new peers go there", room_id[:80]
            )
        self._lost = lost

    # -- what the rooms of the other instances hold (GET /webrtc/rooms across the cluster) ----------------
    async def _publish(self) -> None:
        """This instance's rooms as `{prefix}rooms:{instance}` (room -> sealed JSON of its peers and
        owner), written whole at each heartbeat and lasting a lease."""
        if self._summaries is None:
            return
        node = self._node
        listed = {
            room: json.dumps(summary, separators=(",", ":")) for room, summary in self._summaries().items()
        }
        for room in self._lost:  # (another instance has taken it: its listing is theirs)
            listed.pop(room, None)
        if self._generation != node.generation:  # Redis may have lost the listing (node.py): write it
            self._generation, self._published = node.generation, None
        key, changed = node.key(LISTING, node.id), listed != self._published

        async def publish(client: aioredis.Redis) -> list[Any]:
            pipe = client.pipeline(transaction=True)
            if changed:
                pipe.delete(key)
                if listed:
                    fields = {
                        room: node.signer.seal(LISTING, value, node.id, room)
                        for room, value in listed.items()
                    }
                    pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
            pipe.pexpire(key, node.lease_ms)
            result: list[Any] = await pipe.execute()
            return result

        await node.run("publish the rooms", publish)
        self._published = listed

    async def elsewhere(self) -> dict[str, dict[str, Any]]:
        """The rooms of the other live instances (room -> its `peers` and `owner`, as they published them
        at their last heartbeat; a record without a valid seal left out), read at most once a heartbeat."""
        now = asyncio.get_running_loop().time()
        if self._read_at is not None and now - self._read_at[0] < self._node.settings.heartbeat:
            return self._read_at[1]
        found = await self._read_elsewhere()
        self._read_at = (now, found)
        return found

    async def _read_elsewhere(self) -> dict[str, dict[str, Any]]:
        node = self._node
        others = [i for i in await node.instances() if i != node.id]
        keys = [node.key(LISTING, i) for i in others]

        async def read(client: aioredis.Redis) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.hgetall(key)
            result: list[Any] = await pipe.execute()
            return result

        found: dict[str, dict[str, Any]] = {}
        for instance_id, key, hashed in zip(
            others, keys, await node.run("list the rooms", read), strict=True
        ):
            for raw_room, raw in hashed.items():
                room = text(raw_room)
                opened = node.signer.unseal(
                    LISTING, text(raw), f"{key} {room}", "a room's listing", instance_id, room
                )
                try:
                    summary = json.loads(opened) if opened is not None else None
                except ValueError:
                    summary = None
                if isinstance(summary, dict) and isinstance(summary.get("peers"), list):
                    found.setdefault(room, summary)
        return found
