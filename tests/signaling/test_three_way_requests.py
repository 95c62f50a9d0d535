"""Three-way calls' requests and events in each dialect, without a network (issue 37 item 2): the HTTP
API's `POST /webrtc/merge {session_id, with}` and `/webrtc/split {session_id}` bodies, JSON-RPC's
`merge {call_ids}` and `split {call_id}` params, each bad one refused naming its field, and the
`merged` / `split` events as `/ws` sends them and as JSON-RPC notifications. (`/ws`'s own requests are
in tests/signaling/ws/test_protocol.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from gateway.signaling.conference import Merged, Split
from gateway.signaling.errors import BadRequest
from gateway.signaling.http_api.offer_protocol import CONTROL_ACTIONS, control_request
from gateway.signaling.jsonrpc.framing import METHODS
from gateway.signaling.jsonrpc.params import ControlParams, params_of
from gateway.signaling.jsonrpc.three_way import notification


def test_http_merge_and_split_bodies() -> None:
    assert {"merge", "split"} <= set(CONTROL_ACTIONS)
    merge = control_request("merge", {"session_id": "s1", "with": "s2"})
    assert (merge.action, merge.session_id, merge.other) == ("merge", "s1", "s2")
    split = control_request("split", {"session_id": "s2"})
    assert (split.action, split.session_id, split.other) == ("split", "s2", "")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"session_id": "s1"}, "with"),
        ({"session_id": "s1", "with": "s1"}, "with"),
        ({"session_id": "s1", "with": 5}, "with"),
        ({"session_id": "s1", "with": "bad id!"}, "with"),
        ({"with": "s2"}, "session_id"),
    ],
)
def test_http_merge_refusals_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(BadRequest) as error:
        control_request("merge", body)
    assert error.value.field == field


def test_jsonrpc_merge_and_split_params() -> None:
    assert {"merge", "split"} <= METHODS
    assert params_of("merge", {"call_ids": ["c1", "c2"]}) == ControlParams("merge", "c1", other="c2")
    assert params_of("split", {"call_id": "c2"}) == ControlParams("split", "c2")


@pytest.mark.parametrize(
    ("method", "params", "field"),
    [
        ("merge", {}, "call_ids"),
        ("merge", {"call_ids": ["c1"]}, "call_ids"),
        ("merge", {"call_ids": ["c1", "c2", "c3"]}, "call_ids"),
        ("merge", {"call_ids": "c1,c2"}, "call_ids"),
        ("merge", {"call_ids": ["c1", 2]}, "call_ids"),
        ("merge", {"call_ids": ["c1", "c 2"]}, "call_ids"),
        ("split", {}, "call_id"),
        ("split", {"call_id": "c 2"}, "call_id"),
    ],
)
def test_jsonrpc_refusals_name_the_field(method: str, params: dict[str, Any], field: str) -> None:
    with pytest.raises(BadRequest) as error:
        params_of(method, params)
    assert error.value.field == field


def test_events_on_ws_and_as_jsonrpc_notifications() -> None:
    merged = Merged("conf-1", ("c2", "c1"))
    assert merged.to_json() == {"type": "merged", "conference_id": "conf-1", "call_ids": ["c2", "c1"]}
    assert notification(merged) == ("merged", {"conference_id": "conf-1", "call_ids": ["c2", "c1"]})
    split = Split("conf-1", "c1", ("c2",), "ended", True)
    method, params = notification(split)
    assert method == "split"
    assert params == {
        "conference_id": "conf-1",
        "call_id": "c1",
        "call_ids": ["c2"],
        "reason": "ended",
        "over": True,
    }
