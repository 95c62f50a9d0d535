"""The boundary between the rooms relay (rooms/endpoint.py) and the gateway's own peer in rooms with a SIP
party (gateway/runtime/rooms/), as two Protocols: what the relay asks of the media side
(`RoomMedia`), and what the media side may do in a room (`RoomHub`, implemented by the relay's context).

Messages the gateway peer sends are the room's own (`offer`, `answer`, `ice_candidate` with
`from_peer_id: "gateway"`), plus `dialing {call_id, to}` to the peer that dialled and `sip_party {call_id,
remote, state, reason?}` to the whole room (docs/signaling.md "A SIP party in a room"), and
`watcher_joined` / `watcher_left {watcher_id, user}` to the whole room when a WHEP player of a user comes
or goes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from gateway.identity import WebUser
from gateway.signaling.rooms.core import Relay


class RoomHub(Protocol):
    """What the gateway peer may do in a room."""

    async def send(self, room_id: str, peer_id: str, message: Mapping[str, object]) -> None:
        """One message to one peer (dropped when it is gone)."""
        ...

    async def broadcast(self, room_id: str, message: Mapping[str, object]) -> None:
        """One message to every browser of the room."""
        ...

    async def join_gateway(self, room_id: str, owner: str | None = None) -> None:
        """The gateway peer enters the room (created if new, of ``owner`` when given: a room made again
        on a survivor; `peer_joined` to the others); raises the registry's `SignalingError`
        (`room_full`, `too_many_rooms`)."""
        ...

    def owner(self, room_id: str) -> str | None:
        """The room's owner (the user who opened it, or its rule's); None when it has none."""
        ...

    async def leave_gateway(self, room_id: str) -> None:
        """The gateway peer leaves (`peer_left` to the others); idempotent."""
        ...

    def browsers(self, room_id: str) -> list[str]:
        """The browser peers of the room, in joining order (none when it is not open)."""
        ...

    def check_call(self, user_id: str, destination: str) -> None:
        """A web user's call to `destination`: `Forbidden` when it is one of `rooms.numbers` and
        `rooms.rules` do not let the user join that room (rooms/access.py)."""
        ...


class RoomMedia(Protocol):
    """The gateway's peer in rooms: SIP parties and the mix (see the module note)."""

    def attach(self, hub: RoomHub) -> None: ...

    def present(self, room_id: str) -> bool:
        """Whether the gateway peer is in the room (messages for `gateway` go to `from_peer`)."""
        ...

    async def dial(self, room_id: str, peer_id: str, user: WebUser, to: str) -> str:
        """Call `to` from the room under `user`'s policy; the new call id. Raises a `SignalingError`."""
        ...

    async def hangup(self, room_id: str, call_id: str) -> None: ...

    async def from_peer(self, room_id: str, peer_id: str, relay: Relay) -> None:
        """An offer, answer or candidate a browser sent to the gateway peer."""
        ...

    async def peer_left(self, room_id: str, peer_id: str) -> None: ...

    async def watch(self, room_id: str, user: WebUser, offer: str) -> tuple[str, str]:
        """WHEP: a player of the room's mix; (its id, the SDP answer). Raises a `SignalingError`
        (`NotFound` for a room that is not open)."""
        ...

    async def unwatch(self, viewer_id: str, user: WebUser) -> None:
        """End a player (`NotFound` for another user's or an unknown one)."""
        ...

    def watchers(self, room_id: str) -> list[dict[str, str]]:
        """The room's WHEP players: `{"watcher_id", "user"}` each (told to a peer when it joins)."""
        ...
