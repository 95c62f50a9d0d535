"""The `rooms` section of gateway.yaml: peer-to-peer rooms (`/webrtc/signaling/{room_id}/{peer_id}`).

docs/signaling.md ("Rooms") describes the protocol; gateway/signaling/rooms.py enforces these limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from gateway.config.values import FloatRange, IntRange


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
