"""A page's `/ws` socket carried on to the instance where its login's calls wait (a cluster; issue 34).

A reload or a network change brings the page back through HAProxy to any instance, and without a sticky
cookie not always to the one whose calls wait for it (gateway/runtime/continuity/reconnect.py: those calls, their
SIP legs and their media are that instance's). So the instance a page reaches looks at its first
message: a `login` with a session token whose login (token family) has calls waiting on another
instance (recorded in Redis by that instance: gateway/cluster/wiring.py) is relayed there. This instance
opens a WebSocket to the owner's advertised URL, sends it the login, and from then on carries every
message both ways unchanged. The owner authenticates the page itself (the token), tells it `calls`, and
the page's `reattach` makes the new web leg there (its ICE candidates are the owner's addresses, which
the browser reaches directly, as for any call). The page's Origin goes on with it, and its address in
X-Forwarded-For (which the owner believes of a source in its `http.trusted_proxies`); no credential of
this instance's, but a mark signed with the cluster secret (`X-Gateway-Relayed`,
gateway/signaling/cluster_http.py `RelayMark`): the owner serves a marked socket even while it drains
(its calls are there until it hands them over), counts it against none of its caps (this instance did),
and never relays it again. An owner that cannot be reached is dead: the login goes to the survivor that takes its
calls over (gateway/runtime/continuity/takeover.py), or is served here when there is none. An owner that
refuses the upgrade (its connection limits) lives: the page's socket is closed with 1013 (Try Again
Later), and the page reconnects, as it does after any close but 4010.
Either side closing closes the other, with its close code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import aiohttp

from gateway.signaling.errors import SignalingError
from gateway.signaling.session_loop import SessionSocket

if TYPE_CHECKING:
    from gateway.signaling.ws.connection import SignalingContext

__all__ = ["WsRelay", "relay_target"]

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
HEARTBEAT = 15.0  # s between our pings to the owner; no pong within half of it closes the relay


async def relay_target(
    context: SignalingContext, data: str | bytes, unreachable: str | None = None
) -> str | None:
    """The base URL of the instance a page's first message must be relayed to, or None (served here).
    ``unreachable``: the URL found dead just before (its calls may be going to a survivor)."""
    if context.relay_to is None:
        return None
    try:
        message = json.loads(data)
    except ValueError:
        return None  # the connection answers it
    if not isinstance(message, dict) or message.get("type") != "login":
        return None
    token = message.get("token")
    if not isinstance(token, str):
        return None  # a login with a secret starts a new login: nothing waits for it anywhere
    try:
        claims = await context.tokens.check(token)
        return await context.relay_to(claims.family, unreachable)
    except SignalingError:  # a bad token (refused here), or Redis unavailable (served here)
        return None


class WsRelay:
    """One page's socket carried on to ``base_url``'s `/ws` (see the module note), or to another path
    of the same kind: `/jsonrpc`, whose client's own credentials at the upgrade (``headers``: its
    Authorization or X-API-Key; ``query``: its `?api_key=`/`?token=`) go on with it
    (gateway/signaling/jsonrpc/resume.py); SIP over WebSocket, with ``protocols`` ``("sip",)``
    (gateway/signaling/sip_ws.py); a room's socket, to the instance the room lives on
    (gateway/signaling/rooms/endpoint.py)."""

    def __init__(
        self,
        socket: SessionSocket,
        base_url: str,
        path: str = "/ws",
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        protocols: tuple[str, ...] = (),
    ) -> None:
        self._socket = socket
        self._protocols = protocols  # the subprotocol the owner's endpoint wants (`sip`: RFC 7118)
        self._path = path
        self._base = base_url  # the owner's advertised URL: the mark names it
        self._url = base_url.replace("http", "ws", 1).rstrip("/") + path  # (logged: no credentials)
        self._query = "?" + urlencode(query) if query else ""
        self._headers = dict(headers or {})
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._carrying: asyncio.Task[None] | None = None
        self.refused = False  # the owner answered the upgrade with a refusal (its limits): it lives

    async def open(self, first: str | bytes | None) -> bool:
        """Connect to the owner and send it ``first`` (the login; None: nothing, a room's socket whose
        path says where it goes); False when it cannot be reached."""
        headers = dict(self._headers)
        origin = self._socket.headers.get("Origin")
        if origin is not None:
            headers["Origin"] = origin
        chain = self._socket.headers.get("X-Forwarded-For")
        headers["X-Forwarded-For"] = f"{chain}, {self._socket.remote}" if chain else self._socket.remote
        if self._socket.relay_stamp is not None:  # signed: the owner serves it even while it drains
            headers.update(self._socket.relay_stamp(self._path, self._base))
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT))
        try:
            self._ws = await self._http.ws_connect(
                self._url + self._query,
                headers=headers,
                autoping=True,
                heartbeat=HEARTBEAT,  # an owner whose host vanished (no reset) is found dead
                protocols=self._protocols,
            )
            if first is not None:
                await self._ws.send_str(first if isinstance(first, str) else first.decode("utf-8", "replace"))
        except aiohttp.WSServerHandshakeError as exc:  # there, but refusing now (429, 503): not dead
            logger.warning("relay of %s to %s refused: %s", self._socket.remote, self._url, exc.status)
            self.refused = True
            await self.close()
            return False
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:  # (its text may hold the query)
            reason = str(exc).split("?", 1)[0] if self._query else str(exc)
            logger.warning(
                "relay of %s to %s failed: %s", self._socket.remote, self._url, reason or type(exc).__name__
            )
            await self.close()
            return False
        except BaseException:  # cancelled (a shutdown): the owner's socket and the client session go too
            await self.close()
            raise
        self._carrying = asyncio.get_running_loop().create_task(self._carry(), name="ws-relay")
        logger.info("WebSocket from %s relayed to %s (its calls are there)", self._socket.remote, self._url)
        return True

    async def send(self, data: str | bytes) -> None:
        """A page's message on to the owner."""
        if self._ws is None or self._ws.closed:
            return
        try:
            await self._ws.send_str(data if isinstance(data, str) else data.decode("utf-8", "replace"))
        except (aiohttp.ClientError, ConnectionError) as exc:
            logger.info("relay to %s lost: %s", self._url, exc)
            await self._socket.close(1011)

    async def _carry(self) -> None:
        """The owner's messages to the page, until either closes."""
        assert self._ws is not None
        try:
            async for message in self._ws:
                if message.type is not aiohttp.WSMsgType.TEXT or not await self._socket.send_text(
                    message.data
                ):
                    break
        except (aiohttp.ClientError, ConnectionError) as exc:
            logger.info("relay from %s lost: %s", self._url, exc)
        code = self._ws.close_code
        if not self._socket.closed:  # the owner closed it (a logout, a drain): the page hears the same
            await self._socket.close(
                code if code is not None and 1000 <= code < 5000 and code != 1006 else 1011
            )

    async def close(self, code: int = 1000) -> None:
        """The page went (or the relay failed): the owner's socket goes too, with `code` (1012: the page's
        socket was lost or this instance drains; the page may come back)."""
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(aiohttp.ClientError, ConnectionError):
                await self._ws.close(code=code)
        if self._carrying is not None and self._carrying is not asyncio.current_task():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._carrying, 2.0)
        if self._http is not None:
            await self._http.close()
            self._http = None
