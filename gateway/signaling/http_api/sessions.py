"""A session's progress after its HTTP offer was answered: `GET /webrtc/sessions/{id}` (a snapshot, for
polling) and `GET /webrtc/sessions/{id}/events` (server-sent events, WHATWG HTML §9.2).

The event stream sends every progress event (gateway/signaling/http_api/progress.py) as

    id: 3
    event: failed
    data: {"id": 3, "event": "failed", "at": 1700000000.123, "reason": "busy", "sip_status": 486, ...}

starting after `Last-Event-ID` (header) or `?after=` when given, else from the first event, and a comment
line (`: keep-alive`) every `KEEPALIVE` seconds of silence; it ends after the session's final event
(`failed`, `ended` or `closed`). Both routes take the API's credentials (a browser reads the stream with
`fetch()`, which can send `Authorization`; `EventSource` cannot).
"""

from __future__ import annotations

import json
import logging
from typing import Final

from aiohttp import web

from gateway.signaling.errors import BadRequest, SignalingError
from gateway.signaling.http_api.handlers import HTTP_API_KEY, authenticate, error_response
from gateway.signaling.http_api.progress import ProgressEvent, SessionProgress

logger = logging.getLogger(__name__)

KEEPALIVE: Final = 15.0
MAX_STREAMS: Final = 256  # event streams open at once, across all users


async def _progress(request: web.Request) -> SessionProgress:
    context = request.app[HTTP_API_KEY]
    principal = await authenticate(request, context)
    session_id = request.match_info["session_id"]
    return await context.offer_service.progress(principal.user, session_id)


async def status_handler(request: web.Request) -> web.Response:
    session_id = request.match_info["session_id"][:128]
    try:
        progress = await _progress(request)
    except SignalingError as exc:
        return error_response(exc, session_id)
    return web.json_response(progress.snapshot(), headers={"Cache-Control": "no-store"})


def _start_after(request: web.Request) -> int:
    raw = request.headers.get("Last-Event-ID") or request.query.get("after") or "0"
    if not raw.isdigit() or len(raw) > 12:
        raise BadRequest(f"Last-Event-ID / after must be an event number, got {raw[:20]!r}", field="after")
    return int(raw)


def sse_frame(event: ProgressEvent) -> bytes:
    data = json.dumps(event.to_json(), separators=(",", ":"))
    return f"id: {event.seq}\nevent: {event.name}\ndata: {data}\n\n".encode()


class EventStreams:
    """Counts the open event streams (MAX_STREAMS)."""

    def __init__(self) -> None:
        self.open = 0


STREAMS_KEY: Final = web.AppKey("signaling_event_streams", EventStreams)


async def events_handler(request: web.Request) -> web.StreamResponse:
    session_id = request.match_info["session_id"][:128]
    streams = request.app[STREAMS_KEY]
    try:
        progress = await _progress(request)
        after = _start_after(request)
    except SignalingError as exc:
        return error_response(exc, session_id)
    if streams.open >= MAX_STREAMS:
        return error_response(SignalingError("too many event streams open", http_status=503), session_id)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    streams.open += 1
    try:
        await response.prepare(request)
        await response.write(b"retry: 2000\n\n")
        while True:
            events = await progress.wait(after, KEEPALIVE)
            if not events and not progress.finished:
                await response.write(b": keep-alive\n\n")
                continue
            for event in events:
                await response.write(sse_frame(event))
                after = event.seq
            if progress.finished and not progress.events_after(after):
                break
    except ConnectionResetError:
        logger.debug("event stream of %s: the client went away", session_id)
        return response
    finally:
        streams.open -= 1
    await response.write_eof()
    return response
