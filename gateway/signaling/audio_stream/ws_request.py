"""The `/ws` request `audio_stream` (docs/signaling.md): a web user starts or stops the live audio stream
of her own call, to the url the operator configured (`audio_stream.url`, or an override's):

    {"type": "audio_stream", "id": 7, "call_id": "c-...", "action": "start",
     "sample_rate": 16000, "encoding": "pcm16", "inject": "sip"}     # the last three optional
    {"type": "audio_stream", "id": 8, "call_id": "c-...", "action": "stop"}

Acked as `audio_stream` with the call id; refused with the error naming the field (`action`,
`sample_rate`, `encoding`, `inject`; `url` may not be given; `call_id` not hers or not up, 409 when it
streams already or the gateway has no audio streams). The runtime does it (``StreamRequests``: the
driver's ``audio_stream``, set by gateway/runtime/audio_streams/).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from gateway.signaling.errors import BadRequest, Conflict

if TYPE_CHECKING:
    from gateway.signaling.service import SessionSink

ACTIONS: Final = ("start", "stop")
OPTIONS: Final = ("sample_rate", "encoding", "inject")
_CALL_ID: Final = re.compile(r"[A-Za-z0-9._~:@+-]{1,128}\Z")

# (session, call id, action, options) -> done; raises the SignalingError the client is told
StreamRequests = Callable[["SessionSink", str, str, Mapping[str, object]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class AudioStream:
    id: str | int | None
    call_id: str
    action: str
    options: Mapping[str, object]


def parse_audio_stream(rid: str | int | None, data: Mapping[str, object]) -> AudioStream:
    call_id, action = data.get("call_id"), data.get("action")
    if not isinstance(call_id, str) or not _CALL_ID.match(call_id):
        raise BadRequest("call_id must be a call id the gateway gave out", field="call_id")
    if not isinstance(action, str) or action not in ACTIONS:
        raise BadRequest(
            f"action must be one of {', '.join(ACTIONS)}, got {str(action)[:20]!r}", field="action"
        )
    if "url" in data:
        raise BadRequest("url is the operator's (audio_stream.url): a web user may not name one", field="url")
    options = {key: data[key] for key in OPTIONS if key in data}
    if options and action == "stop":
        raise BadRequest(f"stop takes no {next(iter(options))}", field=next(iter(options)))
    return AudioStream(rid, call_id, action, options)


async def audio_stream_request(service: Any, session: Any, request: AudioStream) -> None:
    """The `/ws` connection's handler row: the call service's ``audio_stream`` (None: no streams here)."""
    handler: StreamRequests | None = getattr(service, "audio_stream", None)
    if handler is None:
        raise Conflict("this gateway streams no audio", field="action")
    await handler(session, request.call_id, request.action, request.options)
