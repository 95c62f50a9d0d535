"""gateway/runtime/web_calls.py: which web user a dialled string names, the route to her through the
gateway's own listener, and the users[].on_busy setting (the policy itself: tests/calls/test_busy.py)."""

from __future__ import annotations

import pytest

from gateway.config.loader import config_from_mapping
from gateway.identity.address import SipAddress
from gateway.identity.model import WebUser
from gateway.runtime.web_calls import find_web_user, room_route, self_route
from tests.e2e.harness import BOB_HASH

ALICE = WebUser("alice", "Alice Liddell", SipAddress.parse("sip:1001@pbx.example.org"))
BOB = WebUser("bob", "Bob", SipAddress.parse("sip:1002@pbx.example.org"), aliases=("+15550001002", "bobby"))
USERS = (ALICE, BOB)


@pytest.mark.parametrize(
    ("dialled", "expected"),
    [
        ("bob", BOB),
        (" BOB ", BOB),
        ("alice liddell", ALICE),
        ("1002", BOB),
        ("10-02", BOB),
        ("+15550001002", BOB),
        ("bobby", BOB),
        ("sip:1001@pbx.example.org", ALICE),
        ("1001@PBX.example.org", ALICE),
        ("sip:1001@elsewhere.example.org", None),
        ("2000", None),
        ("", None),
        ("sip:@@", None),
    ],
)
def test_find_web_user(dialled: str, expected: WebUser | None) -> None:
    assert find_web_user(USERS, dialled) == expected


def test_self_route() -> None:
    assert self_route(BOB, "UDP", "127.0.0.1", 5070) == "sip:1002@127.0.0.1:5070"
    assert self_route(BOB, "TCP", "::1", 5070) == "sip:1002@[::1]:5070;transport=tcp"


class _Listener:
    def __init__(self, transport: str, host: str) -> None:
        self.address = (transport, host, 5070)

    def own_address(self) -> tuple[str, str, int]:
        return self.address


def test_room_route() -> None:
    """A room's number, dialled or as a SIP URI's user part: the room at our own listener; else None."""
    numbers = frozenset({"3001", "*7#"})
    udp, tcp = _Listener("UDP", "127.0.0.1"), _Listener("TCP", "::1")
    assert room_route(udp, numbers, " 3001 ") == "sip:3001@127.0.0.1:5070"
    assert room_route(udp, numbers, "sip:3001@pbx.example") == "sip:3001@127.0.0.1:5070"
    assert room_route(tcp, numbers, "*7#") == "sip:*7%23@[::1]:5070;transport=tcp"
    assert room_route(udp, numbers, "3002") is None
    assert room_route(udp, numbers, "sip:@bad") is None


def _config(on_busy: object) -> object:
    return config_from_mapping(
        {
            "pbx": {"domain": "pbx.example.org"},
            "users": [{"id": "a", "sip": "1001", "on_busy": on_busy, "web_secret_hash": BOB_HASH}],
        },
        {},
    )


@pytest.mark.parametrize("value", ["ring", "reject", "forward:2000", "forward:sip:vm@example.org"])
def test_on_busy_in_config(value: str) -> None:
    assert _config(value).users[0].on_busy == value  # type: ignore[attr-defined]


@pytest.mark.parametrize("value", ["voicemail", "forward:", "forward:20 00", 486, None])
def test_bad_on_busy_names_the_key(value: object) -> None:
    with pytest.raises(Exception, match=r"users\[0\]\.on_busy"):
        _config(value)
