"""Per-user caps in the registry (gateway/calls/caps.py), without a network: which dial is refused and
why, that a refused dial leaves nothing behind, that inbound calls do not ring a user at her cap, and
that the caps come from gateway.yaml's `limits` and users[].limits; an API key's own caps count only the
calls dialled with it."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from gateway.calls import CallRegistry, CallSettings, NotifyIncoming, SipRespond, WebHangup
from gateway.calls.caps import CallCaps, CallLimitReached, CapsTable, KeyCaps
from gateway.config.loader import config_from_mapping
from peers.demo import ALICE_HASH
from tests.calls import flows as f


def registry(caps: CapsTable, pairs: dict[str, int] | None = None) -> CallRegistry:
    counter = itertools.count(1)
    held = pairs if pairs is not None else {}
    return CallRegistry(
        CallSettings(pbx_domain=f.DOMAIN, caps=caps),
        clock=f.Clock(),
        new_call_id=lambda: f"call-{next(counter)}",
        port_pairs=lambda call_id: held.get(call_id, 0),
    )


def test_unanswered_calls_over_the_cap_are_refused_before_any_machine() -> None:
    calls = registry(CapsTable(CallCaps(calls=8, unanswered=2)))
    first, _ = calls.dial(f.dial("1002"))
    calls.dial(f.dial("1003"))
    with pytest.raises(CallLimitReached, match=r"limits\.unanswered_per_user 2") as refused:
        calls.dial(f.dial("1004"))
    assert refused.value.limit == "too_many_unanswered_calls"
    assert len(calls) == 2  # nothing of the refused call
    calls.dial(f.dial("1002", user=f.BOB, session="s9"))  # bob is not alice
    calls.handle(first, WebHangup("s1"))  # one of hers ends: she may dial again
    assert calls.usage("alice").unanswered <= 1
    calls.dial(f.dial("1004"))


def test_the_calls_cap_counts_inbound_calls_and_stops_them_ringing_her() -> None:
    calls = registry(CapsTable(CallCaps(calls=2, unanswered=5)))
    calls.incoming(f.invite(f.found(("alice", "s1"))))
    calls.dial(f.dial("1002"))
    assert calls.usage("alice").calls == 2
    with pytest.raises(CallLimitReached) as refused:
        calls.dial(f.dial("1003"))
    assert refused.value.limit == "too_many_calls" and refused.value.setting == "limits.calls_per_user"
    _, out = calls.incoming(f.invite(f.found(("alice", "s1"))))  # a third call for her: 486, no ringing
    assert NotifyIncoming not in f.kinds(out)
    assert [c.status for c in out if isinstance(c, SipRespond)] == [486]


def test_the_port_budget_counts_each_call_at_least_one_pair() -> None:
    pairs: dict[str, int] = {}
    calls = registry(CapsTable(CallCaps(calls=10, unanswered=10, port_pairs=3)), pairs)
    first, _ = calls.dial(f.dial("1002"))
    pairs[first] = 2  # audio and video
    calls.dial(f.dial("1003"))  # none leased yet: counted as one
    with pytest.raises(CallLimitReached) as refused:
        calls.dial(f.dial("1004"))
    assert refused.value.limit == "port_budget"


def test_rooms_and_settings_without_config_have_no_caps() -> None:
    table = CapsTable(CallCaps(calls=1))
    assert table.for_user("room:lobby") is None
    assert CapsTable().for_user("alice") is None


def test_caps_come_from_the_limits_section_and_each_users_own() -> None:
    config = config_from_mapping(
        {
            "pbx": {"domain": "pbx.test"},
            "media": {"rtp_ports": {"start": 20000, "end": 20199}},  # 100 pairs
            "limits": {"calls_per_user": 6, "unanswered_per_user": 3, "port_share": 0.1},
            "users": [
                {"id": "alice", "sip": "1001", "web_secret_hash": ALICE_HASH, "limits": {"calls": 2}},
                {"id": "bob", "sip": "1002", "web_secret_hash": ALICE_HASH, "limits": {"port_share": 0.5}},
            ],
        },
        {},
    )
    table = CapsTable.from_config(config)
    assert table.for_user("carol") == CallCaps(6, 3, 10)
    assert table.for_user("alice") == CallCaps(2, 3, 10)
    assert table.for_user("bob") == CallCaps(6, 3, 50)


def test_an_api_keys_caps_count_the_calls_dialled_with_it() -> None:
    kiosk = KeyCaps("kiosk", calls=2, unanswered=1)
    calls = registry(CapsTable(CallCaps(calls=8, unanswered=8), keys=(("alice/api_keys[0]", kiosk),)))
    keyed = dataclasses.replace(f.dial("1002"), api_key="alice/api_keys[0]")
    first, _ = calls.dial(keyed)
    with pytest.raises(CallLimitReached, match=r"API key kiosk .*api_keys\[\]\.max_unanswered 1") as refused:
        calls.dial(dataclasses.replace(keyed, destination="1003"))
    assert refused.value.limit == "too_many_unanswered_calls_for_key"
    assert refused.value.setting == "users[].api_keys[].max_unanswered"
    calls.dial(f.dial("1003"))  # alice's own login: the key's caps are not hers
    calls.dial(dataclasses.replace(keyed, api_key="alice/api_keys[1]"))  # another key of hers: uncapped
    assert calls.key_usage("alice/api_keys[0]").calls == 1 and calls.usage("alice").calls == 3
    calls.handle(first, WebHangup("s1"))  # the key's call ends (CANCEL): it may dial again
    assert calls.key_usage("alice/api_keys[0]").unanswered == 0
    calls.dial(keyed)

    answered = registry(CapsTable(keys=(("k", KeyCaps("k", calls=1)),)))
    answered.dial(dataclasses.replace(keyed, api_key="k"))
    with pytest.raises(CallLimitReached) as refused:
        answered.dial(dataclasses.replace(keyed, api_key="k"))
    assert refused.value.limit == "too_many_calls_for_key" and "api_keys[].max_calls 1" in str(refused.value)
    with pytest.raises(ValueError, match="at least 1"):
        KeyCaps("k", unanswered=0)


def test_key_caps_come_from_each_users_api_keys() -> None:
    keys = [
        {"key": "k" * 16, "name": "kiosk", "max_calls": 2, "max_unanswered": 1, "max_event_streams": 3},
        {"key": "m" * 16, "max_event_streams": 1},  # streams only: no call caps of its own
        {"key": "n" * 16, "max_unanswered": 4},
    ]
    config = config_from_mapping(
        {
            "pbx": {"domain": "pbx.test"},
            "users": [{"id": "alice", "sip": "1001", "web_secret_hash": ALICE_HASH, "api_keys": keys}],
        },
        {},
    )
    table = CapsTable.from_config(config)
    assert table.for_key("alice/api_keys[0]") == KeyCaps("kiosk", 2, 1)
    assert table.for_key("alice/api_keys[1]") is None
    assert table.for_key("alice/api_keys[2]") == KeyCaps("alice/api_keys[2]", None, 4)
