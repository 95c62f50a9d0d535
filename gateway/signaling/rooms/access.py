"""Who may create, join and watch a room (sans-I/O): gateway.yaml `rooms.rules` and `rooms.groups`
(gateway/config/rooms.py) applied to a user and the room's owner; docs/signaling.md "Who may create,
join and watch a room".

A room's owner is the user who opened it (its first peer), unless its rule names an `owner`; a room the
gateway's own peer opened (a SIP call to one of `rooms.numbers`) has only the rule's owner, if any. The
first rule whose `room` (an id or a glob) matches decides; without one, any user may open a room and
then only its owner may join or watch it. The decisions, for user `u` and owner `o`:

    create  the room is not open and `u` would be its first peer: `u` in the rule's `create` (default
            `*`), and `u` becomes its owner (signed in, the rule names no owner) or may join it anyway
    join    u == o, `u` in the rule's `join`, or the rule is `public`
    watch   join, or `u` in the rule's `watch` (WHEP playback of the room's mix)
    see     watch (what `GET /webrtc/rooms` lists, and `/peers` answers)

A list entry is a user id, `@group` (its members in `rooms.groups`) or `*` (anyone the rooms admit).
Anonymous peers (`rooms.allow_anonymous`) match only `*` and never own a room.
"""

from __future__ import annotations

import enum
from typing import Final

from gateway.config.rooms import ANYONE, RoomsSection
from gateway.signaling.errors import Forbidden

ANONYMOUS: Final = "anonymous"  # the user id of a peer without credentials (rooms.allow_anonymous)


class Action(enum.Enum):
    CREATE = "create"
    JOIN = "join"
    WATCH = "watch"


class RoomAccess:
    """The rooms' rules (see the module note); one per gateway, immutable."""

    def __init__(self, settings: RoomsSection) -> None:
        self._settings = settings

    def room_called(self, destination: str) -> str | None:
        """The room whose number (`rooms.numbers`) `destination` (a number or SIP URI a web user calls)
        names: calling it joins that room through the SIP side, so it needs the join permission."""
        if not self._settings.numbers:
            return None
        number = destination.strip()
        scheme, colon, rest = number.partition(":")
        if colon and scheme.lower() in ("sip", "sips", "tel"):
            number = rest
        number = number.split("@", 1)[0].split(";", 1)[0]
        return self._settings.room_for(number)

    def configured_owner(self, room_id: str) -> str | None:
        rule = self._settings.rule_for(room_id)
        return rule.owner if rule is not None else None

    def owner_of_new(self, room_id: str, user_id: str | None) -> str | None:
        """The owner of a room `user_id` opens (None: the gateway's own peer opens it)."""
        configured = self.configured_owner(room_id)
        if configured is not None or user_id is None or user_id == ANONYMOUS:
            return configured
        return user_id

    def _named(self, who: tuple[str, ...], user_id: str) -> bool:
        for item in who:
            if item == ANYONE:
                return True
            if user_id == ANONYMOUS:
                continue
            if item == user_id or (item.startswith("@") and user_id in self._settings.members(item[1:])):
                return True
        return False

    def allowed(self, action: Action, room_id: str, user_id: str, owner: str | None) -> bool:
        """Whether `user_id` may do `action` in `room_id`, owned by `owner` (None: no owner)."""
        rule = self._settings.rule_for(room_id)
        if action is Action.CREATE:
            create = rule.create if rule is not None else (ANYONE,)
            if not (rule is not None and rule.public) and not self._named(create, user_id):
                return False
            future = self.owner_of_new(room_id, user_id)
            return self.allowed(Action.JOIN, room_id, user_id, future)
        if owner is not None and user_id == owner and user_id != ANONYMOUS:
            return True
        if rule is None:
            return False
        if rule.public or self._named(rule.join, user_id):
            return True
        return action is Action.WATCH and self._named(rule.watch, user_id)

    def check(self, action: Action, room_id: str, user_id: str, owner: str | None) -> None:
        """`allowed`, else `Forbidden` naming the user, the action and the room (one message whether the
        room is open or not: a refusal tells nothing of a room the user may not see)."""
        if not self.allowed(action, room_id, user_id, owner):
            raise Forbidden(
                f"user {user_id!r} may not {action.value} room {room_id[:80]!r}: not its owner, and "
                "rooms.rules do not allow it",
                field="room_id",
            )
