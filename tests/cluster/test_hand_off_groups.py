"""A drain's hand-off keeps together what must be taken over by one instance (gateway/cluster/wiring.py
`together`): the calls of one login (its page reattaches them where its login is served) and the two calls
of a three-way conference (made again only where both are)."""

from __future__ import annotations

import json

from gateway.cluster.wiring import together


def line(family: str, merge: list[str] | None = None) -> str:
    data: dict[str, object] = {"family": family}
    if merge is not None:
        data["merge"] = {"conference_id": "conf-1", "call_ids": merge}
    return json.dumps(data)


def test_the_calls_of_one_login_and_of_one_conference_go_together() -> None:
    handovers = {
        "a1": line("fam-a", ["a2", "a1"]),
        "a2": line("fam-a", ["a2", "a1"]),
        "a3": line("fam-a"),
        "b1": line("fam-b"),
        "h1": line("", ["h2", "h1"]),  # two HTTP API sessions' calls merged: no login family
        "h2": line("", ["h2", "h1"]),
        "h3": line(""),
        "h4": line(""),
        "x": "not json",
        "w1": json.dumps({"family": "fam-c", "pair": "sip-1"}),  # a web-to-web call's two ends
        "w2": json.dumps({"family": "fam-d", "pair": "sip-1"}),
        "w3": json.dumps({"family": "fam-c"}),  # another call of w1's login: with it, so with w2
    }
    groups = [sorted(group) for group in together(handovers)]
    assert sorted(groups) == [
        ["a1", "a2", "a3"],
        ["b1"],
        ["h1", "h2"],
        ["h3"],
        ["h4"],
        ["w1", "w2", "w3"],
        ["x"],
    ]
    assert {k: v for group in together(handovers) for k, v in group.items()} == handovers  # none lost
