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

A user may have `limits.event_streams_per_user` streams open at once (users[].limits.event_streams for
hers); one more gets 429 `too_many_event_streams`, so one user's streams never take the others' (the
gateway-wide MAX_STREAMS stays as a backstop: 503). An API key with `max_event_streams` may hold that
many of its user's (429 `too_many_event_streams_for_key`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Final

from aiohttp import web

from gateway.config import Config
from gateway.config.users import api_key_id
from gateway.signaling.api_auth import ApiPrincipal
from gateway.signaling.errors import BadRequest, SignalingError
from gateway.signaling.http_api.handlers import HTTP_API_KEY, authenticate, error_response
from gateway.signaling.http_api.progress import ProgressEvent, SessionProgress

logger = logging.getLogger(__name__)

KEEPALIVE: Final = 15.0
GONE_CHECK: Final = 1.0  # seconds between looks at whether the client closed its stream (then counted off)
MAX_STREAMS: Final = 256  # event streams open at once, across all users


async def _progress(request: web.Request) -> tuple[ApiPrincipal, SessionProgress]:
    """Who the credentials name, and the progress of her session."""
    context = request.app[HTTP_API_KEY]
    principal = await authenticate(request, context)
    session_id = request.match_info["session_id"]
    return principal, await context.offer_service.progress(principal.user, session_id)


async def status_handler(request: web.Request) -> web.Response:
    session_id = request.match_info["session_id"][:128]
    try:
        _, progress = await _progress(request)
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
    """Counts the open event streams, in all (MAX_STREAMS), per user (`per_user`, or the user's own cap
    in `own`) and per API key with a cap of its own (`keys`: key id -> its name and cap)."""

    def __init__(
        self,
        per_user: int = 8,
        own: Mapping[str, int] | None = None,
        total: int = MAX_STREAMS,
        keys: Mapping[str, tuple[str, int]] | None = None,
    ) -> None:
        self.open = 0
        self.total = total
        self.per_user = per_user
        self._own = dict(own or {})
        self._keys = dict(keys or {})
        self._by_user: dict[str, int] = {}
        self._by_key: dict[str, int] = {}

    @classmethod
    def from_config(cls, config: Config) -> EventStreams:
        own = {
            user.id: user.limits.event_streams
            for user in config.users
            if user.limits is not None and user.limits.event_streams is not None
        }
        keys = {
            api_key_id(user.id, index): (key.name or api_key_id(user.id, index), key.max_event_streams)
            for user in config.users
            for index, key in enumerate(user.api_keys)
            if key.max_event_streams is not None
        }
        return cls(config.limits.event_streams_per_user, own, keys=keys)

    def of(self, user_id: str) -> int:
        return self._by_user.get(user_id, 0)

    def of_key(self, key_id: str) -> int:
        return self._by_key.get(key_id, 0)

    def take(self, user_id: str, key_id: str | None = None) -> None:
        """Count one more stream of `user_id` (opened with the API key `key_id`); a SignalingError (429,
        or 503 for the gateway-wide cap) when the key, she, or the gateway has the most allowed."""
        if key_id is not None and key_id in self._keys:
            name, key_cap = self._keys[key_id]
            if self.of_key(key_id) >= key_cap:
                raise SignalingError(
                    f"API key {name} has {self.of_key(key_id)} event streams open, the most allowed "
                    f"(api_keys[].max_event_streams {key_cap})",
                    code="too_many_event_streams_for_key",
                    http_status=429,
                )
        cap = self._own.get(user_id, self.per_user)
        held = self.of(user_id)
        if held >= cap:
            raise SignalingError(
                f"{user_id} has {held} event streams open, the most allowed (limits.event_streams_per_user"
                f" {cap})",
                code="too_many_event_streams",
                http_status=429,
            )
        if self.open >= self.total:
            raise SignalingError("too many event streams open", http_status=503)
        self.open += 1
        self._by_user[user_id] = held + 1
        if key_id is not None and key_id in self._keys:
            self._by_key[key_id] = self.of_key(key_id) + 1

    def give_back(self, user_id: str, key_id: str | None = None) -> None:
        self.open -= 1
        _count_off(self._by_user, user_id)
        if key_id is not None:
            _count_off(self._by_key, key_id)


def _count_off(counts: dict[str, int], name: str) -> None:
    left = counts.get(name, 0) - 1
    if left > 0:
        counts[name] = left
    else:
        counts.pop(name, None)


STREAMS_KEY: Final = web.AppKey("signaling_event_streams", EventStreams)


async def events_handler(request: web.Request) -> web.StreamResponse:
    session_id = request.match_info["session_id"][:128]
    streams = request.app[STREAMS_KEY]
    try:
        principal, progress = await _progress(request)
        user_id, key_id = principal.user.id, principal.key_id
        after = _start_after(request)
        streams.take(user_id, key_id)
    except SignalingError as exc:
        if exc.http_status == 429:
            logger.info("event stream of %s refused: %s", session_id, exc)
        return error_response(exc, session_id)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    try:
        await response.prepare(request)
        await response.write(b"retry: 2000\n\n")
        silent = 0.0
        while True:
            events = await progress.wait(after, GONE_CHECK)
            if not events and not progress.finished:
                transport = request.transport
                if transport is None or transport.is_closing():  # the client went: counted off now
                    logger.debug("event stream of %s: the client went away", session_id)
                    return response
                silent += GONE_CHECK
                if silent >= KEEPALIVE:
                    await response.write(b": keep-alive\n\n")
                    silent = 0.0
                continue
            silent = 0.0
            for event in events:
                await response.write(sse_frame(event))
                after = event.seq
            if progress.finished and not progress.events_after(after):
                break
    except ConnectionResetError:
        logger.debug("event stream of %s: the client went away", session_id)
        return response
    finally:
        streams.give_back(user_id, key_id)
    await response.write_eof()
    return response
