"""Rooms of peers and the relay between them (sans-I/O): the dialect of "WebRTC Implementation in FastAPI".

A peer joins room `room_id` as `peer_id` (the WebSocket `/webrtc/signaling/{room_id}/{peer_id}`); it is
told the peers already there (`existing_peers {peers}`), and they are told of it (`peer_joined
{peer_id}`). It then sends `offer {offer, target_peer_id}`, `answer {answer, target_peer_id}` and
`ice_candidate {candidate, target_peer_id}`; the target gets the same message with `from_peer_id` added
(no target: every other peer in the room). Media then flows between the browsers, never through the
gateway. When a peer leaves, the others get `peer_left {peer_id}`; an empty room is forgotten (and its
owner with it: the user whose peer opened it, who alone may join it unless `rooms.rules` say otherwise,
rooms/access.py).

`RoomRegistry` holds the rooms; its methods take what happened and return the `Delivery`s to send (which
peer, which JSON object) and never touch a socket. `parse_room_message` turns a frame into a `RoomRequest`
or raises a `SignalingError` naming the field. Each peer's life is a `PeerState` walked by `RoomPeer`:

    AWAITING_LOGIN --login--> JOINED --leave--> LEFT
    AWAITING_LOGIN --leave--> LEFT      (gave up before the login)
"""

from __future__ import annotations

import enum
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from gateway.signaling.errors import BadRequest, Conflict, NotFound, SignalingError, TooLarge, UnknownType
from gateway.signaling.rooms.access import Action, RoomAccess

logger = logging.getLogger(__name__)

# Room and peer ids: what fits in a URL path segment unescaped (RFC 3986 §2.3 unreserved), 1-64 characters.
_ID: Final = re.compile(r"[A-Za-z0-9._~-]{1,64}")
RELAYED: Final = {"offer": "offer", "answer": "answer", "ice_candidate": "candidate"}  # type -> body field
CANDIDATE_KEYS: Final = ("candidate", "sdpMid", "sdpMLineIndex", "usernameFragment")
# The gateway's own peer in a room with a SIP party (gateway/runtime/rooms/): browsers send it
# their audio for the mix, with the room's offer/answer/ice_candidate messages. No browser may take it.
GATEWAY_PEER: Final = "gateway"
MAX_SDP_CHARS: Final = 60_000
JsonObject = dict[str, object]


class RoomFull(Conflict):
    """The room already holds `rooms.max_peers` peers."""

    code = "room_full"


class TooManyRooms(Conflict):
    """`rooms.max_rooms` rooms are open: no new one."""

    code = "too_many_rooms"
    http_status = 503


def check_id(value: str, name: str) -> str:
    if not _ID.fullmatch(value):
        raise BadRequest(f"{name} must be 1-64 of A-Z a-z 0-9 . _ ~ -, got {value[:80]!r}", field=name)
    return value


# -- requests -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Relay:
    """`offer`, `answer` or `ice_candidate` for `target` (None: every other peer); `body` is the checked
    description (`{type, sdp}`) or candidate (`{candidate, sdpMid, sdpMLineIndex}` or None)."""

    kind: str
    body: JsonObject | None
    target: str | None

    def __post_init__(self) -> None:
        if self.kind not in RELAYED:
            raise ValueError(f"not a relayed type: {self.kind!r}")
        if self.target is not None:
            check_id(self.target, "target_peer_id")

    def to_json(self, sender: str) -> JsonObject:
        message: JsonObject = {"type": self.kind, RELAYED[self.kind]: self.body}
        if self.target is not None:
            message["target_peer_id"] = self.target
        message["from_peer_id"] = sender
        return message


@dataclass(frozen=True, slots=True)
class Login:
    """Credentials sent in the first message when the upgrade carried none: a session token, an API key,
    or a user id and secret (as `/ws` and JSON-RPC `announce` accept)."""

    token: str | None = None
    api_key: str | None = None
    user: str | None = None
    secret: str | None = None

    def __post_init__(self) -> None:
        given = sum(x is not None for x in (self.token, self.api_key, self.user))
        if given != 1 or (self.user is None) != (self.secret is None):
            raise BadRequest("login needs one of: token, api_key, or user and secret", field="token")


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Dial:
    """Bring a SIP party into the room (`{"type": "dial", "to": "2000"}`); see docs/signaling.md."""

    to: str

    def __post_init__(self) -> None:
        if not self.to.strip() or len(self.to) > 256:
            raise BadRequest(f"to must be a number or SIP URI, got {self.to[:80]!r}", field="to")


@dataclass(frozen=True, slots=True)
class Hangup:
    """End a SIP party of the room (`{"type": "hangup", "call_id"}`, the `call_id` of `dialing`)."""

    call_id: str

    def __post_init__(self) -> None:
        if not 0 < len(self.call_id) <= 128:
            raise BadRequest("call_id must be a call id of this room", field="call_id")


RoomRequest = Relay | Login | Ping | Dial | Hangup


def _text(message: Mapping[str, object], name: str, *, optional: bool = False) -> str | None:
    value = message.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string", field=name)
    return value


def _description(value: object, kind: str) -> JsonObject:
    """An `RTCSessionDescriptionInit` of type `kind` (JSEP, RFC 8829 §4.1.8)."""
    if not isinstance(value, dict):
        raise BadRequest(f"{kind} must be an object {{type, sdp}}", field=kind)
    if value.get("type") != kind:
        raise BadRequest(f"{kind}.type must be {kind!r}, got {value.get('type')!r}", field=f"{kind}.type")
    sdp = value.get("sdp")
    if not isinstance(sdp, str) or not sdp.startswith("v=") or len(sdp) > MAX_SDP_CHARS:
        raise BadRequest(f"{kind}.sdp must be an SDP text (v=0 ...)", field=f"{kind}.sdp")
    return {"type": kind, "sdp": sdp}


def _candidate(value: object) -> JsonObject | None:
    """An `RTCIceCandidateInit` (or null: the sender's end of candidates)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest(
            "candidate must be an object {candidate, sdpMid, sdpMLineIndex} or null", field="candidate"
        )
    line = value.get("candidate")
    if not isinstance(line, str) or len(line) > 1024:
        raise BadRequest("candidate.candidate must be a string", field="candidate.candidate")
    mid, index = value.get("sdpMid"), value.get("sdpMLineIndex")
    if mid is not None and not isinstance(mid, str):
        raise BadRequest("candidate.sdpMid must be a string or null", field="candidate.sdpMid")
    if index is not None and (not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 256):
        raise BadRequest(
            "candidate.sdpMLineIndex must be an integer or null", field="candidate.sdpMLineIndex"
        )
    return {key: value[key] for key in CANDIDATE_KEYS if key in value}


def parse_room_message(data: str | bytes, max_bytes: int) -> RoomRequest:
    """One WebSocket frame -> a `RoomRequest`; anything else raises a `SignalingError` naming the field."""
    if len(data) > max_bytes:
        raise TooLarge(f"the message is above {max_bytes} bytes")
    try:
        message = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the message is not JSON") from None
    if not isinstance(message, dict):
        raise BadRequest("the message must be a JSON object")
    kind = message.get("type")
    if not isinstance(kind, str):
        raise BadRequest("type must be a string", field="type")
    if kind in RELAYED:
        name = RELAYED[kind]
        if name not in message:
            raise BadRequest(f"{kind} needs the field {name}", field=name)
        body = _candidate(message[name]) if kind == "ice_candidate" else _description(message[name], kind)
        return Relay(kind, body, _text(message, "target_peer_id", optional=True))
    if kind == "login":
        return Login(
            _text(message, "token", optional=True),
            _text(message, "api_key", optional=True),
            _text(message, "user", optional=True),
            _text(message, "secret", optional=True),
        )
    if kind == "ping":
        return Ping()
    if kind == "dial":
        return Dial(_text(message, "to") or "")
    if kind == "hangup":
        return Hangup(_text(message, "call_id") or "")
    raise UnknownType(f"unknown type {kind[:40]!r}", field="type")


def error_message(error: SignalingError) -> JsonObject:
    return {"type": "error", **error.to_json()}


# -- the registry ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivery:
    """Send `message` (a JSON object) to `peer_id` of the room."""

    peer_id: str
    message: Mapping[str, object]


@dataclass(slots=True)
class _Room:
    room_id: str
    owner: str | None  # who opened it (or the rule's owner); None: nobody (the gateway's peer opened it)
    peers: dict[str, str] = field(default_factory=dict)  # peer id -> user id, in joining order


class RoomRegistry:
    """The open rooms and their peers (see the module note); one per gateway, on the event loop. With
    `access` (gateway.yaml `rooms.rules`), a join needs its permission; without, any peer may join."""

    def __init__(self, max_rooms: int, max_peers: int, access: RoomAccess | None = None) -> None:
        if max_rooms < 1 or max_peers < 2:
            raise ValueError(f"need max_rooms >= 1 and max_peers >= 2, got {max_rooms!r}, {max_peers!r}")
        self.max_rooms = max_rooms
        self.max_peers = max_peers
        self.access = access
        self._rooms: dict[str, _Room] = {}

    def owner(self, room_id: str) -> str | None:
        """The owner of the room (of its rule when it is not open); None when it has none."""
        room = self._rooms.get(room_id)
        if room is not None:
            return room.owner
        return self.access.configured_owner(room_id) if self.access is not None else None

    def may(self, action: Action, room_id: str, user_id: str, **given: str | None) -> bool:
        """Whether `user_id` may `action` (join, watch) the room now (rooms/access.py); `owner=` given: a
        room of another instance, its owner as that one published it."""
        owner = given["owner"] if "owner" in given else self.owner(room_id)
        return self.access is None or self.access.allowed(action, room_id, user_id, owner)

    def check(self, action: Action, room_id: str, user_id: str) -> None:
        """`may`, else `Forbidden` (the same whether the room is open or not)."""
        if self.access is not None:
            self.access.check(action, room_id, user_id, self.owner(room_id))

    def rooms(self) -> list[str]:
        return list(self._rooms)

    def peers(self, room_id: str) -> list[str]:
        room = self._rooms.get(room_id)
        if room is None:
            raise NotFound(f"no room {room_id[:80]!r}", field="room_id")
        return list(room.peers)

    def user_of(self, room_id: str, peer_id: str) -> str | None:
        room = self._rooms.get(room_id)
        return room.peers.get(peer_id) if room is not None else None

    def join(self, room_id: str, peer_id: str, user_id: str, owner: str | None = None) -> list[Delivery]:
        """`peer_id` enters `room_id` (created if new): `existing_peers` to it, `peer_joined` to the others.
        ``owner``: the gateway peer's, making again a room whose owner is known (a survivor's)."""
        check_id(room_id, "room_id")
        check_id(peer_id, "peer_id")
        room = self._rooms.get(room_id)
        gateway = peer_id == GATEWAY_PEER  # the SIP side: admitted by rooms.numbers
        if self.access is not None and not gateway:
            action = Action.JOIN if room is not None else Action.CREATE
            self.access.check(action, room_id, user_id, self.owner(room_id))
        if room is None:
            if len(self._rooms) >= self.max_rooms:
                raise TooManyRooms(f"{self.max_rooms} rooms are open already (rooms.max_rooms)")
            if gateway and owner is not None:
                pass  # (the owner it had on the instance that died)
            elif self.access is not None:
                owner = self.access.owner_of_new(room_id, None if gateway else user_id)
            else:
                owner = None if gateway else user_id
            room = self._rooms[room_id] = _Room(room_id, owner)
            logger.info("room %s opened by %s (owner %s)", room_id, user_id, owner)
        if peer_id in room.peers:
            raise Conflict(f"peer {peer_id!r} is in room {room_id!r} already", field="peer_id")
        if len(room.peers) >= self.max_peers:
            raise RoomFull(
                f"room {room_id!r} is full ({self.max_peers} peers, rooms.max_peers)", field="room_id"
            )
        others = list(room.peers)
        room.peers[peer_id] = user_id
        logger.info("room %s: %s joined (user %s, %d peers)", room_id, peer_id, user_id, len(room.peers))
        return [
            Delivery(peer_id, {"type": "existing_peers", "peers": others}),
            *(Delivery(other, {"type": "peer_joined", "peer_id": peer_id}) for other in others),
        ]

    def resume(self, room_id: str, peer_id: str, user_id: str) -> None:
        """`peer_id`, kept in `room_id` while its socket was lost, is back under `user_id`: nothing to tell
        the others. Conflict when the room no longer holds it as that user's; Forbidden when the rules
        no longer let the user join."""
        room = self._rooms.get(room_id)
        if room is None or room.peers.get(peer_id) != user_id:
            raise Conflict(f"peer {peer_id!r} is in room {room_id!r} already", field="peer_id")
        if self.access is not None:
            self.access.check(Action.JOIN, room_id, user_id, room.owner)
        logger.info("room %s: %s back (user %s)", room_id, peer_id, user_id)

    def leave(self, room_id: str, peer_id: str) -> list[Delivery]:
        """`peer_id` left: `peer_left` to the others; idempotent."""
        room = self._rooms.get(room_id)
        if room is None or room.peers.pop(peer_id, None) is None:
            return []
        logger.info("room %s: %s left (%d peers)", room_id, peer_id, len(room.peers))
        if not room.peers:
            del self._rooms[room_id]
        return [Delivery(other, {"type": "peer_left", "peer_id": peer_id}) for other in room.peers]

    def relay(self, room_id: str, sender: str, request: Relay) -> list[Delivery]:
        """`request` from `sender` to its target, or to every other peer when it names none."""
        room = self._rooms.get(room_id)
        if room is None or sender not in room.peers:
            raise NotFound(f"peer {sender!r} is not in room {room_id!r}", field="peer_id")
        if request.target is None:
            targets = [peer for peer in room.peers if peer != sender]
        elif request.target == sender or request.target not in room.peers:
            raise NotFound(f"no peer {request.target!r} in room {room_id!r}", field="target_peer_id")
        else:
            targets = [request.target]
        message = request.to_json(sender)
        return [Delivery(target, message) for target in targets]


# -- one peer's state -----------------------------------------------------------------------------------


class PeerState(enum.Enum):
    AWAITING_LOGIN = "awaiting login"
    JOINED = "joined"
    LEFT = "left"


_TRANSITIONS: Final = {
    (PeerState.AWAITING_LOGIN, PeerState.JOINED),
    (PeerState.AWAITING_LOGIN, PeerState.LEFT),
    (PeerState.JOINED, PeerState.LEFT),
}


class IllegalTransition(Exception):
    def __init__(self, old: PeerState, new: PeerState) -> None:
        super().__init__(f"a room peer cannot go from {old.value!r} to {new.value!r}")


class RoomPeer:
    """One connection's place in a room: joins once, after its credentials were accepted, leaves once."""

    def __init__(self, registry: RoomRegistry, room_id: str, peer_id: str) -> None:
        self.registry = registry
        self.room_id = check_id(room_id, "room_id")
        self.peer_id = check_id(peer_id, "peer_id")
        if peer_id == GATEWAY_PEER:
            raise BadRequest(f"peer id {GATEWAY_PEER!r} is the gateway's own", field="peer_id")
        self.user_id: str | None = None
        self.state = PeerState.AWAITING_LOGIN

    def _set_state(self, new: PeerState) -> None:
        if (self.state, new) not in _TRANSITIONS:
            raise IllegalTransition(self.state, new)
        logger.debug("room %s peer %s: %s -> %s", self.room_id, self.peer_id, self.state.value, new.value)
        self.state = new

    def join(self, user_id: str) -> list[Delivery]:
        if self.state is not PeerState.AWAITING_LOGIN:
            raise Conflict("logged in already", field="type")
        deliveries = self.registry.join(self.room_id, self.peer_id, user_id)
        self.user_id = user_id
        self._set_state(PeerState.JOINED)
        return deliveries

    def resume(self, user_id: str) -> None:
        """Take the place this peer id kept in the room while its last socket was lost (`step_away`)."""
        if self.state is not PeerState.AWAITING_LOGIN:
            raise Conflict("logged in already", field="type")
        self.registry.resume(self.room_id, self.peer_id, user_id)
        self.user_id = user_id
        self._set_state(PeerState.JOINED)

    def step_away(self) -> None:
        """This socket is done, but the peer keeps its place in the room for a new one (`resume`); the
        registry forgets it only through `RoomRegistry.leave`."""
        if self.state is PeerState.JOINED:
            self._set_state(PeerState.LEFT)

    def relay(self, request: Relay) -> list[Delivery]:
        if self.state is not PeerState.JOINED:
            raise Conflict("not in the room", field="type")
        return self.registry.relay(self.room_id, self.peer_id, request)

    @property
    def alone(self) -> bool:
        """Not in the room, or nobody else is (browser or the gateway's SIP parties): no conversation that
        closing its socket would cut (a drain closes such sockets at once, the others when alone)."""
        return self.state is not PeerState.JOINED or self.registry.peers(self.room_id) == [self.peer_id]

    def leave(self) -> list[Delivery]:
        if self.state is PeerState.LEFT:
            return []
        joined = self.state is PeerState.JOINED
        self._set_state(PeerState.LEFT)
        return self.registry.leave(self.room_id, self.peer_id) if joined else []
