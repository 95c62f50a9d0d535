"""Three-way calls on JSON-RPC (issue 37 item 2), as `/ws`'s: `merge {call_ids}` and `split {call_id}`
go to the call service's `MergeService` (gateway/runtime/merge/), and its `merged` / `split` events
become notifications of the same names with the same fields. This module imports the signaling's
service types, errors and the events of gateway/signaling/conference.py.
"""

from __future__ import annotations

from typing import cast

from gateway.signaling.conference import Merged, Split
from gateway.signaling.errors import Conflict
from gateway.signaling.service import CallService, JsonValue, MergeService, SessionSink

__all__ = ["Merged", "Split", "notification", "three_way"]


async def three_way(calls: CallService, session: SessionSink, action: str, call_id: str, other: str) -> None:
    """`merge` of `call_id` and `other`, or `split` of `call_id`."""
    if not isinstance(calls, MergeService):
        raise Conflict("this gateway merges no calls", field="call_ids" if action == "merge" else "call_id")
    if action == "merge":
        await calls.merge(session, [call_id, other])
    else:
        await calls.split(session, call_id)


def notification(event: Merged | Split) -> tuple[str, dict[str, JsonValue]]:
    """The notification's method and params: the event's type and its other fields."""
    body = cast(dict[str, JsonValue], event.to_json())
    return str(body.pop("type")), body
