"""A web user on the gateway's WebSocket protocol (docs/signaling.md), with aiohttp's client.

    async with WebUser(gateway.http_url, "alice", "alice-demo") as alice:
        call_id = await alice.call("2000", offer_sdp)
        connected = await alice.wait_for("connected", call_id=call_id)

`WebUser` keeps every event it receives; `wait_for(type, **match)` returns the first one not yet
returned whose fields match, so a test or an example never misses an event that came early.

With `reconnect=True` it behaves as the softphone page's client does when the gateway drains: a close
with 1012 (Service Restart) is followed at once by a new socket to the same URL (through a load balancer:
another instance) and a login with the session token; `closed {code}` and `reconnected {session_id}`
are recorded as events.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import ssl as ssl_
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

import aiohttp

__all__ = ["Message", "WebUser", "WebUserError"]

CLOSE_SERVICE_RESTART = 1012  # the gateway drains: reconnect now
RECONNECT_TRIES = 20  # 0.1 s apart: a load balancer may need a moment to take the draining one out

Message = dict[str, Any]


class WebUserError(AssertionError):
    """The gateway refused a request, or an awaited event did not come."""


class WebUser:
    """A web user on the gateway's `/ws`: login, requests with replies, and the events pushed."""

    def __init__(
        self,
        base_url: str,
        user: str,
        secret: str,
        *,
        ssl: ssl_.SSLContext | None = None,
        origin: str | None = None,
        autoping: bool = True,
        token: str | None = None,
        reconnect: bool = False,
        local_address: str | None = None,
    ) -> None:
        """`base_url` http:// or https:// (then WSS, verified with `ssl`, e.g. trusting a dev CA); `origin`
        sends an Origin header as a browser page of that origin would; `autoping` False: the gateway's
        pings go unanswered, as from a browser whose network went away; `token`: log in with a session
        token (a page that reloads, with the token of its last login) instead of the secret; `reconnect`:
        after a 1012 close (the gateway drains), reconnect and log in again with the token at once;
        `local_address`: the address its sockets come from (a loopback one of its own: each page its own
        client, as browsers on different machines are)."""
        self._local_address = local_address
        self._autoping = autoping
        self._reconnect = reconnect
        self._closing = False
        self.url = base_url.replace("https://", "wss://").replace("http://", "ws://") + "/ws"
        self._ssl = ssl
        self._origin = origin
        self.user = user
        self.secret = secret
        self.token = token  # the session token: given, or the one the login returned
        self.session_id = ""
        self.ice_servers: list[Message] = []  # the login's, for the page's RTCConfiguration
        self.events: list[Message] = []
        self._taken: set[int] = set()
        self._changed = asyncio.Event()
        self._replies: dict[int, asyncio.Future[Message]] = {}
        self._ids = itertools.count(1)
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def _connect(self) -> aiohttp.ClientWebSocketResponse:
        assert self._http is not None
        headers = {"Origin": self._origin} if self._origin is not None else None
        return await self._http.ws_connect(
            self.url,
            ssl=self._ssl if self._ssl is not None else True,
            headers=headers,
            autoping=self._autoping,
        )

    async def __aenter__(self) -> WebUser:
        try:
            await self._open()
        except BaseException:
            await self.close()  # a refused login or connection leaves no session or reader behind
            raise
        return self

    async def _open(self) -> None:
        # keeps cookies of IP-address hosts too, as a browser does (HAProxy's GWSRV stickiness cookie)
        connector = (
            aiohttp.TCPConnector(local_addr=(self._local_address, 0))
            if self._local_address is not None
            else None
        )
        self._http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), connector=connector)
        self._ws = await self._connect()
        self._reader = asyncio.create_task(self._read())
        login: Message = {"type": "login", "user": self.user, "secret": self.secret}
        if self.token is not None:
            login = {"type": "login", "token": self.token}
        registered = await self.request(login)
        self.session_id = registered["session_id"]
        self.token = registered["token"]
        self.ice_servers = registered.get("ice_servers", [])

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
        self._ws = self._http = self._reader = None

    async def _read(self) -> None:
        while True:
            ws = self._ws
            assert ws is not None
            async for message in ws:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    continue
                data: Message = json.loads(message.data)
                reply = self._replies.pop(data["id"], None) if isinstance(data.get("id"), int) else None
                if reply is not None and not reply.done():
                    reply.set_result(data)
                    continue
                self._record(data)
            if self._closing:
                return
            self._record({"type": "closed", "code": ws.close_code})
            if not self._reconnect or ws.close_code != CLOSE_SERVICE_RESTART or not await self._reopen():
                return

    def _record(self, event: Message) -> None:
        self.events.append(event)
        self._changed.set()

    async def _reopen(self) -> bool:
        """A new socket (a few quick tries); the login with the token runs beside the reader."""
        for _ in range(RECONNECT_TRIES):
            try:
                self._ws = await self._connect()
            except (aiohttp.ClientError, OSError):
                await asyncio.sleep(0.1)
                continue
            task = asyncio.get_running_loop().create_task(self._relogin())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return True
        self._record({"type": "reconnect_failed"})
        return False

    async def _relogin(self) -> None:
        try:
            registered = await self.request({"type": "login", "token": self.token})
        except (WebUserError, TimeoutError, ConnectionError) as exc:
            self._record({"type": "reconnect_failed", "error": str(exc)})
            return
        self.session_id, self.token = registered["session_id"], registered["token"]
        self._record({"type": "reconnected", "session_id": self.session_id})

    async def request(self, message: Message, timeout: float = 15) -> Message:
        """Send a request; its reply (an `error` reply raises WebUserError)."""
        assert self._ws is not None
        request_id = next(self._ids)
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._replies[request_id] = future
        await self._ws.send_str(json.dumps({**message, "id": request_id}))
        reply = await asyncio.wait_for(future, timeout)
        if reply["type"] == "error":
            raise WebUserError(f"{message['type']} refused: {reply}")
        return reply

    async def call(
        self, to: str, sdp: str, *, headers: dict[str, str] | None = None, early_answer: bool = False
    ) -> str:
        """Dial ``to``; ``headers``: custom SIP headers for the INVITE (sip.pass_headers); ``early_answer``:
        the gateway's answer comes in an `answer` event before the far end answers."""
        message: Message = {"type": "call", "to": to, "sdp": sdp}
        if headers is not None:
            message["headers"] = headers
        if early_answer:
            message["early_answer"] = True
        ack = await self.request(message)
        return str(ack["call_id"])

    async def answer(self, call_id: str, answerer: Callable[[str], Awaitable[str]]) -> Message:
        """Answer a ringing call (its `incoming` event came) as a browser does; the `connected` event.

        Accept the call, wait for the gateway's WebRTC `offer`, answer it with `answerer(offer_sdp)` (a
        `WebPeer`'s `answer`, say), and wait until the call is `connected` (docs/signaling.md).
        """
        await self.request({"type": "answer", "call_id": call_id})
        offer = await self.wait_for("offer", call_id=call_id)
        await self.request({"type": "answer", "call_id": call_id, "sdp": await answerer(offer["sdp"])})
        return await self.wait_for("connected", call_id=call_id)

    async def wait_for(self, kind: str | tuple[str, ...], timeout: float = 15, **match: Any) -> Message:
        """The first event not yet returned of type `kind` (or of one of several) whose fields match."""
        kinds = (kind,) if isinstance(kind, str) else kind
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for index, event in enumerate(self.events):
                if index in self._taken or event.get("type") not in kinds:
                    continue
                if all(event.get(key) == value for key, value in match.items()):
                    self._taken.add(index)
                    return event
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise WebUserError(f"no {kind} {match} within {timeout} s; events: {self.events}")
            self._changed.clear()
            # asyncio.timeout, not wait_for: Python 3.11's wait_for loses a cancellation that comes as the
            # event is set, and a cancelled waiter would wait on forever
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._changed.wait()
