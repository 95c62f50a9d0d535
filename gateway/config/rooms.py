"""The `rooms` section of gateway.yaml: peer-to-peer rooms (`/webrtc/signaling/{room_id}/{peer_id}`).

docs/signaling.md ("Rooms") describes the protocol; gateway/signaling/rooms/core.py enforces these limits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Final

from gateway.config.values import FloatRange, IntRange, Parse

_NUMBER: Final = re.compile(r"[0-9*#+]{1,32}")
_ROOM_ID: Final = re.compile(r"[A-Za-z0-9._~-]{1,64}")  # as gateway/signaling/rooms/core.py checks ids


def parse_room_numbers(value: object) -> tuple[tuple[str, str], ...]:
    """`{"3001": "room-a"}`: a SIP call to 3001 joins room-a. Numbers are dialled digits (what the
    Request-URI's user part holds), room ids those of the rooms WebSocket."""
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping of number: room id, got {value!r}")
    pairs = []
    for number, room in value.items():
        number, room = str(number), str(room) if isinstance(room, (str, int)) else room
        if not _NUMBER.fullmatch(number):
            raise ValueError(f"room number {number!r} must be 1-32 of 0-9 * # +")
        if not isinstance(room, str) or not _ROOM_ID.fullmatch(room):
            raise ValueError(f"room id {room!r} of number {number} must be 1-64 of A-Z a-z 0-9 . _ ~ -")
        pairs.append((number, room))
    return tuple(pairs)


@dataclass(frozen=True, slots=True)
class RoomsSection:
    """Rooms relay offers, answers and ICE candidates between browsers; media flows peer to peer."""

    enabled: bool = True
    max_peers: Annotated[int, IntRange(2, 64)] = 8  # peers in one room; one more gets `room_full`
    max_rooms: Annotated[int, IntRange(1, 100_000)] = 1000  # rooms open at once; more get `too_many_rooms`
    rate: Annotated[float, FloatRange(0.1, 1000.0)] = 20.0  # messages per second per peer, sustained
    burst: Annotated[int, IntRange(1, 10_000)] = 60  # messages a peer may send at once (ICE bursts)
    # Let peers in without credentials, as the FastAPI document's own client does. Off by default:
    # anyone reaching the port could then relay through the gateway.
    allow_anonymous: bool = False
    # SIP parties in rooms (docs/signaling.md "A SIP party in a room"): a SIP call to one of these numbers
    # joins that room, e.g. {"3001": "room-a"}; `{"type": "dial", "to"}` from a peer calls out.
    numbers: Annotated[tuple[tuple[str, str], ...], Parse(parse_room_numbers)] = ()
    # Participants mixed in the gateway when a room has a SIP party: its browsers plus SIP parties.
    max_mixed: Annotated[int, IntRange(2, 32)] = 8

    def room_for(self, number: str) -> str | None:
        return next((room for n, room in self.numbers if n == number), None)
