"""The `rooms` section of gateway.yaml: peer-to-peer rooms (`/webrtc/signaling/{room_id}/{peer_id}`).

docs/signaling.md ("Rooms") describes the protocol; gateway/signaling/rooms/core.py enforces these limits,
gateway/signaling/rooms/access.py the `rules` (who may create, join and watch a room) and `groups`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Annotated, Final

from gateway.config.values import FloatRange, IntRange, Parse

_NUMBER: Final = re.compile(r"[0-9*#+]{1,32}")
_ROOM_ID: Final = re.compile(r"[A-Za-z0-9._~-]{1,64}")  # as gateway/signaling/rooms/core.py checks ids
_ROOM_GLOB: Final = re.compile(r"[A-Za-z0-9._~*?\[\]!-]{1,64}")  # a room id, or a glob of them (fnmatch)
_GROUP: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
ANYONE: Final = "*"  # in a rule's lists: every user the rooms admit (anonymous peers too, when allowed)


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


def _room_glob(value: object) -> str:
    if not isinstance(value, str) or not _ROOM_GLOB.fullmatch(value):
        raise ValueError(f"room {value!r} must be a room id or a glob of one (* ? [...]), 1-64 characters")
    return value


def _who(value: object) -> tuple[str, ...]:
    """A rule's list of who: user ids, `@group` (of `rooms.groups`) and `*` (anyone)."""
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise ValueError(f"expected a list of user ids, @groups or *, got {value!r}")
    return tuple(item.strip() for item in value)


def parse_room_groups(value: object) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """`{"team": ["alice", "carol"]}`: a group a rule names as `@team`."""
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping of group: [user ids], got {value!r}")
    groups = []
    for name, members in value.items():
        if not isinstance(name, str) or not _GROUP.fullmatch(name):
            raise ValueError(f"group name {name!r} must be 1-64 of A-Z a-z 0-9 . _ -")
        users = _who(members)
        if any(user == ANYONE or user.startswith("@") for user in users):
            raise ValueError(f"group {name!r} must list user ids, got {list(users)!r}")
        groups.append((name, users))
    return tuple(groups)


@dataclass(frozen=True, slots=True)
class RoomRule:
    """Who may do what in the rooms whose id matches `room` (an id or a glob). The owner of a room (who
    opened it, or `owner`) may always join and watch it; `join` implies `watch`. Lists hold user ids,
    `@group` and `*` (anyone the rooms admit); docs/signaling.md "Who may create, join and watch"."""

    room: Annotated[str, Parse(_room_glob)]
    public: bool = False  # anyone may create, join and watch (the open rooms of a lab)
    owner: str | None = None  # the room's owner whoever opens it (else the user who opens it)
    create: Annotated[tuple[str, ...], Parse(_who)] = (ANYONE,)  # who may open it (be its first peer)
    join: Annotated[tuple[str, ...], Parse(_who)] = ()  # besides the owner: who may join (and talk)
    watch: Annotated[tuple[str, ...], Parse(_who)] = ()  # besides the owner and `join`: who may listen (WHEP)

    def matches(self, room_id: str) -> bool:
        return fnmatchcase(room_id, self.room)


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
    # Seconds a peer whose socket was lost (no close of its own: a network change, a dead instance on the
    # way) stays in its room for a new socket under the same peer id and user to take its place
    # (`joined {resumed: true}`): the others are told nothing and its connections go on. 0: it leaves at once.
    rejoin_grace: Annotated[float, FloatRange(0.0, 300.0)] = 10.0
    # SIP parties in rooms (docs/signaling.md "A SIP party in a room"): a SIP call to one of these numbers
    # joins that room, e.g. {"3001": "room-a"}; `{"type": "dial", "to"}` from a peer calls out.
    numbers: Annotated[tuple[tuple[str, str], ...], Parse(parse_room_numbers)] = ()
    # Participants mixed in the gateway when a room has a SIP party: its browsers plus SIP parties.
    max_mixed: Annotated[int, IntRange(2, 32)] = 8
    # Who may create, join and watch which rooms: the first rule whose `room` matches the room id applies.
    # No rule: any user may open a room and becomes its owner; only the owner may then join or watch it.
    rules: tuple[RoomRule, ...] = ()
    groups: Annotated[
        tuple[tuple[str, tuple[str, ...]], ...], Parse(parse_room_groups)
    ] = ()  # @name in rules

    def __post_init__(self) -> None:
        known = {name for name, _ in self.groups}
        for index, rule in enumerate(self.rules):
            for name, who in (("create", rule.create), ("join", rule.join), ("watch", rule.watch)):
                unknown = [item for item in who if item.startswith("@") and item[1:] not in known]
                if unknown:
                    raise ValueError(f"rules[{index}].{name}: {unknown[0]!r} is not a group of rooms.groups")

    def rule_for(self, room_id: str) -> RoomRule | None:
        """The first rule whose `room` matches `room_id`, else None (the default: owner only)."""
        return next((rule for rule in self.rules if rule.matches(room_id)), None)

    def members(self, group: str) -> tuple[str, ...]:
        return next((users for name, users in self.groups if name == group), ())

    def room_for(self, number: str) -> str | None:
        return next((room for n, room in self.numbers if n == number), None)
