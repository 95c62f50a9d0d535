"""A web user on the gateway's WebSocket protocol (docs/signaling.md), with aiohttp's client.

    async with WebUser(gateway.http_url, "alice", "alice-demo") as alice:
        call_id = await alice.call("2000", offer_sdp)
        connected = await alice.wait_for("connected", call_id=call_id)

`WebUser` keeps every event it receives; `wait_for(type, **match)` returns the first one not yet
returned whose fields match, so a test or an example never misses an event that came early.
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
    ) -> None:
        """`base_url` http:// or https:// (then WSS, verified with `ssl`, e.g. trusting a dev CA); `origin`
        sends an Origin header as a browser page of that origin would; `autoping` False: the gateway's
        pings go unanswered, as from a browser whose network went away; `token`: log in with a session
        token (a page that reloads, with the token of its last login) instead of the secret."""
        self._autoping = autoping
        self.url = base_url.replace("https://", "wss://").replace("http://", "ws://") + "/ws"
        self._ssl = ssl
        self._origin = origin
        self.user = user
        self.secret = secret
        self.token = token  # the session token: given, or the one the login returned
        self.session_id = ""
        self.events: list[Message] = []
        self._taken: set[int] = set()
        self._changed = asyncio.Event()
        self._replies: dict[int, asyncio.Future[Message]] = {}
        self._ids = itertools.count(1)
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> WebUser:
        self._http = aiohttp.ClientSession()
        headers = {"Origin": self._origin} if self._origin is not None else None
        self._ws = await self._http.ws_connect(
            self.url,
            ssl=self._ssl if self._ssl is not None else True,
            headers=headers,
            autoping=self._autoping,
        )
        self._reader = asyncio.create_task(self._read())
        login: Message = {"type": "login", "user": self.user, "secret": self.secret}
        if self.token is not None:
            login = {"type": "login", "token": self.token}
        registered = await self.request(login)
        self.session_id = registered["session_id"]
        self.token = registered["token"]
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
        self._ws = self._http = self._reader = None

    async def _read(self) -> None:
        assert self._ws is not None
        async for message in self._ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            data: Message = json.loads(message.data)
            reply = self._replies.pop(data["id"], None) if isinstance(data.get("id"), int) else None
            if reply is not None and not reply.done():
                reply.set_result(data)
                continue
            self.events.append(data)
            self._changed.set()

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
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
