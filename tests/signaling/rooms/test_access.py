"""Who may create, join and watch a room (issue 32 item 1): gateway.yaml `rooms.rules` and `rooms.groups`
read by the config loader (errors naming the key), and every decision of `RoomAccess` through the
`RoomRegistry` a gateway runs (owners, rules, groups, public rooms, anonymous peers, the SIP side)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import ConfigError
from gateway.config.loader import load_config_text
from gateway.config.rooms import RoomRule, RoomsSection
from gateway.signaling.errors import Forbidden
from gateway.signaling.rooms.access import ANONYMOUS, Action, RoomAccess
from gateway.signaling.rooms.core import GATEWAY_PEER, RoomRegistry

RULES = """
rooms:
  numbers: {"3001": board, "3002": "alice-desk"}
  groups: {listeners: [carol, dave]}
  rules:
    - {room: board, owner: alice, join: [bob]}
    - {room: "alice-*", create: [alice], watch: ["@listeners"]}
    - {room: "lab-*", public: true}
"""


def rooms(text: str = RULES) -> RoomsSection:
    return load_config_text(text, {}).rooms


def registry(text: str = RULES) -> RoomRegistry:
    return RoomRegistry(max_rooms=16, max_peers=8, access=RoomAccess(rooms(text)))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rooms: {rules: [{room: 'a b'}]}", "rooms.rules[0].room: room 'a b' must be a room id or a glob"),
        ("rooms: {rules: [{room: a, join: bob}]}", "rooms.rules[0].join: expected a list of user ids"),
        ("rooms: {rules: [{room: a, joiners: [bob]}]}", "rooms.rules[0].joiners: unknown key"),
        ("rooms: {rules: [{join: [bob]}]}", "rooms.rules[0].room: required"),
        ("rooms: {rules: [{room: a, watch: ['@team']}]}", "'@team' is not a group of rooms.groups"),
        ("rooms: {groups: {team: ['*']}}", "rooms.groups: group 'team' must list user ids"),
        ("rooms: {groups: [alice]}", "rooms.groups: expected a mapping of group: [user ids]"),
    ],
)
def test_bad_rules_name_the_key(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, {})
    assert any(expected in problem for problem in info.value.errors), info.value.errors


def test_without_a_rule_only_the_owner_joins_and_watches() -> None:
    rooms = registry("")
    rooms.join("alice-private", "a1", "alice")
    assert rooms.owner("alice-private") == "alice"
    rooms.join("alice-private", "a2", "alice")  # her second device
    with pytest.raises(Forbidden) as info:
        rooms.join("alice-private", "b1", "bob")
    assert info.value.field == "room_id" and "'bob' may not join room 'alice-private'" in str(info.value)
    assert rooms.peers("alice-private") == ["a1", "a2"]  # nothing of bob's got in
    assert rooms.may(Action.WATCH, "alice-private", "alice")
    assert not rooms.may(Action.WATCH, "alice-private", "bob")
    # one answer whether the room is open or not: the same refusal for a room nobody opened
    for room in ("alice-private", "nobody-here"):
        with pytest.raises(Forbidden) as refused:
            rooms.check(Action.WATCH, room, "bob")
        assert refused.value.message == (
            f"user 'bob' may not watch room {room!r}: not its owner, and rooms.rules do not allow it"
        )
    rooms.join("bob-room", "b1", "bob")  # anyone signed in opens a room of their own
    assert rooms.owner("bob-room") == "bob"
    rooms.leave("alice-private", "a1")
    rooms.leave("alice-private", "a2")
    assert rooms.owner("alice-private") is None and "alice-private" not in rooms.rooms()  # forgotten


def test_rules_owners_groups_and_public_rooms() -> None:
    rooms = registry()
    # board: alice's whoever opens it; bob may join (and open it), carol may not
    rooms.join("board", "b1", "bob")
    assert rooms.owner("board") == "alice"
    rooms.join("board", "a1", "alice")
    with pytest.raises(Forbidden):
        rooms.join("board", "c1", "carol")
    assert not rooms.may(Action.WATCH, "board", "carol")
    # alice-*: only alice opens them; the group listens but may not join
    with pytest.raises(Forbidden, match="'bob' may not create room 'alice-desk'"):
        rooms.join("alice-desk", "b1", "bob")
    assert "alice-desk" not in rooms.rooms()
    rooms.join("alice-desk", "a1", "alice")
    assert rooms.may(Action.WATCH, "alice-desk", "carol") and rooms.may(Action.WATCH, "alice-desk", "dave")
    assert not rooms.may(Action.JOIN, "alice-desk", "carol")
    assert not rooms.may(Action.WATCH, "alice-desk", "bob")
    with pytest.raises(Forbidden):
        rooms.join("alice-desk", "c1", "carol")
    # lab-*: open as rooms were before, to anonymous peers too
    rooms.join("lab-1", "x", "bob")
    rooms.join("lab-1", "y", "carol")
    rooms.join("lab-1", "z", ANONYMOUS)
    assert rooms.owner("lab-1") == "bob" and rooms.may(Action.WATCH, "lab-1", "dave")


def test_anonymous_peers_get_only_into_rooms_open_to_anyone() -> None:
    rooms = registry("rooms: {allow_anonymous: true, rules: [{room: 'open-*', join: ['*']}]}")
    with pytest.raises(Forbidden, match="'anonymous' may not create room 'mine'"):
        rooms.join("mine", "p1", ANONYMOUS)  # it could never own it: nobody else could come in
    rooms.join("open-1", "p1", ANONYMOUS)
    assert rooms.owner("open-1") is None  # an anonymous peer owns nothing
    rooms.join("open-1", "p2", ANONYMOUS)
    rooms.join("alice-room", "a1", "alice")
    with pytest.raises(Forbidden):
        rooms.join("alice-room", "p3", ANONYMOUS)
    assert not rooms.may(Action.WATCH, "alice-room", ANONYMOUS)


def test_the_sip_side_is_admitted_and_calls_to_a_rooms_number_need_the_join() -> None:
    rooms = registry()
    rooms.join("alice-desk", GATEWAY_PEER, GATEWAY_PEER)  # a SIP call to 3002 opened it
    assert rooms.owner("alice-desk") is None  # no rule names an owner: nobody owns it
    with pytest.raises(Forbidden):
        rooms.join("alice-desk", "a1", "alice")  # her create rule does not let her join an open room
    rooms.join("board", GATEWAY_PEER, GATEWAY_PEER)
    assert rooms.owner("board") == "alice"  # the rule's owner
    rooms.join("board", "a1", "alice")
    access = rooms.access
    assert access is not None
    assert [access.room_called(d) for d in ("3001", "sip:3001@pbx.example.org", "tel:3002", "2000")] == [
        "board", "board", "alice-desk", None,
    ]  # fmt: skip
    assert rooms.may(Action.JOIN, "board", "bob") and not rooms.may(Action.JOIN, "board", "carol")


USERS = st.sampled_from(["alice", "bob", "carol", ANONYMOUS])
WHO = st.lists(st.sampled_from(["alice", "bob", "@team", "*"]), max_size=3)


@given(
    rule=st.fixed_dictionaries(
        {"public": st.booleans(), "owner": st.none() | USERS.filter(lambda u: u != ANONYMOUS)},
        optional={"create": WHO, "join": WHO, "watch": WHO},
    )
    | st.none(),
    owner=st.none() | USERS,
    user=USERS,
)
def test_any_rule_join_implies_watch_and_check_agrees(
    rule: dict[str, object] | None, owner: str | None, user: str
) -> None:
    """Whatever the rule: whoever may join may watch, the owner (signed in) may both, an anonymous peer
    only where the rule says `*` or public, and `check` refuses exactly what `allowed` does."""
    section = RoomsSection(
        rules=() if rule is None else (RoomRule("r", **rule),),  # type: ignore[arg-type]
        groups=(("team", ("carol",)),),
    )
    access = RoomAccess(section)
    joins, watches = (access.allowed(a, "r", user, owner) for a in (Action.JOIN, Action.WATCH))
    assert watches or not joins
    if owner == user and user != ANONYMOUS:
        assert joins and watches
    if user == ANONYMOUS and joins:
        assert rule is not None and (rule["public"] or "*" in rule.get("join", ()))  # type: ignore[operator]
    for action in Action:
        if access.allowed(action, "r", user, owner):
            access.check(action, "r", user, owner)
        else:
            with pytest.raises(Forbidden):
                access.check(action, "r", user, owner)
