"""HTTP between cluster instances: requests for a session another instance owns are forwarded to it, and the
admin API (drain).

HAProxy may send any request to any instance. The ones that name an HTTP-API or WHIP session (`POST
/webrtc/close`, `POST /webrtc/ice-candidate` and the call controls (`/webrtc/hold`...) by their JSON `session_id`; `GET /webrtc/sessions/{id}`,
`/events`; `PATCH`/`DELETE /whip/sessions/{id}`; `POST /webrtc/offer` with `transfer_of`, whose new call
must be placed where the REFER waits, or with the `session_id` of a session that exists: its ICE restart
or new media; a WHIP publish, by its user and destination: where a resource of theirs may wait for it;
a WHEP viewer's offer, by the session or room it watches)
are served here when the session is here; otherwise the
owner is looked up in Redis (gateway/cluster/sessions.py; an owner or instance record not signed with the
cluster secret is ignored) and the request is forwarded to its advertised HTTP URL.

No web secret leaves this instance (issue 32 item 11): the user is authenticated *here* (a 401 is
answered here), and the forward carries method, path, body and `X-Gateway-User: <user id>` but never the
client's `Authorization`, `Cookie`, `X-API-Key` or `Proxy-Authorization`, with
`X-Gateway-Forwarded: <instance>;<unix time>;<HMAC-SHA256>`: an assertion valid `MAX_SKEW` seconds,
under a key derived from `cluster.secret`, over the instance, method, path and query, time, user and a
SHA-256 of the body. The owner serves it as that user (handlers.ASSERTED_USER). A request carrying that
header is always served where it lands (never forwarded twice); a bad or stale signature gets 403. The
response, event streams included, is relayed back as it comes.

`POST /cluster/drain` (the same signature, or `Authorization: Bearer <cluster.secret>`) starts draining,
as SIGUSR1 does; `GET /cluster/status` says what this instance holds. `POST /cluster/takeover` (signed:
`hand_over` sends it) is a draining instance handing its calls to this one (`{instance, handovers: {call
id: handover JSON}}`, gateway/runtime/continuity/takeover.py); the answer lists the calls taken. `POST
/cluster/moved` (signed: `tell_moved`) is that taker telling the drained instance it moves those calls'
SIP parties now, so the drained one stops carrying their media (make before break).
`GET /cluster/watch` (signed) is a WebSocket another instance holds open to this one and never writes
on (gateway/cluster/peer_watch.py): it closes with 1001 when this instance stops, and without a close
when its process dies, which the watcher hears at once.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Container
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import aiohttp
from aiohttp import web

from gateway.logs import RateLimit
from gateway.signaling.errors import SignalingError
from gateway.signaling.http_api.handlers import (
    ASSERTED_KEY,
    ASSERTED_USER,
    HTTP_API_KEY,
    authenticate,
    error_response,
)
from gateway.signaling.http_api.offer_protocol import CONTROL_ACTIONS
from gateway.signaling.service import session_key, whip_key

logger = logging.getLogger(__name__)

FORWARDED: Final = "X-Gateway-Forwarded"
RELAYED: Final = "X-Gateway-Relayed"  # a WebSocket upgrade one instance relays to another (RelayMark)
USER: Final = "X-Gateway-User"
KEY_PARAM: Final = "gateway_api_key"  # a forwarded WHIP publish's API key id, in its signed query
# the client's credentials: never forwarded (the forward asserts the user instead)
_SECRETS: Final = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key", USER.lower()})
MAX_SKEW: Final = 30.0  # seconds a signature stays valid
FORWARD_TIMEOUT: Final = 10.0  # connecting and the first byte of the owner's answer
TAKEOVER: Final = "/cluster/takeover"
MOVED: Final = "/cluster/moved"
MOVED_TIMEOUT: Final = 1.0  # s a taker waits for the drained instance to let go of a call's media
WATCH: Final = "/cluster/watch"
WATCH_CLOSE: Final = 1.0  # s a stopping instance waits for its watchers to answer its 1001
HANDOVER_TIMEOUT: Final = (
    15.0  # a draining instance's calls taken over: re-INVITEs answered by their far ends
)
_HOP_BY_HOP: Final = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host", "content-length"}
)
_BODY_SESSION_PATHS: Final = frozenset(
    {
        "/webrtc/close",
        "/webrtc/ice-candidate",
        "/webrtc/record",
        *(f"/webrtc/{action}" for action in CONTROL_ACTIONS),
    }
)
_OFFER: Final = "/webrtc/offer"  # named by its `transfer_of`: an offer carrying out that session's REFER


class Owners(Protocol):
    async def owner(self, session_id: str) -> str | None: ...


class Peer(Protocol):
    @property
    def http(self) -> str: ...

    @property
    def draining(self) -> bool: ...


def sign(
    secret: bytes, instance: str, method: str, path: str, at: float, user: str = "", body: bytes = b""
) -> str:
    """The `X-Gateway-Forwarded` value asserting that `instance` forwards this request of `user`."""
    stamp = str(int(at))
    key = hmac.new(secret, b"sip-webrtc-gateway cluster forward", hashlib.sha256).digest()
    fields = (instance, method, path, stamp, user, hashlib.sha256(body).hexdigest())
    message = "".join(f"{len(part)}:{part}\n" for part in fields)  # length-prefixed: unambiguous
    mac = hmac.new(key, message.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
    return f"{instance};{stamp};{mac}"


def verify(
    secret: bytes, header: str, method: str, path: str, now: float, user: str = "", body: bytes = b""
) -> str | None:
    """The signing instance's id when `header` is a valid, fresh signature of this request, else None."""
    parts = header.split(";")
    if len(parts) != 3 or not parts[1].isdigit() or len(parts[1]) > 12:
        return None
    instance, stamp, _ = parts
    if abs(now - int(stamp)) > MAX_SKEW:
        return None
    expected = sign(secret, instance, method, path, int(stamp), user, body)
    return instance if hmac.compare_digest(expected.encode(), header.encode("utf-8", "replace")) else None


@dataclass
class RelayMark:
    """The mark on a WebSocket upgrade that one instance relays to another (gateway/signaling/ws/relay.py:
    a page's, a JSON-RPC client's or a SIP library's new socket carried on to the instance holding its
    calls): `X-Gateway-Relayed`, in the format of a forward's `sign` (the relaying instance, GET, the path,
    the time, and a random nonce in the user's place: the socket authenticates itself there) under a key
    of its own, derived from the cluster secret, so that a mark never passes for a forward's signature, nor
    one for a mark: `<instance>;<unix time>;<HMAC>;<nonce>`. It names the instance it is for (the HMAC
    covers that one's advertised URL with the path) and is taken once there: its nonce is remembered until
    the mark is stale, so whoever reads the traffic between the instances can replay it neither there
    nor at another instance (advertise https:// URLs, or keep them on a private network, all the same).
    The owner serves a marked upgrade while it drains (the socket comes for calls it still holds),
    counts it against none of its caps (the relaying instance counted it until it relayed it) and never
    relays it again (gateway/signaling/session_loop.py). A bad or stale mark makes it an ordinary upgrade,
    and is logged."""

    instance_id: str
    secret: bytes = field(repr=False)  # the cluster's: the mark's key is derived from it
    clock: Callable[[], float] = time.time
    refused: int = 0  # marks that did not verify
    _warnings: RateLimit = field(default_factory=RateLimit, repr=False)  # a flood of bad marks
    _key: bytes = field(init=False, repr=False)
    url: str = ""  # this instance's advertised HTTP URL: a mark names the instance it is for
    _seen: OrderedDict[str, float] = field(
        default_factory=OrderedDict, init=False, repr=False
    )  # nonce -> until

    def __post_init__(self) -> None:
        self._key = hmac.new(self.secret, b"sip-webrtc-gateway cluster relay", hashlib.sha256).digest()

    def stamp(self, path: str, target: str = "") -> dict[str, str]:
        """The mark of a relay to ``path`` at the instance whose advertised HTTP URL is ``target``."""
        nonce = secrets.token_urlsafe(12)
        where = target.rstrip("/") + path
        return {RELAYED: f"{sign(self._key, self.instance_id, 'GET', where, self.clock(), nonce)};{nonce}"}

    def relayed(self, request: web.Request) -> bool:
        header = request.headers.get(RELAYED)
        if header is None:
            return False
        signed, _, nonce = header.rpartition(";")
        now = self.clock()
        where = self.url.rstrip("/") + request.path  # a mark for another instance is none here
        if nonce and verify(self._key, signed, request.method, where, now, nonce) is not None:
            seen = self._seen
            while seen and next(iter(seen.values())) < now:  # (in the order taken, nearly: the oldest first)
                seen.popitem(last=False)
            if nonce not in seen:
                seen[nonce] = now + 2 * MAX_SKEW  # past any clock skew its stamp may have
                return True
        self.refused += 1
        if self._warnings.allow(logger, logging.WARNING):
            logger.warning(
                "a WebSocket upgrade from %s to %s has a bad, stale or replayed %s mark: served as any other",
                request.remote, request.path, RELAYED,
            )  # fmt: skip
        return False


@dataclass
class ClusterHttp:
    instance_id: str
    secret: bytes
    owners: Owners
    local_sessions: Callable[[], Container[str]]
    instance: Callable[[str], Awaitable[Peer | None]]
    drain: Callable[[], Awaitable[None]]
    status: Callable[[], Awaitable[dict[str, object]]]
    # a draining instance's calls carried on here: (its id, call id -> handover JSON) -> the ids taken
    take_over: Callable[[str, dict[str, str]], Awaitable[list[str]]] | None = None
    # calls this instance handed over whose taker now moves their SIP party: their media here ends
    moved: Callable[[list[str]], None] | None = None
    # where each user's WHIP resources calling each destination are (service.whip_key): a publish to the
    # same destination goes there, where its call may wait for it (taken over from a dead instance)
    whip_owners: Owners | None = None
    local_whips: Callable[[], Container[str]] = frozenset
    # the base URL of the live instance a room lives on, when another (cluster/room_owners.py `lives_at`)
    room_instance: Callable[[str], Awaitable[str | None]] | None = None
    clock: Callable[[], float] = time.time
    forwarded: int = 0
    _client: aiohttp.ClientSession | None = field(default=None, repr=False)
    _watched_by: set[web.WebSocketResponse] = field(default_factory=set, repr=False)
    _stopping: bool = field(default=False, repr=False)

    def install(self, app: web.Application) -> None:
        app.middlewares.append(self.middleware)
        app.router.add_post("/cluster/drain", self.drain_handler)
        app.router.add_get("/cluster/status", self.status_handler)
        app.router.add_post(TAKEOVER, self.takeover_handler)
        app.router.add_post(MOVED, self.moved_handler)
        app.router.add_get(WATCH, self.watch_handler)
        app.on_shutdown.append(self._stop_watches)
        app.on_cleanup.append(self._close)

    async def _stop_watches(self, app: web.Application) -> None:
        await self.stop_watches()

    async def stop_watches(self) -> None:
        """A clean stop says so to the instances watching this one (1001: not a death to act on), first
        thing, before any listener or socket of it closes; no new watch is taken after (503)."""
        self._stopping = True
        closing = [
            asyncio.ensure_future(ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"stopping"))
            for ws in self._watched_by
        ]
        if closing:  # bounded: a watcher that does not answer its close does not hold the stop up
            _, late = await asyncio.wait(closing, timeout=WATCH_CLOSE)
            for task in late:
                task.cancel()

    async def watch_handler(self, request: web.Request) -> web.StreamResponse:
        """Another instance's watch on this one (signed by it): held open, nothing said on it."""
        header = request.headers.get(FORWARDED)
        if header is None or await self._verified(request, header) is None:
            return web.json_response({"error": "cluster signature required", "code": 403}, status=403)
        if self._stopping:
            return web.json_response({"error": "this instance is stopping", "code": 503}, status=503)
        ws = web.WebSocketResponse(max_msg_size=1024)
        await ws.prepare(request)
        self._watched_by.add(ws)
        try:
            async for _ in ws:  # the watcher sends nothing; whatever comes is ignored
                pass
        finally:
            self._watched_by.discard(ws)
        return ws

    async def watch(self, base: str) -> int | None:
        """Hold a watch on the instance at HTTP base URL `base` until it closes: its close code (1001: it
        stops; also when it refused the watch for that, 503), or None when the connection dropped without
        one or could not be opened (it may be dead: the caller looks). Raises nothing but cancellation."""
        client = self._session()
        headers = {FORWARDED: sign(self.secret, self.instance_id, "GET", WATCH, self.clock())}
        try:
            async with client.ws_connect(
                base + WATCH, headers=headers, timeout=aiohttp.ClientWSTimeout(ws_close=1.0),
                autoping=True, heartbeat=None,
            ) as ws:  # fmt: skip
                async for _ in ws:
                    pass
                closed_clean = ws.close_code not in (None, aiohttp.WSCloseCode.ABNORMAL_CLOSURE)
                return ws.close_code if closed_clean else None
        except aiohttp.WSServerHandshakeError as exc:
            return int(aiohttp.WSCloseCode.GOING_AWAY) if exc.status == 503 else None
        except (aiohttp.ClientError, OSError, TimeoutError):
            return None

    def _session(self) -> aiohttp.ClientSession:
        if self._client is None:
            timeout = aiohttp.ClientTimeout(total=None, connect=FORWARD_TIMEOUT, sock_read=None)
            self._client = aiohttp.ClientSession(timeout=timeout, auto_decompress=False)
        return self._client

    async def _close(self, app: web.Application) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def _verified(self, request: web.Request, header: str) -> str | None:
        """The forwarding instance when `header` signs this request (and its asserted user), else None."""
        body = await request.read() if request.body_exists else b""
        user = request.headers.get(USER, "")
        return verify(self.secret, header, request.method, request.path_qs, self.clock(), user, body)

    async def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get(FORWARDED)
        if header is not None:
            return await self._verified(request, header) is not None
        bearer = request.headers.get("Authorization", "").encode("utf-8", "replace")
        return hmac.compare_digest(bearer, b"Bearer " + self.secret)

    async def drain_handler(self, request: web.Request) -> web.Response:
        if not await self._authorized(request):
            return web.json_response({"error": "cluster credentials required", "code": 403}, status=403)
        await self.drain()
        return web.json_response({"instance": self.instance_id, "status": "draining"}, status=202)

    async def _instance_request(
        self, request: web.Request, key: str, valid: Callable[[object], bool]
    ) -> tuple[str, Any] | web.Response:
        """Another instance's signed `{instance, <key>: ...}` (signed by it only: no Bearer, the body is
        signed): (that instance, the value of `key`), else the 403 or 400 to answer."""
        header = request.headers.get(FORWARDED)
        sender = await self._verified(request, header) if header is not None else None
        if sender is None:
            return web.json_response({"error": "cluster signature required", "code": 403}, status=403)
        try:
            body = json.loads(await request.read())
            value = body[key]
            if body["instance"] != sender or not valid(value):
                raise ValueError(f"instance or {key}")
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": f"bad {request.path} request: {exc}", "code": 400}, status=400)
        return sender, value

    def _signed(self, path: str, body: bytes) -> dict[str, str]:
        """The headers of a POST of `body` to another instance's `path`, signed by this one."""
        return {
            FORWARDED: sign(self.secret, self.instance_id, "POST", path, self.clock(), "", body),
            "Content-Type": "application/json",
        }

    async def takeover_handler(self, request: web.Request) -> web.Response:
        """A draining instance hands its calls here: `{instance, handovers: {call id: handover JSON}}`."""
        got = await self._instance_request(
            request, "handovers",
            lambda v: isinstance(v, dict) and all(isinstance(k, str) and isinstance(j, str) for k, j in v.items()),
        )  # fmt: skip
        if isinstance(got, web.Response):
            return got
        sender, handovers = got
        if self.take_over is None:
            return web.json_response({"taken": []})
        return web.json_response({"taken": await self.take_over(sender, handovers)})

    async def moved_handler(self, request: web.Request) -> web.Response:
        """The instance that took calls of this one's drain moves their SIP parties now: this one stops
        carrying their media (`{instance, calls: [call id]}`)."""
        got = await self._instance_request(
            request, "calls", lambda v: isinstance(v, list) and all(isinstance(c, str) for c in v)
        )
        if isinstance(got, web.Response):
            return got
        if self.moved is not None:
            self.moved(got[1])
        return web.json_response({"released": len(got[1])})

    async def tell_moved(self, base: str, call_ids: list[str]) -> bool:
        """Tell the instance at `base` that handed us `call_ids` that their SIP parties move here now:
        whether it answered (within MOVED_TIMEOUT: a drained instance about to exit may not)."""
        client = self._session()
        body = json.dumps({"instance": self.instance_id, "calls": call_ids}).encode()
        headers = self._signed(MOVED, body)
        try:
            timeout = aiohttp.ClientTimeout(total=MOVED_TIMEOUT)
            async with client.post(base + MOVED, data=body, headers=headers, timeout=timeout) as reply:
                return reply.status == 200
        except (aiohttp.ClientError, TimeoutError) as exc:
            logger.info("telling %s that %d calls move: %s", base, len(call_ids), exc)
            return False

    async def hand_over(self, base: str, handovers: dict[str, str]) -> list[str]:
        """Hand `handovers` (call id -> JSON) to the instance at HTTP base URL `base`; the call ids it took
        (none when it cannot be reached or refuses)."""
        return await self.hand_over_or_unknown(base, handovers) or []

    async def hand_over_or_unknown(self, base: str, handovers: dict[str, str]) -> list[str] | None:
        """`hand_over`, None when whether it took them is unknown (no answer: a timeout, a lost
        connection), as opposed to an answer that took none."""
        client = self._session()
        body = json.dumps({"instance": self.instance_id, "handovers": handovers}).encode()
        headers = self._signed(TAKEOVER, body)
        try:
            timeout = aiohttp.ClientTimeout(total=HANDOVER_TIMEOUT)
            async with client.post(base + TAKEOVER, data=body, headers=headers, timeout=timeout) as reply:
                answer = await reply.json() if reply.status == 200 else {}
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            logger.warning("handing %d calls to %s failed: %s", len(handovers), base, exc)
            return None
        taken = answer.get("taken") if isinstance(answer, dict) else None
        return [c for c in taken if isinstance(c, str) and c in handovers] if isinstance(taken, list) else []

    async def status_handler(self, request: web.Request) -> web.Response:
        if not await self._authorized(request):
            return web.json_response({"error": "cluster credentials required", "code": 403}, status=403)
        return web.json_response({"instance": self.instance_id, **(await self.status())})

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if FORWARDED in request.headers:
            source = await self._verified(request, request.headers[FORWARDED])
            if source is None:
                logger.warning(
                    "forwarded %s %s with a bad signature from %s",
                    request.method,
                    request.path,
                    request.remote,
                )
                return web.json_response({"error": "bad cluster signature", "code": 403}, status=403)
            user = request.headers.get(USER)
            if user:
                request[ASSERTED_USER] = user
                if KEY_PARAM in request.query:  # (signed with the path: a WHIP publish's API key)
                    request[ASSERTED_KEY] = _key_id(request.query[KEY_PARAM])
            return await handler(request)
        if self.whip_owners is not None and _publishes(request):
            return await self._publish(request, handler, self.whip_owners)
        if _watches(request):
            return await self._watch(request, handler)
        session_id = await self._session_named(request)
        if session_id is None:
            return await handler(request)
        try:  # a session id names a session among its user's (service.session_key)
            user = (await authenticate(request, request.app[HTTP_API_KEY])).user.id
        except SignalingError:
            return await handler(request)  # it answers the refusal (401), counted once
        key = session_key(user, session_id)
        if key in self.local_sessions():
            return await handler(request)
        return await self._to_owner(request, handler, self.owners, key, session_id)

    async def _publish(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        owners: Owners,
    ) -> web.StreamResponse:
        """A WHIP publish goes where the same user's resource calling the same destination is, when that
        is another instance: its call may wait there for this publish (taken over from an instance that
        died: whip.py); 503 while that instance is dead and its call not taken over yet; else here."""
        try:
            principal = await authenticate(request, request.app[HTTP_API_KEY])
        except SignalingError:
            return await handler(request)  # it answers the refusal (401)
        destination = request.match_info.get("destination") or principal.default_dial
        key = whip_key(principal.user.id, destination) if destination else None
        if key is None or key in self.local_whips():
            return await handler(request)
        try:
            owner = await owners.owner(key)
            peer = await self.instance(owner) if owner is not None and owner != self.instance_id else None
        except SignalingError:  # Redis unreachable: a publish works here as before
            return await handler(request)
        if peer is None or peer.draining:  # (a draining instance takes no new call: here)
            if peer is None and owner is not None and owner != self.instance_id:
                return _owner_gone(owner, None)  # its call may wait for this publish at a survivor soon
            return await handler(request)
        # with the API key it was published with (the owner serves it as that key's: its caps, its default
        # destination), under the forward's signature (base64url: nothing for a client to requote)
        path_qs = request.path_qs
        if principal.key_id:
            encoded = base64.urlsafe_b64encode(principal.key_id.encode()).decode().rstrip("=")
            path_qs += f"{'&' if request.query_string else '?'}{KEY_PARAM}={encoded}"
        return await self._forward(request, owner or "", peer.http, path_qs)

    async def _watch(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """A WHEP viewer goes where what it watches is: the user's HTTP API or WHIP session of that id
        (its call's far end) on another instance, or the room of that id living on another instance (a
        viewer whose instance died asks again, wherever its session's call or its room went); else here."""
        try:
            user = (await authenticate(request, request.app[HTTP_API_KEY])).user.id
        except SignalingError:
            return await handler(request)  # it answers the refusal (401)
        target = request.match_info["room_id"][:128]
        key = session_key(user, target)
        if key in self.local_sessions():
            return await handler(request)
        try:
            owner = await self.owners.owner(key)
        except SignalingError as exc:
            return error_response(exc)
        if owner is not None and owner != self.instance_id:
            return await self._to_owner(request, handler, self.owners, key, None)
        base = await self.room_instance(target) if self.room_instance is not None else None
        if base is None:
            return await handler(request)
        return await self._forward(request, f"room {target}", base)

    async def _to_owner(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        owners: Owners,
        key: str,
        session_id: str | None,
    ) -> web.StreamResponse:
        """The request served by the instance `owners` names for `key`: forwarded to it when it is another
        live one, 503 when it is dead (a survivor may be taking its call over), here when there is none."""
        try:
            owner = await owners.owner(key)
            peer = await self.instance(owner) if owner is not None and owner != self.instance_id else None
        except SignalingError as exc:  # Redis unreachable: say so rather than a misleading 404
            return error_response(exc, session_id)
        if peer is None and owner is not None and owner != self.instance_id:
            logger.info("%s %s: session %s of dead instance %s", request.method, request.path, key, owner)
            return _owner_gone(owner, session_id)
        if peer is None:
            return await handler(request)  # nobody else has it: the local answer (404)
        return await self._forward(request, owner or "", peer.http)

    async def _session_named(self, request: web.Request) -> str | None:
        named = request.match_info.get("session_id")
        if named is not None:
            return named[:128]
        if request.method != "POST" or (request.path not in _BODY_SESSION_PATHS and request.path != _OFFER):
            return None
        if request.content_type != "application/json":
            return None
        try:
            raw = await request.read()
            if request.path == _OFFER and b"transfer_of" not in raw and b"session_id" not in raw:
                return None  # most offers: a new session, parsed by their handler
            body = json.loads(raw)
        except (ValueError, web.HTTPException, ConnectionError):
            return None  # the handler answers (400, 413) when it reads the body itself
        if not isinstance(body, dict):
            return None
        # an offer carrying out a REFER goes where that session is; one naming a session of its own (its
        # ICE restart, or its new media after a lost network or a takeover: issue 34) where that one is
        value = (
            body.get("transfer_of") or body.get("session_id")
            if request.path == _OFFER
            else body.get("session_id")
        )
        return value[:128] if isinstance(value, str) else None

    async def _forward(
        self, request: web.Request, owner: str, base: str, path_qs: str | None = None
    ) -> web.StreamResponse:
        client = self._session()
        try:  # here, so that no credential of the user's travels on (and a 401 is answered here)
            principal = await authenticate(request, request.app[HTTP_API_KEY])
        except SignalingError as exc:
            return error_response(exc, request.match_info.get("session_id"))
        user = principal.user.id
        body = await request.read() if request.body_exists else b""
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP | _SECRETS}
        headers[USER] = user
        path_qs = path_qs or request.path_qs
        headers[FORWARDED] = sign(
            self.secret, self.instance_id, request.method, path_qs, self.clock(), user, body
        )
        headers["X-Forwarded-For"] = request.headers.get("X-Forwarded-For", request.remote or "")
        self.forwarded += 1
        logger.info("%s %s: session owned by %s, forwarded to %s", request.method, request.path, owner, base)
        try:
            upstream = await client.request(
                request.method,
                base + path_qs,
                headers=headers,
                data=body or None,
                allow_redirects=False,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            logger.warning("forwarding to %s (%s) failed: %s", owner, base, exc)
            return _owner_gone(owner, request.match_info.get("session_id"))
        async with upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for name, value in upstream.headers.items():
                if name.lower() not in _HOP_BY_HOP and name.lower() != "server":
                    response.headers.add(name, value)
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
            except (aiohttp.ClientError, ConnectionResetError) as exc:
                logger.info("forwarded response from %s ended: %s", owner, exc)
                return response
            await response.write_eof()
        return response


def _key_id(encoded: str) -> str:
    """A forwarded publish's API key id (base64url, unpadded); "" when it cannot be read."""
    try:
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return ""


def _publishes(request: web.Request) -> bool:
    """A WHIP publish: `POST /whip` or `POST /whip/{destination}`."""
    return request.method == "POST" and (
        request.path == "/whip" or (request.path.startswith("/whip/") and "destination" in request.match_info)
    )


def _watches(request: web.Request) -> bool:
    """A WHEP viewer's offer: `POST /whep/{room_id}` (a room's id, or one of the user's sessions')."""
    return request.method == "POST" and request.path.startswith("/whep/") and "room_id" in request.match_info


def _owner_gone(owner: str, session_id: str | None) -> web.Response:
    """503 with Retry-After for a request whose session's owner is dead or unreachable: a survivor may be
    taking its call over (runtime/continuity/takeover.py; the owner record outlives the owner until then),
    after which the request is forwarded there."""
    error = SignalingError(
        f"the instance holding this session ({owner}) is gone; its call may be going on elsewhere: "
        "try again in a second",
        code="unavailable",
        http_status=503,
    )
    response = error_response(error, session_id)
    response.headers["Retry-After"] = "1"
    return response
