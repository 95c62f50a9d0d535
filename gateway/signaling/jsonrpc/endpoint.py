"""`GET /jsonrpc`: the WebSocket of the JSON-RPC 2.0 dialect, `RpcPeer` on the shared session loop.

Credentials at the upgrade (any one): `Authorization: Bearer <API key or session token>` / `Basic`,
`X-API-Key`, or the query `?api_key=` / `?token=` (a browser's WebSocket cannot send headers; the URL
may end up in logs, so prefer `announce` with credentials there). Bad credentials at the upgrade: HTTP
401 with the API's error body. None: the socket opens, counts as awaiting login, and `announce` must
authenticate within `SignalingLimits.login_timeout` (then close 4008; nothing is sent first: a JSON-RPC
response needs a request). The Origin check, caps, heartbeat, size limit, rate limit (charged per call:
a batch's calls each take a token), failed logins, shutdown and drain (1012 once the peer has no call,
relayed or not; 503 to new upgrades) are the session loop's (gateway/signaling/session_loop.py), and so
is the runner that handles a peer's single requests beside each other (`SessionSocket.run`, peer.py).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

from aiohttp import web

from gateway.signaling.errors import LoginTimeout, SignalingError
from gateway.signaling.http_api.handlers import error_response
from gateway.signaling.jsonrpc import framing as rpc
from gateway.signaling.jsonrpc.context import RpcContext
from gateway.signaling.jsonrpc.peer import RpcPeer
from gateway.signaling.session_loop import (
    ORIGINS_KEY,
    SOCKETS_KEY,
    Busy,
    SessionRules,
    SessionSocket,
    origin_refusal,
    serve,
)
from gateway.signaling.ws.endpoint import TRY_AGAIN_LATER
from gateway.signaling.ws.relay import WsRelay

logger = logging.getLogger(__name__)

RPC_KEY: Final = web.AppKey("signaling_jsonrpc", RpcContext)
RULES: Final = SessionRules("JSON-RPC", per_message_rate=False)
REPLACED: Final = 4010  # close code: a newer socket announced the peer's id and took its calls over


class RpcDialect:
    """The loop's `Dialect` for one `/jsonrpc` socket: an `RpcPeer`, or, once its `announce` named a
    peer that waits on another instance of a cluster, a relay to that one (resume.py, ws/relay.py)."""

    def __init__(
        self,
        peer: RpcPeer,
        socket: SessionSocket,
        send: Callable[[str], Awaitable[None]],
        credentials: tuple[Mapping[str, str], Mapping[str, str]] = ({}, {}),
    ) -> None:
        self.peer = peer
        self._socket = socket
        self._send = send  # this socket's: the peer it carries sends with it (a resumed one changes hands)
        self._credentials = credentials  # the upgrade's (headers, query): a relay passes them on
        self._announcing: str | bytes | None = None  # the frame of the peer's first announce
        self._relay: WsRelay | None = None

    @property
    def logged_in(self) -> bool:
        return self._relay is not None or self.peer.authenticated

    async def relay(self, base_url: str) -> bool | None:
        """Carry this socket on to the instance at ``base_url``, replaying the announcing frame: True when
        done, False when it is unreachable, None when it refused the socket now (closed 1013: the client
        tries again)."""
        if self._announcing is None:
            return False
        headers, query = self._credentials
        relay = WsRelay(self._socket, base_url, "/jsonrpc", headers, query)
        if await relay.open(self._announcing):
            self._relay = relay
            return True
        if relay.refused:
            self._socket.close_with(TRY_AGAIN_LATER)
            return None
        return False

    def idle(self, busy: Busy) -> bool:
        return self.peer.idle(busy)

    async def on_open(self) -> None:
        logger.info("JSON-RPC peer %s opened from %s", self.peer.id, self._socket.remote)

    async def on_message(self, data: str | bytes) -> None:
        if self._relay is not None:
            await self._relay.send(data)
            return
        # a lone announce of a fresh peer may be carried on as it is, if the peer waits elsewhere
        relayable = self.peer.fresh and not self._socket.relayed and _lone_announce(data)
        self._announcing = data if relayable else None
        self.peer.relay = self.relay if relayable else None
        if not self.peer.sends_with(self._send):
            return  # a newer socket of the peer took it over: this one is closing (4010)
        await self.peer.receive(data)
        if self.peer.successor is not None:  # its announce resumed a detached peer (resume.py)
            self.peer = self.peer.successor
            await self.peer.flush()

    async def on_refused(self, error: SignalingError, message: str | bytes | None = None) -> None:
        if not isinstance(error, LoginTimeout):  # a response needs a request: the close says it
            await self.peer.refuse(error, rpc.id_of(message) if message is not None else None)

    async def on_close(self) -> None:
        if self._relay is not None:
            await self._relay.close()
        self.peer = self.peer.successor or self.peer  # closed between a resuming announce and on_message
        if self.peer.sends_with(self._send):  # not when a newer socket took the peer over
            await self.peer.close()
        logger.info("JSON-RPC peer %s closed (code %s)", self.peer.id, self._socket.close_code or 1000)


def _lone_announce(data: str | bytes) -> bool:
    """Whether a frame may be one `announce` request (one object, not a batch): a relay replays it."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return text.lstrip().startswith("{") and "announce" in text


async def jsonrpc_handler(request: web.Request) -> web.StreamResponse:
    refusal = origin_refusal(request, request.app[ORIGINS_KEY])
    if refusal is not None:
        return refusal
    context = request.app[RPC_KEY]
    ip = request.remote or ""
    principal = None
    authorization = request.headers.get("Authorization")
    api_key = request.headers.get("X-API-Key") or request.query.get("api_key")
    token = request.query.get("token")
    # what a relay to another instance passes on (resume.py): the client's own, as it gave them
    forwarded = {
        name: request.headers[name] for name in ("Authorization", "X-API-Key") if name in request.headers
    }
    query = {name: request.query[name] for name in ("api_key", "token") if name in request.query}
    if authorization is None and token is not None:
        authorization = f"Bearer {token}"
    if authorization is not None or api_key is not None:
        try:
            principal = await context.credentials.authenticate(authorization, api_key, ip)
        except SignalingError as exc:
            return error_response(exc)

    def open_dialect(socket: SessionSocket) -> RpcDialect:
        async def send(text: str) -> None:
            await socket.send_text(text)

        peer = RpcPeer(
            context,
            send,
            principal,
            ip,
            take=socket.take,
            login_failed=socket.login_failed,
            run=socket.run,
            too_many=socket.too_many,
            kick=lambda: socket.close(REPLACED),
        )
        dialect = RpcDialect(peer, socket, send, (forwarded, query))
        return dialect

    return await serve(
        request,
        rules=RULES,
        sockets=request.app[SOCKETS_KEY],
        limits=context.limits,
        open_dialect=open_dialect,
        monotonic=context.monotonic,
        counted=principal is None,
    )
