"""The `/ws` endpoint: the JSON dialect's `Connection` (the protocol logic) on the shared session loop.

gateway/signaling/session_loop.py owns the socket: the upgrade checks, the login deadline, the heartbeat,
the size and rate limits, failed logins, one writer at a time, the drain (1012) and shutdown; this
module only turns its messages into the connection's and the connection's close requests (logout,
a login's failure) into the loop's. The connection is closed (so the call service hears
`session_closed`) however the socket ends. In a cluster, a first `login {token}` whose login's calls
wait on another instance turns the socket into a relay to it (relay.py).
"""

from __future__ import annotations

import logging
from typing import Final

from aiohttp import web

from gateway.signaling.errors import SignalingError
from gateway.signaling.events import ErrorMessage, ServerMessage, encode
from gateway.signaling.session_loop import (
    ORIGINS_KEY,
    SOCKETS_KEY,
    Busy,
    SessionRules,
    SessionSocket,
    origin_refusal,
    serve,
)
from gateway.signaling.ws.connection import Connection, ConnectionState, SignalingContext
from gateway.signaling.ws.protocol import request_id_of
from gateway.signaling.ws.relay import WsRelay, relay_target

logger = logging.getLogger(__name__)

CONTEXT_KEY: Final = web.AppKey("signaling_context", SignalingContext)
RULES: Final = SessionRules("JSON")
TRY_AGAIN_LATER: Final = 1013  # RFC 6455 §7.4.1: the instance holding the calls is busy (ws/relay.py)


class JsonDialect:
    """The loop's `Dialect` for one `/ws` socket: a `Connection`."""

    def __init__(self, context: SignalingContext, socket: SessionSocket) -> None:
        self._socket = socket
        self._context = context
        self._relay: WsRelay | None = None  # carried on to the instance where its calls wait (relay.py)

        async def send(message: ServerMessage) -> None:
            await socket.send_text(encode(message))

        self.connection = Connection(
            context,
            send,
            socket.remote,
            login_failed=socket.login_failed,
            run=socket.run,
            too_many=socket.too_many,
            kick=socket.close,
        )

    @property
    def logged_in(self) -> bool:
        return self._relay is not None or self.connection.state is not ConnectionState.AWAITING_LOGIN

    def idle(self, busy: Busy) -> bool:
        session = self.connection.session
        return session is None or not busy(session.id)

    async def on_open(self) -> None:
        logger.info("connection %s opened from %s", self.connection.id, self._socket.remote)

    async def on_message(self, data: str | bytes) -> None:
        if self._relay is not None:
            await self._relay.send(data)
            return
        if self.connection.state is ConnectionState.AWAITING_LOGIN and not self._socket.relayed:
            target = await relay_target(self._context, data)
            tried: set[str] = set()
            while target is not None and target not in tried:
                relay = WsRelay(self._socket, target)
                if await relay.open(data):
                    self._relay = relay
                    return
                if relay.refused:  # its calls' instance lives but refuses now: the page tries again
                    self._socket.close_with(TRY_AGAIN_LATER)
                    return
                tried.add(target)  # dead: where its calls went instead (a survivor's takeover)
                target = await relay_target(self._context, data, target)
        await self.connection.receive(data)
        if self.connection.close_code is not None:
            self._socket.close_with(self.connection.close_code)

    async def on_refused(self, error: SignalingError, message: str | bytes | None = None) -> None:
        await self.connection.send(ErrorMessage.from_error(error, request_id_of(message)))

    async def on_close(self) -> None:
        if self._relay is not None:
            await self._relay.close()
        await self.connection.close()
        logger.info("connection %s closed (code %s)", self.connection.id, self._socket.close_code or 1000)


async def websocket_handler(request: web.Request) -> web.StreamResponse:
    refusal = origin_refusal(request, request.app[ORIGINS_KEY])
    if refusal is not None:
        return refusal
    context = request.app[CONTEXT_KEY]
    return await serve(
        request,
        rules=RULES,
        sockets=request.app[SOCKETS_KEY],
        limits=context.limits,
        open_dialect=lambda socket: JsonDialect(context, socket),
        monotonic=context.monotonic,
    )
