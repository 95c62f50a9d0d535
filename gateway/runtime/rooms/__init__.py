"""SIP parties in rooms: the gateway's own peer in a room, its WebRTC legs to the browsers, and the mix.

A room is peer to peer (gateway/signaling/rooms/core.py) until a SIP party comes; then the room gets a
`Conference` (conference.py) that joins it as the peer `gateway`, holds a `RoomLeg` (legs.py) to each
browser, to each SIP party's call and to each WHEP player, and mixes them; each SIP party is a call of
the call core, made through the driver by a `PartySession` (party.py: its state, checked moves);
`RoomMediaService` (service.py) is the gateway-wide entry point the signaling's rooms relay and the
driver's `room_calls` use. This package owns the media side of rooms; it imports the media package
(mixer, WebRTC legs), the signaling's rooms hub and relay types, config, identity, and the driver
(for typing: a party's call is placed through `CallDriver`'s `CallService`). The rooms dialect itself
(signaling/rooms/: core.py, endpoint.py, media.py) stays in gateway/signaling.
"""

from gateway.runtime.rooms.party import IllegalPartyMove, PartySession, PartyState, RoomError
from gateway.runtime.rooms.service import RoomCalls, RoomMediaService

__all__ = ["IllegalPartyMove", "PartySession", "PartyState", "RoomCalls", "RoomError", "RoomMediaService"]
