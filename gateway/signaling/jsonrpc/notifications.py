"""What a JSON-RPC peer is told of its calls: the call core's events as notifications, pure.

    progress       {call_id, event: ringing | early_media | answered | dtmf | held | resumed | message
                    | message_result | transfer | transfer_requested | quality | error, ...}
                   (and `taken_over`, told by the peer itself: peer.py `take_over_call`)
    disconnect     {call_id, reason, message, sip_status}
    ice_candidate  {call_id, candidate}
    offer          {call_id, sdp: {type: "offer", sdp}}
    contact_state, voicemail, recording, merged, split   (as /ws's events of the same names)

The peer (peer.py) keeps the state some of them change (its calls, the answer an `offer` waits for,
the inbound calls ringing it) and decides whether an `offer` is told at all.
"""

from __future__ import annotations

import logging
from typing import Final, cast

from gateway.signaling import events as sig
from gateway.signaling.jsonrpc.three_way import Merged, Split, notification
from gateway.signaling.service import JsonValue

__all__ = ["notification_of"]

logger = logging.getLogger(__name__)

_PROGRESS: Final = {sig.Ringing: "ringing", sig.EarlyMedia: "early_media", sig.Connected: "answered"}
Notification = tuple[str, dict[str, JsonValue]]


def notification_of(event: sig.Event) -> Notification | None:
    """The notification (method, params) that tells ``event``; None for what a peer is not told."""
    match event:
        case sig.Ringing(call_id=call_id) | sig.Connected(call_id=call_id) | sig.EarlyMedia(call_id=call_id):
            return "progress", {"call_id": call_id, "event": _PROGRESS[type(event)]}
        case sig.DtmfReceived(call_id=call_id, digit=digit, duration_ms=duration):
            return "progress", {"call_id": call_id, "event": "dtmf", "digit": digit, "duration_ms": duration}
        case sig.CallMessage(call_id=call_id, body=body):
            return "progress", {"call_id": call_id, "event": "message", "body": body}
        case sig.Held(call_id=call_id, by=by) | sig.Resumed(call_id=call_id, by=by):
            name = "held" if isinstance(event, sig.Held) else "resumed"
            return "progress", {"call_id": call_id, "event": name, "by": by}
        case sig.IceCandidate(call_id=call_id, candidate=candidate):
            value = cast(JsonValue, candidate.to_json()) if candidate is not None else None
            return "ice_candidate", {"call_id": call_id, "candidate": value}
        case sig.Offer(call_id=call_id, sdp=sdp):
            return "offer", {"call_id": call_id, "sdp": {"type": "offer", "sdp": sdp}}
        case sig.Ended(call_id=call_id, reason=reason, message=message, sip_status=status):
            return "disconnect", {
                "call_id": call_id,
                "reason": reason,
                "message": message,
                "sip_status": status,
            }
    return _in_call(event)


def _in_call(event: sig.Event) -> Notification | None:
    """How the call controls go (issue 33), and the SIP party's transfer request, as progress."""
    match event:
        case sig.Transfer(call_id=call_id, state=state, sip_status=status, message=message):
            return "progress", {"call_id": call_id, "event": "transfer", "state": state,
                                "sip_status": status, "message": message}  # fmt: skip
        case sig.MessageResult(call_id=call_id, status=status):
            return "progress", {"call_id": call_id, "event": "message_result", "sip_status": status}
        case sig.TransferRequested(call_id=call_id, to=to):
            return "progress", {"call_id": call_id, "event": "transfer_requested", "to": to}
        case sig.CallQuality(call_id=call_id):  # the legs' figures while the call is up
            body = cast(dict[str, JsonValue], event.to_json())
            return "progress", {
                "call_id": call_id,
                "event": "quality",
                "legs": body["legs"],
                "poor": body["poor"],
            }
        case sig.ContactState() | sig.Voicemail() | sig.RecordingChanged():  # lamps, voicemail, recording
            body = cast(dict[str, JsonValue], event.to_json())
            return str(body.pop("type")), body
        case Merged() | Split():  # three-way calls: `merged` / `split`, as /ws's events
            return notification(event)
        case sig.ErrorMessage(code=code, message=message, call_id=call_id):
            logger.info("JSON-RPC call %s: %s %s", call_id, code, message)
            if call_id is not None:  # a control the call refused after its result (a transfer's target)
                return "progress", {"call_id": call_id, "event": "error", "code": code, "message": message}
    return None
