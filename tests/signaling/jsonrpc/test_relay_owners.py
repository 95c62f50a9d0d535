"""`PeerDirectory`'s peer-id ownership (issue 32 item 2), driven with an explicit clock and in-memory ends:
the first user holds an id, another is refused (-32008) and the holder is untouched; several sockets of
the holder share it (the latest rings, the earlier one again once the latest goes); a socket announcing
another id gives up its previous one; a released id stays its user's for RESERVE_SECONDS, then is free.
The WebSocket-level behaviour is tests/e2e/dialects/test_jsonrpc_peer_ids.py."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from gateway.identity import SipAddress, WebUser
from gateway.signaling.errors import Forbidden
from gateway.signaling.jsonrpc import framing as rpc
from gateway.signaling.jsonrpc.framing import PeerIdTaken
from gateway.signaling.jsonrpc.relay import RESERVE_SECONDS, PeerDirectory
from gateway.signaling.service import JsonValue


@dataclass(eq=False)
class End:
    user: WebUser
    peer_id: str | None = None
    accepts_calls: bool = True
    notes: list[tuple[str, Mapping[str, JsonValue]]] = field(default_factory=list)

    @property
    def user_id(self) -> str:
        return self.user.id

    async def notify(self, method: str, params: Mapping[str, JsonValue]) -> None:
        self.notes.append((method, params))


def _user(user_id: str, number: str) -> WebUser:
    return WebUser(user_id, user_id.title(), SipAddress.parse(f"sip:{number}@pbx.example.org"))


ALICE, BOB = _user("alice", "1001"), _user("bob", "1002")


def _announce(directory: PeerDirectory, end: End, peer_id: str, now: float) -> None:
    directory.announce(peer_id, end, now)
    end.peer_id = peer_id  # as RpcPeer does once the directory took it


def test_another_user_is_refused_and_the_holder_untouched() -> None:
    directory = PeerDirectory()
    desk, bob = End(ALICE), End(BOB)
    _announce(directory, desk, "alice-desk", 0.0)
    with pytest.raises(PeerIdTaken) as refused:
        directory.announce("alice-desk", bob, 1.0)
    assert "alice-desk" in refused.value.message and refused.value.field == "peer_id"
    assert rpc.error_from(refused.value, 7).to_json()["error"] == {
        "code": rpc.PEER_ID_TAKEN,
        "message": "peer id 'alice-desk' belongs to another user",
        "data": {"reason": "peer_id_taken", "http_status": 409, "field": "peer_id"},
    }
    assert directory.peer("alice-desk") is desk and directory.owner("alice-desk", 1.0) == "alice"


async def test_the_holders_sockets_share_it_and_a_release_is_reserved() -> None:
    directory = PeerDirectory()
    desk, tab, bob = End(ALICE), End(ALICE), End(BOB)
    _announce(directory, desk, "alice-desk", 0.0)
    _announce(directory, tab, "alice-desk", 1.0)  # her second tab: the latest rings
    assert directory.peer("alice-desk") is tab
    await directory.gone(tab, 2.0)
    assert directory.peer("alice-desk") is desk  # still hers, on the first socket
    await directory.gone(desk, 3.0)
    assert directory.peer("alice-desk") is None
    with pytest.raises(PeerIdTaken):  # reserved for her
        directory.announce("alice-desk", bob, 3.0 + RESERVE_SECONDS - 1)
    back = End(ALICE)
    _announce(directory, back, "alice-desk", 3.0 + RESERVE_SECONDS - 1)  # her reconnect takes it back
    assert directory.peer("alice-desk") is back
    await directory.gone(back, 100.0)
    _announce(directory, bob, "alice-desk", 100.0 + RESERVE_SECONDS)  # the reservation ran out: free
    assert directory.owner("alice-desk", 100.0 + RESERVE_SECONDS) == "bob"


def test_announcing_another_id_gives_up_the_previous_one() -> None:
    directory = PeerDirectory()
    desk = End(ALICE)
    _announce(directory, desk, "one", 0.0)
    _announce(directory, desk, "two", 1.0)
    assert directory.peer("one") is None and directory.peer("two") is desk
    assert directory.owner("one", 1.0) == "alice"  # reserved like any release
    assert directory.owner("one", 1.0 + RESERVE_SECONDS) is None
    assert list(directory.holders) == ["two"]


async def test_a_call_to_a_peer_obeys_may_call() -> None:
    directory = PeerDirectory()
    caller, callee = End(ALICE), End(BOB)
    _announce(directory, caller, "alice-1", 0.0)
    _announce(directory, callee, "bob-1", 0.0)
    asked: list[tuple[str, str]] = []

    def refuse(a: WebUser, b: WebUser) -> bool:
        asked.append((a.id, b.id))
        return False

    with pytest.raises(Forbidden) as refused:
        await directory.offer(caller, "bob-1", "v=0\r\n", 5.0, refuse)
    assert refused.value.field == "target_peer_id" and "allow_outbound" in refused.value.message
    assert asked == [("alice", "bob")] and callee.notes == [] and directory.calls == {}
