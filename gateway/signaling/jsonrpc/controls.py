"""A JSON-RPC peer's call controls (issue 33, as `/ws` and the HTTP API): `hold`, `resume`, `dtmf`,
`transfer` (blind `to`, or attended: `replaces` another call of the peer), `message` (chat), `merge` and
`split` (three_way.py) and `record`, carried out on the call service for one call the peer resolved
(peer.py). The result says what was started; how it goes follows as progress notifications, and the
call machine refuses what the call's state does not allow: the result says what was started (`holding`,
`resuming`, `sent`, `transferring`...), and how it goes follows as progress (`held`, `resumed`,
`transfer`, `message_result`; `error` for a refusal that comes after the result).
"""

from __future__ import annotations

from typing import Final, cast

from gateway.signaling.errors import BadRequest, Conflict
from gateway.signaling.jsonrpc.params import ControlParams
from gateway.signaling.jsonrpc.three_way import three_way
from gateway.signaling.limits import TokenBucket, charge_tones
from gateway.signaling.service import CallService, ChatService, JsonValue, SessionSink
from gateway.signaling.ws.connection import record_call

__all__ = ["control"]

# what a control's result says was started (the HTTP API's statuses; dtmf and message: "sent")
_STARTED: Final = {"hold": "holding", "resume": "resuming", "transfer": "transferring", "merge": "merging", "split": "splitting"}  # fmt: skip


async def control(
    calls: CallService,
    session: SessionSink,
    params: ControlParams,
    call_id: str,
    other: str | None,
    dtmf_budget: TokenBucket,
    dtmf_burst: float,
) -> JsonValue:
    """``params.action`` on ``call_id``; ``other``: the merge's second call or the attended transfer's
    consultation call (both the peer's, resolved)."""
    action = params.action
    if action == "hold":
        await calls.hold(session, call_id)
    elif action == "resume":
        await calls.resume(session, call_id)
    elif action in ("merge", "split"):  # three-way calls (jsonrpc/three_way.py)
        await three_way(calls, session, action, call_id, other or "")
    elif action == "record":  # a call's recording (runtime/recordings.py)
        return cast(
            JsonValue, {"call_id": call_id, **await record_call(calls, session, call_id, params.recording)}
        )
    elif action == "dtmf":
        charge_tones(dtmf_budget, params.digits, params.duration_ms, dtmf_burst)
        await calls.dtmf(session, call_id, params.digits, params.duration_ms)
    elif action == "transfer":
        if other is not None and other == call_id:
            raise BadRequest("replaces names the call transferred itself", field="replaces")
        await calls.transfer(session, call_id, params.to or None, params.replaces)
    else:
        if not isinstance(calls, ChatService):
            raise Conflict("this gateway carries no chat in calls", field="call_id")
        await calls.call_message(session, call_id, params.body)
    return {"call_id": call_id, "status": _STARTED.get(action, "sent")}
