"""PBX registration ownership: each user with PBX credentials is registered by exactly one live instance.

The owner holds a lock, `{prefix}reg:{aor}` = its instance id with a lease (SET NX PX); at every heartbeat
it extends the locks it holds (only while they are still its own: a Lua compare-and-extend) and every
instance tries to take the free ones. An instance that dies stops extending: its locks lapse after one
lease and the next heartbeat of another instance takes them and registers those users (its own
Contact), well within one registration refresh interval. A lock this instance lost (Redis said another
holds it: after an outage longer than the lease) stops its registration, without unregistering (the
new owner's binding is the one that counts). A lock found gone (Redis restarted empty, a replica
promoted without it, or lapsed in an outage that no other instance saw the end of first) is taken again
by its holder, which goes on registering. With Redis down nothing changes hands: the owners keep
registering, nobody else starts.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from typing import Protocol

from gateway.cluster.errors import ClusterUnavailable
from gateway.cluster.node import ClusterNode

logger = logging.getLogger(__name__)

# extend this instance's lock; take it again when it is gone (Redis lost it, or it lapsed in an outage):
# only another instance's value means the registration was lost
EXTEND = """
local holder = redis.call('get', KEYS[1])
if holder == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
if not holder then redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
"""
RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class Registrar(Protocol):
    """What ownership drives: the UA's registrations (gateway.sip.useragent.registrar_client.RegistrationClient)."""

    def start_one(self, aor: str) -> None: ...

    def stop_one(self, aor: str, *, unregister: bool = True) -> None: ...


class RegistrationOwnership:
    def __init__(self, node: ClusterNode, registrar: Registrar, aors: Iterable[str]) -> None:
        self._node = node
        self._registrar = registrar
        self.aors = tuple(aors)
        self.held: set[str] = set()
        node.add_refresher("PBX registrations", self.refresh, self.leave)

    def _key(self, aor: str) -> str:
        return self._node.key("reg", aor)

    async def refresh(self) -> None:
        node = self._node
        for aor in self.aors:
            if aor in self.held:
                if not await self._script("extend a registration lock", EXTEND, aor, node.lease_ms):
                    self.held.discard(aor)
                    logger.warning("cluster %s: registration of %s lost to another instance", node.id, aor)
                    self._registrar.stop_one(aor, unregister=False)
                continue
            if await self._take(aor):
                self.held.add(aor)
                logger.info("cluster %s: registering %s (this instance owns it now)", node.id, aor)
                self._registrar.start_one(aor)

    async def _take(self, aor: str) -> bool:
        node, key = self._node, self._key(aor)
        return bool(
            await node.run(
                "take a registration lock", lambda c: c.set(key, node.id, nx=True, px=node.lease_ms)
            )
        )

    async def _script(self, what: str, script: str, aor: str, *args: int) -> bool:
        """Run EXTEND or RELEASE on `aor`'s lock: true when it was this instance's."""
        node, key = self._node, self._key(aor)
        result = await node.run(what, lambda c: c.eval(script, 1, key, node.id, *args))
        return bool(result)

    async def owner(self, aor: str) -> str | None:
        return await self._node.get("find a registration's owner", self._key(aor))

    async def leave(self) -> None:
        """Give the locks back (the UA has unregistered): the others take them at their next heartbeat."""
        for aor in tuple(self.held):
            with contextlib.suppress(ClusterUnavailable):
                await self._script("release a registration lock", RELEASE, aor)
            self.held.discard(aor)
