"""The sans-I/O rooms core (gateway/signaling/rooms/core.py): the FastAPI document's messages parsed and
relayed field by field, join/leave events, limits, every peer state pair, and no exception but the
package's own on any input."""

from __future__ import annotations

import contextlib
import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.signaling.errors import BadRequest, Conflict, NotFound, SignalingError, TooLarge, UnknownType
from gateway.signaling.rooms.core import (
    Delivery,
    Dial,
    Hangup,
    IllegalTransition,
    Login,
    PeerState,
    Ping,
    Relay,
    RoomFull,
    RoomPeer,
    RoomRegistry,
    RoomRequest,
    TooManyRooms,
    parse_room_message,
)

SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
LIMIT = 65536
# The document's own messages ("Signaling Message Format"), with an SDP where it writes "...".
DOC_OFFER = {"type": "offer", "offer": {"type": "offer", "sdp": SDP}, "target_peer_id": "peer2"}
DOC_ANSWER = {"type": "answer", "answer": {"type": "answer", "sdp": SDP}, "target_peer_id": "peer1"}
DOC_CANDIDATE = {
    "type": "ice_candidate",
    "candidate": {"candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host", "sdpMLineIndex": 0,
                  "sdpMid": "0"},
    "target_peer_id": "peer2",
}  # fmt: skip


def parse(message: object) -> RoomRequest:
    return parse_room_message(json.dumps(message), LIMIT)


def test_document_join_relay_and_leave() -> None:
    rooms = RoomRegistry(max_rooms=4, max_peers=3)
    assert rooms.join("room1", "peer1", "alice") == [
        Delivery("peer1", {"type": "existing_peers", "peers": []})
    ]
    assert rooms.join("room1", "peer2", "bob") == [
        Delivery("peer2", {"type": "existing_peers", "peers": ["peer1"]}),
        Delivery("peer1", {"type": "peer_joined", "peer_id": "peer2"}),
    ]
    assert rooms.rooms() == ["room1"] and rooms.peers("room1") == ["peer1", "peer2"]
    for sender, message in (("peer1", DOC_OFFER), ("peer2", DOC_ANSWER), ("peer1", DOC_CANDIDATE)):
        request = parse(message)
        assert isinstance(request, Relay)
        (delivery,) = rooms.relay("room1", sender, request)
        assert delivery.peer_id == message["target_peer_id"]
        assert delivery.message == {**message, "from_peer_id": sender}  # every field as sent, plus the sender
    assert rooms.leave("room1", "peer1") == [Delivery("peer2", {"type": "peer_left", "peer_id": "peer1"})]
    assert rooms.leave("room1", "peer1") == []  # idempotent
    assert rooms.leave("room1", "peer2") == [] and rooms.rooms() == []  # an empty room is forgotten
    with pytest.raises(NotFound):
        rooms.peers("room1")


def test_relay_without_target_goes_to_every_other_peer_and_null_candidate() -> None:
    rooms = RoomRegistry(max_rooms=1, max_peers=3)
    for peer in ("a", "b", "c"):
        rooms.join("r", peer, "alice")
    request = parse({"type": "ice_candidate", "candidate": None})
    assert isinstance(request, Relay)
    deliveries = rooms.relay("r", "b", request)
    assert [d.peer_id for d in deliveries] == ["a", "c"]
    assert deliveries[0].message == {"type": "ice_candidate", "candidate": None, "from_peer_id": "b"}


def test_limits_and_refusals() -> None:
    rooms = RoomRegistry(max_rooms=1, max_peers=2)
    rooms.join("r", "a", "alice")
    with pytest.raises(Conflict) as taken:
        rooms.join("r", "a", "bob")
    assert taken.value.field == "peer_id"
    rooms.join("r", "b", "bob")
    with pytest.raises(RoomFull) as full:
        rooms.join("r", "c", "bob")
    assert (full.value.code, full.value.http_status) == ("room_full", 409)
    with pytest.raises(TooManyRooms):
        rooms.join("other", "a", "alice")
    offer = parse(DOC_OFFER)
    assert isinstance(offer, Relay)
    with pytest.raises(NotFound) as missing:
        rooms.relay("r", "a", offer)
    assert missing.value.field == "target_peer_id"
    with pytest.raises(NotFound):
        rooms.relay("r", "a", Relay("offer", {"type": "offer", "sdp": SDP}, "a"))  # not to oneself
    with pytest.raises(NotFound):
        rooms.relay("nowhere", "a", Relay("offer", {"type": "offer", "sdp": SDP}, "b"))
    for bad in ("", "a/b", "x" * 65, "é"):
        with pytest.raises(BadRequest):
            rooms.join(bad, "p", "alice")
    with pytest.raises(ValueError):
        RoomRegistry(max_rooms=1, max_peers=1)


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"type": "offer", "target_peer_id": "p"}, "offer"),
        ({"type": "offer", "offer": "v=0"}, "offer"),
        ({"type": "offer", "offer": {"type": "answer", "sdp": SDP}}, "offer.type"),
        ({"type": "answer", "answer": {"type": "answer", "sdp": "junk"}}, "answer.sdp"),
        ({"type": "offer", "offer": {"type": "offer", "sdp": SDP}, "target_peer_id": 5}, "target_peer_id"),
        ({"type": "offer", "offer": {"type": "offer", "sdp": SDP}, "target_peer_id": "a b"}, "target_peer_id"),
        ({"type": "ice_candidate", "candidate": "candidate:1"}, "candidate"),
        ({"type": "ice_candidate", "candidate": {"candidate": 1}}, "candidate.candidate"),
        ({"type": "ice_candidate", "candidate": {"candidate": "", "sdpMid": 0}}, "candidate.sdpMid"),
        ({"type": "ice_candidate", "candidate": {"candidate": "", "sdpMLineIndex": True}}, "candidate.sdpMLineIndex"),
        ({"type": "ice_candidate"}, "candidate"),
        ({"type": 3}, "type"),
        ({"type": "login", "user": "alice"}, "token"),
        ({"type": "login", "token": "t", "api_key": "k"}, "token"),
        ({"type": "dial", "to": ""}, "to"),
        ({"type": "dial"}, "to"),
        ({"type": "hangup"}, "call_id"),
        ({"type": "hangup", "call_id": ""}, "call_id"),
    ],
)  # fmt: skip
def test_bad_messages_name_the_field(message: object, field: str) -> None:
    with pytest.raises(BadRequest) as error:
        parse(message)
    assert error.value.field == field


def test_other_requests_and_frame_errors() -> None:
    assert parse({"type": "ping"}) == Ping()
    assert parse({"type": "login", "user": "alice", "secret": "s"}) == Login(user="alice", secret="s")
    assert parse({"type": "login", "token": "t"}) == Login(token="t")
    assert parse({"type": "dial", "to": "2000"}) == Dial("2000")
    assert parse({"type": "hangup", "call_id": "c1"}) == Hangup("c1")
    with pytest.raises(UnknownType):
        parse({"type": "join"})
    with pytest.raises(TooLarge):
        parse_room_message("x" * 2000, 1024)
    for frame in ("{", "[]", b"\xff", "null"):
        with pytest.raises(BadRequest):
            parse_room_message(frame, LIMIT)
    extra = {**DOC_OFFER, "from_peer_id": "forged", "extra": 1}
    relay = parse(extra)
    assert isinstance(relay, Relay)
    assert relay.to_json("peer1") == {**DOC_OFFER, "from_peer_id": "peer1"}


def test_peer_states_every_pair() -> None:
    rooms = RoomRegistry(max_rooms=2, max_peers=2)
    peer = RoomPeer(rooms, "r", "a")
    with pytest.raises(Conflict):
        peer.relay(Relay("offer", {"type": "offer", "sdp": SDP}, None))  # not joined yet
    assert peer.join("alice")[0].message == {"type": "existing_peers", "peers": []}
    assert peer.state is PeerState.JOINED and peer.user_id == "alice"
    with pytest.raises(Conflict):
        peer.join("alice")
    assert peer.leave() == [] and peer.state is PeerState.LEFT and rooms.rooms() == []
    assert peer.leave() == []
    quitter = RoomPeer(rooms, "r", "b")
    assert quitter.leave() == [] and quitter.state is PeerState.LEFT
    allowed = {(PeerState.AWAITING_LOGIN, PeerState.JOINED), (PeerState.AWAITING_LOGIN, PeerState.LEFT),
               (PeerState.JOINED, PeerState.LEFT)}  # fmt: skip
    for old, new in itertools.product(PeerState, PeerState):
        walker = RoomPeer(rooms, "w", "w")
        walker.state = old
        if (old, new) in allowed:
            walker._set_state(new)
            assert walker.state is new
        else:
            with pytest.raises(IllegalTransition, match=old.value):
                walker._set_state(new)


@given(st.one_of(st.text(max_size=300), st.binary(max_size=300), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["type", "offer", "answer", "candidate", "target_peer_id", "sdp", "token", "to"]),
        inner, max_size=5),
    max_leaves=12,
).map(json.dumps)))  # fmt: skip
def test_any_input_raises_only_signaling_errors(data: str | bytes) -> None:
    with contextlib.suppress(SignalingError):
        parse_room_message(data, LIMIT)
