"""The `merged` and `split` events of three-way calls (issue 37 item 2; sans-I/O, like events.py).

A web user merges her current call and a held one (`merge {call_ids}`): both SIP parties and she are
mixed in the gateway (gateway/runtime/merge/), and every session of hers that asked is told `merged`.
`split` tells that a call left the conference: split off by her (it is held again, a call of its own),
or ended; `call_ids` are the calls still in it, and `over` says the conference ended (one call left:
an ordinary call again). Each dialect words them its own way: /ws as below, the HTTP API as progress
events of both sessions, JSON-RPC as `progress` notifications. docs/signaling.md lists the fields.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Merged:
    """The calls `call_ids` are one conference `conference_id` now (the first carries the web user's
    audio: the mix of both parties)."""

    conference_id: str
    call_ids: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {"type": "merged", "conference_id": self.conference_id, "call_ids": list(self.call_ids)}


@dataclass(frozen=True, slots=True)
class Split:
    """Call `call_id` left conference `conference_id` (`reason`: split, ended); `call_ids` are still in
    it; `over`: the conference ended (the one call left is an ordinary call again)."""

    conference_id: str
    call_id: str
    call_ids: tuple[str, ...]
    reason: str
    over: bool

    def to_json(self) -> dict[str, object]:
        return {
            "type": "split", "conference_id": self.conference_id, "call_id": self.call_id,
            "call_ids": list(self.call_ids), "reason": self.reason, "over": self.over,
        }  # fmt: skip
