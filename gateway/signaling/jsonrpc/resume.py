"""A JSON-RPC peer's calls outlive its WebSocket for `web_auth.reconnect_grace` (issue 34 item 2).

A browser's socket can close while its calls are fine: a proxy restarted, a NAT timed the socket out, the
page's network changed. Its RTCPeerConnection does not depend on the socket. So a peer whose socket
closes without `disconnect` while it has answered calls the gateway carries is *detached* instead of
closed: its calls go on (the call core is told nothing), what it would be told is kept (at most
`KEPT`), its unanswered calls end, its relayed calls end as before (relay.py), and it leaves presence.

After a network change the old socket is often not known dead yet (no FIN came; the heartbeat finds it
seconds later): the new socket's `announce` of the id then detaches the peer from it at once and closes
it (4010), so that the resume below takes the calls over without waiting.

`announce` of the same `peer_id` by the same user on a new socket within the grace *resumes* it: the
new socket takes the detached peer over (its `session_id`, its calls, its state), the result says
`resumed: true` with its `call_ids`, and the kept notifications follow. Its calls' controls and ICE
restarts (`offer {call_id, sdp}` after a network change) work on the new socket. Peer ids are their
users' (relay.py): another user's `announce` of the id is refused (-32008) and takes nothing.

Several gateway instances (a cluster): the client's new socket may reach another instance. Each instance
says in Redis which peers wait on it (`families`, `peer_family`: `detached`) and which peers' calls it
carries (`carried`); an `announce` of an id whose peer waits elsewhere carries the socket on to that
instance (ws/relay.py, with the socket's own credentials), and one whose instance died waits for the
survivor that takes its calls over (runtime/continuity/takeover.py), which makes the peer again there,
detached (jsonrpc/takeover.py), under its session id: the announce then resumes it as here.

When the grace runs out first, the peer closes as it would have at once: its calls end (BYE). A
gateway that stops resumes nobody: its detached peers close first, and sockets that close then do not
wait. This module holds the detached peers by (user, peer id) and their timers; the peer's side is
peer.py.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Final, Protocol

from gateway.signaling.errors import SignalingError
from gateway.signaling.service import peer_family

logger = logging.getLogger(__name__)

KEPT: Final = 100  # notifications kept for a detached peer (the oldest go first)


class Detachable(Protocol):
    """A peer as this module sees it (`RpcPeer`)."""

    peer_id: str | None

    @property
    def user_id(self) -> str: ...

    async def finish(self) -> None: ...


class DetachedPeers:
    """Detached peers waiting for their user's socket to announce their id again (module note)."""

    def __init__(self, grace: float = 0.0) -> None:
        self.grace = grace
        self._peers: dict[tuple[str, str], list[tuple[Detachable, asyncio.TimerHandle]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        # the peers made again here for calls taken over from a dead instance, by session id (takeover.py)
        self.made: weakref.WeakValueDictionary[str, Detachable] = weakref.WeakValueDictionary()
        # told the key of each peer that starts waiting here: a cluster records where, so that the
        # client's announce on another instance is relayed here (gateway/cluster/wiring.py)
        self.on_detached: Callable[[str], None] | None = None

    @property
    def accepting(self) -> bool:
        """Whether a peer may wait now (a grace, the gateway not stopping)."""
        return self.grace > 0 and not self._stopping

    def hold(self, peer: Detachable) -> bool:
        """Keep ``peer`` for the grace; False when it may not wait (no grace, no peer id, stopping)."""
        if self.grace <= 0 or self._stopping or peer.peer_id is None:
            return False
        key = (peer.user_id, peer.peer_id)
        timer = asyncio.get_running_loop().call_later(self.grace, self._expire, key, peer)
        self._peers.setdefault(key, []).append((peer, timer))
        if self.on_detached is not None:
            self.on_detached(peer_family(*key))
        logger.info(
            "JSON-RPC peer %r of %s detached: its calls wait %g s", peer.peer_id, peer.user_id, self.grace
        )
        return True

    def claim(self, user_id: str, peer_id: str) -> Detachable | None:
        """The detached peer ``user_id``'s new socket resumes by announcing ``peer_id`` (the latest)."""
        waiting = self._peers.get((user_id, peer_id))
        if not waiting:
            return None
        peer, timer = waiting.pop()
        timer.cancel()
        if not waiting:
            del self._peers[(user_id, peer_id)]
        return peer

    def families(self) -> frozenset[str]:
        """The keys of the peers waiting here (`peer_family`): a cluster renews them in Redis."""
        return frozenset(peer_family(*key) for key in self._peers)

    def holds(self, peer: Detachable) -> bool:
        return any(entry[0] is peer for waiting in self._peers.values() for entry in waiting)

    def release(self, peer: Detachable) -> None:
        """``peer`` no longer waits (it closed: its calls ended, or the grace ran out)."""
        for key, waiting in list(self._peers.items()):
            for entry in [e for e in waiting if e[0] is peer]:
                entry[1].cancel()
                waiting.remove(entry)
            if not waiting:
                del self._peers[key]

    async def close(self) -> None:
        """The gateway stops: nobody is resumed, the detached peers close (their calls end)."""
        self._stopping = True
        for waiting in list(self._peers.values()):
            for peer, _ in list(waiting):
                await peer.finish()
        self._peers.clear()
        for task in list(self._tasks):
            task.cancel()

    def _expire(self, key: tuple[str, str], peer: Detachable) -> None:
        logger.info(
            "JSON-RPC peer %r of %s did not come back within %g s: its calls end", key[1], key[0], self.grace
        )
        task = asyncio.get_running_loop().create_task(peer.finish())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def __len__(self) -> int:
        return sum(len(w) for w in self._peers.values())


class Relayed(Exception):
    """The announcing socket was carried on to another instance: it answers from there."""


async def relay_elsewhere(
    family: str,
    relay_to: Callable[[str, str | None], Awaitable[str | None]],
    relay: Callable[[str], Awaitable[bool | None]],
) -> None:
    """An announce of the peer `family` (`peer_family`) that waits on no peer here: when it waits on
    another instance, or its calls were carried by one, carry the socket on there (`relay`: True done,
    None refused there for now, False unreachable), raising Relayed; when that instance is dead, wait
    for the survivor taking its calls over (`relay_to`, gateway/cluster/wiring.py), which may be this
    one: then return, and the announce resumes the peer made again here."""
    tried: set[str] = set()
    unreachable: str | None = None
    while True:
        try:
            target = await relay_to(family, unreachable)
        except SignalingError:  # Redis unavailable: served here
            return
        if target is None or target in tried:
            return
        if await relay(target) is not False:  # carried on, or refused there now (the socket closes: 1013)
            raise Relayed(target)
        tried.add(target)  # dead: where its calls went instead
        unreachable = target
