"""A call's handover (gateway/runtime/continuity/takeover.py): its JSON read back whole, a bad one refused with the
field named, the dead instance's monotonic times moved onto this instance's clock."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.runtime.continuity.handover import Handover, HandoverError, HttpIds, RpcIds
from gateway.runtime.continuity.takeover import Takeovers
from gateway.runtime.passthrough import HANDOVER_KIND as PASSTHROUGH
from tests.calls import flows as f


def handover() -> Handover:
    machine = f.connected_out().to_dict()
    return Handover(
        "c1", machine, {"dialog": {}}, {"sip_local": "v=0"}, "fam", "alice", 1_700_000_000.0, 500.0
    )


def test_a_handover_is_read_back_whole() -> None:
    h = handover()
    assert Handover.from_json(h.to_json()) == h


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"v": 3}, "version"),
        ({"call_id": ""}, "call_id"),
        ({"family": 3}, "family"),
        ({"user": None}, "user"),
        ({"machine": []}, "machine"),
        ({"sip": "x"}, "sip"),
        ({"media": None}, "media"),
        ({"wall": "now"}, "wall"),
        ({"mono": True}, "mono"),
    ],
)
def test_a_bad_handover_names_its_field(change: dict[str, object], field: str) -> None:
    data = json.loads(handover().to_json())
    data.update(change)
    with pytest.raises(HandoverError, match=field):
        Handover.from_json(json.dumps(data))


def test_a_pass_through_call_of_a_session_kept_is_written_as_version_2() -> None:
    """An HTTP API session's or a JSON-RPC peer's pass-through call goes on by itself at a survivor
    (`media_intact`): version 2, which an instance that reads only version 1 refuses (it would cut the call
    when its grace ends); every other handover stays version 1, for such an instance to take over."""
    passthrough = {"kind": PASSTHROUGH, "sip_local": "v=0"}
    rpc = dataclasses.replace(handover(), media=passthrough, family="rpc:alice:desk", rpc=RpcIds("r", "desk"))
    http = dataclasses.replace(
        handover(), media=passthrough, family="", http=HttpIds("s1", "h-1", None, None)
    )
    for h in (rpc, http):
        assert h.media_intact and json.loads(h.to_json())["v"] == 2
        assert Handover.from_json(h.to_json()) == h
    page = dataclasses.replace(handover(), media=passthrough)  # a page reattaches: a new offer is needed
    bridged = dataclasses.replace(handover(), rpc=RpcIds("r", "desk"), family="rpc:alice:desk")
    for h in (page, bridged, handover()):
        assert not h.media_intact and json.loads(h.to_json())["v"] == 1


def test_a_whip_resources_handover_says_so_and_an_http_api_sessions_keeps_its_text() -> None:
    """A WHIP resource's session is made again as one (its client's next publish renews it); an HTTP API
    session's handover writes no `whip` key, so its text is what it was before."""
    whip = dataclasses.replace(handover(), family="", http=HttpIds("s1", "h-1", "2000", "k1", whip=True))
    assert Handover.from_json(whip.to_json()) == whip
    assert json.loads(whip.to_json())["http"]["whip"] is True
    api = dataclasses.replace(handover(), family="", http=HttpIds("s1", "h-1", "2000", "k1"))
    assert "whip" not in json.loads(api.to_json())["http"]
    data = json.loads(whip.to_json())
    data["http"]["whip"] = "yes"
    with pytest.raises(HandoverError, match=r"http\.whip"):
        Handover.from_json(json.dumps(data))


def test_a_json_rpc_peers_handover_is_read_back_whole_and_others_keep_their_text() -> None:
    """A JSON-RPC peer's call carries its session and peer ids; a call of another session writes no
    `rpc` key, so its handover's text is what it was before (the ledger rewrites only changes)."""
    h = dataclasses.replace(handover(), family="rpc:alice:desk", rpc=RpcIds("r-abc", "desk"))
    assert Handover.from_json(h.to_json()) == h
    assert json.loads(h.to_json())["rpc"] == {"session_id": "r-abc", "peer_id": "desk"}
    assert "rpc" not in json.loads(handover().to_json())


@pytest.mark.parametrize(
    ("rpc", "field"),
    [
        ([], "rpc: not an object"),
        ({"session_id": "", "peer_id": "desk"}, "rpc.session_id"),
        ({"session_id": "r-abc", "peer_id": 7}, "rpc.peer_id"),
    ],
)
def test_a_bad_json_rpc_part_names_its_field(rpc: object, field: str) -> None:
    data = json.loads(handover().to_json())
    data["rpc"] = rpc
    with pytest.raises(HandoverError, match=field):
        Handover.from_json(json.dumps(data))


def test_a_call_has_one_session_http_or_json_rpc() -> None:
    h = dataclasses.replace(handover(), http=HttpIds("s1", "h-1", None, None), rpc=RpcIds("r-abc", "desk"))
    with pytest.raises(HandoverError, match="one session"):
        Handover.from_json(h.to_json())


LIBRARY = {
    "session_id": "sipws-7",
    "dialog": {"call_id": "d1"},
    "answer": "v=0",
    "identities": ["instance <urn:uuid:0d5b6e1c-2c39-4a5f-9d3e-0a9c4b6f2e11>"],
}


def test_a_sip_librarys_handover_is_read_back_whole_with_no_login_family() -> None:
    """A SIP library's call carries its session and dialog (gateway/websip/takeover.py); no login family
    takes it back (its library's new flow does), so an empty `family` is read back, as for HTTP."""
    h = dataclasses.replace(handover(), family="", websip=LIBRARY)
    assert Handover.from_json(h.to_json()) == h
    assert json.loads(h.to_json())["websip"] == LIBRARY
    assert "websip" not in json.loads(handover().to_json())
    with pytest.raises(HandoverError, match="family"):  # any other call needs its login family
        Handover.from_json(dataclasses.replace(handover(), family="").to_json())


@pytest.mark.parametrize(
    ("library", "field"),
    [
        ([], "websip: not an object"),
        ({**LIBRARY, "session_id": ""}, "websip.session_id"),
        ({**LIBRARY, "session_id": 3}, "websip.session_id"),
    ],
)
def test_a_bad_sip_library_part_names_its_field(library: object, field: str) -> None:
    data = json.loads(dataclasses.replace(handover(), family="").to_json())
    data["websip"] = library
    with pytest.raises(HandoverError, match=field):
        Handover.from_json(json.dumps(data))


def test_a_call_has_one_session_http_json_rpc_or_sip_library() -> None:
    h = dataclasses.replace(handover(), rpc=RpcIds("r-abc", "desk"), websip=LIBRARY)
    with pytest.raises(HandoverError, match="one session"):
        Handover.from_json(h.to_json())


def test_not_json_is_refused() -> None:
    with pytest.raises(HandoverError, match="not JSON"):
        Handover.from_json("{")
    with pytest.raises(HandoverError, match="not an object"):
        Handover.from_json("[1]")


def test_the_machine_times_move_onto_this_instances_clock() -> None:
    """Written at wall time W when the dead instance's monotonic clock read 500, read at W + 3 where this
    instance's reads 9000: its time t is t - 500 + (9000 - 3) here."""
    h = handover()
    moved = h.machine_here(h.wall + 3.0, 9000.0)
    assert h.machine["created_at"] == 1000.0  # flows' clock
    assert moved["created_at"] == pytest.approx(1000.0 - 500.0 + 9000.0 - 3.0)
    assert moved["connected_at"] == pytest.approx(moved["created_at"])
    assert moved["ended_at"] is None


MERGE = {"conference_id": "conf-3", "call_ids": ["c2", "c1"]}


def test_a_merged_calls_handover_names_its_conference() -> None:
    """A call of a three-way conference names it, the carrier first (gateway/runtime/merge/three_way.py):
    the survivor holding both calls makes it again; others write no `merge` key (their text unchanged)."""
    h = dataclasses.replace(handover(), merge=MERGE)
    assert Handover.from_json(h.to_json()) == h
    assert json.loads(h.to_json())["merge"] == MERGE
    assert "merge" not in json.loads(handover().to_json())


@pytest.mark.parametrize(
    "merge",
    [
        [],
        {"conference_id": "", "call_ids": ["c1", "c2"]},
        {"conference_id": "conf-1", "call_ids": ["c1"]},
        {"conference_id": "conf-1", "call_ids": ["c1", "c1"]},
        {"conference_id": "conf-1", "call_ids": ["c2", "c3"]},  # not this call's conference
        {"conference_id": "conf-1", "call_ids": ["c1", 4]},
    ],
)
def test_a_bad_merge_part_names_its_field(merge: object) -> None:
    data = json.loads(handover().to_json())
    data["merge"] = merge
    with pytest.raises(HandoverError, match="merge"):
        Handover.from_json(json.dumps(data))


ROOM = {"room_id": "meet", "remote": "2000", "inbound": False, "owner": "alice"}


def test_a_room_partys_handover_is_read_back_whole_with_no_login_family() -> None:
    """A room's SIP party (gateway/runtime/rooms/service.py `party_of`): no login takes it back (the
    room's conference does where the room lives), so its `family` is empty."""
    h = dataclasses.replace(handover(), family="", room=ROOM)
    assert Handover.from_json(h.to_json()) == h
    inbound = dataclasses.replace(h, room={**ROOM, "inbound": True, "aor": "sip:3001@rooms.invalid"})
    assert Handover.from_json(inbound.to_json()) == inbound
    assert "room" not in json.loads(handover().to_json())


@pytest.mark.parametrize(
    ("room", "field"),
    [
        ([], "room: not an object"),
        ({**ROOM, "room_id": ""}, "room.room_id"),
        ({**ROOM, "remote": 7}, "room.remote"),
        ({**ROOM, "inbound": "no"}, "room.inbound"),
        ({**ROOM, "owner": 3}, "room.owner"),
        ({**ROOM, "inbound": True}, "room.aor"),  # called in: the room's own address is needed
    ],
)
def test_a_bad_room_part_names_its_field(room: object, field: str) -> None:
    data = json.loads(dataclasses.replace(handover(), family="").to_json())
    data["room"] = room
    with pytest.raises(HandoverError, match=field):
        Handover.from_json(json.dumps(data))


async def test_a_party_whose_room_lives_elsewhere_is_sent_there_once() -> None:
    """The survivor that claimed a dead instance's calls finds a party's room already taken by another
    instance (its browsers came back there first): the handover goes on to that instance, whose answer
    says whether the call goes on; one handed here already is not sent on again (a drain's hand-off
    leaves it where it is)."""
    byes: list[str] = []

    async def bye(reason: object = None) -> None:
        byes.append("bye")
        assert str(reason) == 'Q.850;cause=41;text="Call not carried on after a gateway failure"'

    async def sip_identity(user_id: str) -> None:
        return None

    ua = SimpleNamespace(adopt=lambda data, identity=None: SimpleNamespace(bye=bye, ended=True))
    identity = SimpleNamespace(sip_identity=sip_identity)
    takeovers = Takeovers(SimpleNamespace(ua=ua, identity=identity))  # type: ignore[arg-type]
    sent: list[tuple[str, dict[str, str]]] = []
    homes = {"meet": "http://gw3", "here": None, "refusing": "http://gw4", "silent": "http://gw5"}

    async def home(room_id: str) -> str | None:
        return homes[room_id]

    async def forward(url: str, lines: dict[str, str]) -> list[str] | None:
        sent.append((url, lines))
        return None if url == "http://gw5" else list(lines) if url == "http://gw3" else []

    async def party(*args: object) -> bool:
        return True

    takeovers.room_home, takeovers.forward, takeovers.on_room_party = home, forward, party
    party_of = dataclasses.replace(handover(), call_id="c1", family="", room=ROOM)
    assert await takeovers._room_elsewhere(party_of, "{line}", handed=False) is True
    assert sent == [("http://gw3", {"c1": "{line}"})]
    assert await takeovers._room_elsewhere(party_of, "{line}", handed=True) is False
    assert not byes  # (its sender, or a drain's instance, still has it)
    here = dataclasses.replace(party_of, room={**ROOM, "room_id": "here"})
    assert await takeovers._room_elsewhere(here, "{line}", handed=False) is None
    refused = dataclasses.replace(party_of, room={**ROOM, "room_id": "refusing"})
    assert await takeovers._room_elsewhere(refused, "{line}", handed=False) is False
    assert byes == ["bye"]  # nobody carries it on: the phone hears BYE, not dead air
    silent = dataclasses.replace(party_of, room={**ROOM, "room_id": "silent"})
    assert await takeovers._room_elsewhere(silent, "{line}", handed=False) is False
    assert byes == ["bye"]  # no answer: it may have taken it, so no BYE of ours
    takeovers.on_room_party = None  # rooms off here: refused before any re-INVITE
    assert await takeovers._room_elsewhere(here, "{line}", handed=False) is False
    assert byes == ["bye", "bye"] and len(sent) == 3


def test_both_ends_of_a_dialog_with_itself_name_it() -> None:
    """A web-to-web call through the instance's own listener: both calls' handovers name their SIP
    Call-ID (`pair`), which a survivor makes its own dialog on both ends; others write no `pair`."""
    h = dataclasses.replace(handover(), pair="a84b4c76e66710@127.0.0.2")
    assert Handover.from_json(h.to_json()) == h and json.loads(h.to_json())["pair"] == h.pair
    assert "pair" not in json.loads(handover().to_json())
    data = json.loads(h.to_json())
    data["pair"] = 7
    with pytest.raises(HandoverError, match="pair"):
        Handover.from_json(json.dumps(data))


def test_a_dialog_with_itself_is_made_this_instances_own() -> None:
    ua = SimpleNamespace(own_address=lambda: ("UDP", "127.0.0.3", 5071))
    takeovers = Takeovers(SimpleNamespace(ua=ua))  # type: ignore[arg-type]
    dialog = {"remote_target": "sip:1002@127.0.0.2:5070", "route_set": ["<sip:edge;lr>"], "local_cseq": 3}
    assert takeovers._to_self(dialog) == {
        "remote_target": "sip:1002@127.0.0.3:5071", "route_set": [], "local_cseq": 3,
    }  # fmt: skip
    assert (
        takeovers._to_self({"remote_target": "sip:127.0.0.2:5070"})["remote_target"] == "sip:127.0.0.3:5071"
    )


async def test_an_end_of_a_dialog_with_itself_goes_on_only_with_the_other() -> None:
    """The answering end of a web-to-web call's dialog, carried on here, is given up when its calling end
    is not (nothing else would ever end it); a drain's hand-off keeps a pair whole or takes neither end."""
    released: list[str] = []
    runtimes = [
        SimpleNamespace(call_id=c, finished=False, sip=SimpleNamespace(call=SimpleNamespace(release=lambda c=c: released.append(c))),
                        unrecorded=False, run_commands=lambda commands: None, media=SimpleNamespace(bridge=None))
        for c in ("c1", "c2", "c3")
    ]  # fmt: skip
    discarded: list[str] = []
    machines = {"c1": SimpleNamespace(session_id=None)}

    class Registry:
        def __contains__(self, call_id: object) -> bool:
            return call_id in machines and call_id not in discarded

        def get(self, call_id: str) -> Any:
            return machines[call_id]

        def discard(self, call_id: str) -> None:
            discarded.append(call_id)

    driver = SimpleNamespace(runtimes=runtimes, registry=Registry())
    takeovers = Takeovers(driver)  # type: ignore[arg-type]
    given_up: list[str] = []

    async def give_up(runtime: Any) -> None:
        given_up.append(runtime.call_id)

    takeovers._give_up = give_up  # type: ignore[method-assign]
    takeovers._pair("sip-1", "calling").set_result(False)  # its calling end could not be carried on
    await takeovers._calling_end_or_give_up("c2", "sip-1")
    assert given_up == ["c2"]
    takeovers._pair("sip-2", "calling").set_result(True)
    await takeovers._calling_end_or_give_up("c3", "sip-2")
    assert given_up == ["c2"]

    lines = {
        "c1": dataclasses.replace(handover(), call_id="c1", pair="sip-1").to_json(),
        "c2": dataclasses.replace(handover(), call_id="c2", pair="sip-1").to_json(),
        "c3": dataclasses.replace(handover(), call_id="c3").to_json(),
    }
    assert takeovers._whole_pairs(lines, ["c1", "c2", "c3"]) == ["c1", "c2", "c3"]
    assert takeovers._whole_pairs(lines, ["c1", "c3"]) == ["c3"]  # c2 not taken: c1 is not kept either
    assert released == ["c1"] and discarded == ["c1"] and runtimes[0].unrecorded
