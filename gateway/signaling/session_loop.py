"""The one session loop every WebSocket dialect runs on: `/ws`, `/jsonrpc`, the rooms and SIP over WebSocket.

A dialect supplies only its message handling (a `Dialect`: `on_open`, `on_message`, `on_refused`,
`on_close`, whether it is logged in, whether it is idle); everything that bounds a socket lives here
once, so that a limit or a fix applies to all four paths (docs/signaling.md, *Limits*, has the table):

- the upgrade: a foreign Origin gets 403; while the gateway drains, 503 (HAProxy retries elsewhere);
  past the per-address or the global cap of sockets awaiting login (SIP over WebSocket: of flows,
  then of flows not yet authenticated), 429 with Retry-After -- one status for a flood, whichever cap;
- the absolute login deadline (`receive_by`): no successful login within `login_timeout` (SIP over
  WebSocket: no digest passed within `sip.websocket.auth_timeout`, `SessionRules.login_timeout`), the
  dialect says so (`on_refused(LoginTimeout)`) and the socket is closed 4008; answering the
  heartbeat's pings does not extend it (commit 1323573: aiohttp's own receive timeout restarted at
  each pong);
- the heartbeat (WebSocket ping/pong, RFC 6455 §5.5.2) and the message size: above `max_message_bytes`
  the dialect answers `too_large` (SIP over WebSocket, which has no such answer: closed 1009); above
  4x it aiohttp closes with 1009 without reading it;
- the rate limit: a token bucket per socket, charged per message (or, JSON-RPC, per call: `take`);
  a refused message gets the dialect's `rate_limited`, and `max_rate_limited` of them in a row close
  the socket (1008);
- failed logins: the dialect reports each (`login_failed`); `max_failed_logins` close it (4001);
- one writer at a time (`send_text`), with `send_timeout` for a peer that stopped reading;
- the registry of open sockets (`SocketRegistry`): shutdown closes them (1001); a drain closes those
  without a call in progress (1012) and refuses new upgrades (503).

Messages are read one at a time, in order, and handled in order unless the dialect hands a request to
`SessionSocket.run` (/ws and /jsonrpc do, issue 32 item 7): then it runs beside the others in flight,
at most `max_requests_in_flight` of them at once (the next `max_requests_queued` wait their turn;
beyond, the dialect answers `too_many()`; urgent ones, a hang-up, never wait), requests of one
lane (a call's id) one after the other, and the reader goes on to the next message at once; requests
still in flight when the socket ends are cancelled before the dialect's `on_close`. The loop's close
codes: 1000 normal, 1001 shutting down, 1008 flood, 1009 far too large, 1012 service restart, 4001
failed logins, 4008 login timeout; a dialect may ask for its own (`close_with`: a refused room join is
4009).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from aiohttp import WSMsgType, web
from aiohttp.http_websocket import WSMessage

from gateway.logs import RateLimit
from gateway.signaling.errors import LoginTimeout, RateLimited, SignalingError, TooLarge
from gateway.signaling.limits import SignalingLimits, TokenBucket
from gateway.signaling.origin import OriginPolicy

logger = logging.getLogger(__name__)

ON_THE_WAY: Final = (
    1012,
    1013,
)  # close codes of a server on the way going (Service Restart, Try Again Later)

HARD_SIZE_FACTOR: Final = 4  # messages above 4x the limit are not even read: aiohttp closes with 1009
CLOSE_NORMAL: Final = 1000
CLOSE_GOING_AWAY: Final = 1001
CLOSE_POLICY: Final = 1008  # RFC 6455 §7.4.1 policy violation: the rate limit, again and again
CLOSE_TOO_LARGE: Final = 1009
CLOSE_SERVICE_RESTART: Final = 1012  # the gateway drains: reconnect at once (to another instance)
CLOSE_AUTH_FAILED: Final = 4001
CLOSE_LOGIN_TIMEOUT: Final = 4008
DRAIN_CLOSE_MESSAGE: Final = b"gateway draining: reconnect"
FLOOD_STATUS: Final = 429  # every cap of every path: a flood is "too many requests", never 503
# s a drain keeps a socket another instance relayed here without a call (it comes for calls held here: a
# page's login holds none until its `reattach` makes its new web leg)
RELAYED_KEEP: Final = 10.0

Busy = Callable[[Any], bool]  # does the call core hold a call of this key (a session id, a SIP flow)
IdleCheck = Callable[[Busy], bool]  # has this socket no call in progress (a drain may close it)


class SocketRegistry:
    """The open WebSockets of one listener's dialects, so that shutdown and a drain can close them, and
    the count of the sockets the caps bound (awaiting login; for SIP over WebSocket, every flow)."""

    def __init__(self, what: str = "WebSockets") -> None:
        self.what = what  # in the drain's log line
        self._sockets: set[web.WebSocketResponse] = set()
        self.awaiting_login = 0  # sockets the caps count (open without a successful login yet)
        self.awaiting_by_ip: dict[str, int] = {}  # the same, per client address
        self.flows = 0  # SIP flows open, logged in or not (their own caps)
        self.flows_by_ip: dict[str, int] = {}
        self.refusals = RateLimit()  # WARNING lines about refused sockets: a flood must not flood the log
        self._idle: dict[web.WebSocketResponse, IdleCheck] = {}  # how to tell each socket has no call
        self.draining = False  # no new socket (503): the instance is being restarted
        self.closed_draining = 0  # sockets closed with 1012
        # a cluster (gateway/cluster/wiring.py): the marks of sockets relayed between its instances
        self.relay_marks: RelayMarks | None = None

    def await_login(self, ip: str, delta: int) -> None:
        self.awaiting_login += delta
        _count(self.awaiting_by_ip, ip, delta)

    def count_flow(self, ip: str, delta: int) -> None:
        self.flows += delta
        _count(self.flows_by_ip, ip, delta)

    def add(self, ws: web.WebSocketResponse) -> None:
        self._sockets.add(ws)

    def track(self, ws: web.WebSocketResponse, idle: IdleCheck) -> None:
        """Add a socket that a drain closes once `idle` says it has no call in progress."""
        self._sockets.add(ws)
        self._idle[ws] = idle

    def discard(self, ws: web.WebSocketResponse) -> None:
        self._sockets.discard(ws)
        self._idle.pop(ws, None)

    def __len__(self) -> int:
        return len(self._sockets)

    async def close_idle(self, busy: Busy) -> tuple[int, int]:
        """Drain: close (1012) every tracked socket without a call in progress (its `IdleCheck` asked with
        `busy`; one not logged in has none); refuse new sockets from now on. How many were closed, and
        how many were kept (in a call: a room with company, a relayed JSON-RPC call, the call core's)."""
        self.draining = True
        open_ = [ws for ws in self._idle if not ws.closed]
        idle = [ws for ws in open_ if self._idle[ws](busy)]
        for ws in idle:
            self._idle.pop(ws, None)
        await asyncio.gather(
            *(ws.close(code=CLOSE_SERVICE_RESTART, message=DRAIN_CLOSE_MESSAGE) for ws in idle),
            return_exceptions=True,
        )
        if idle:
            logger.info("draining: %d %s without a call closed (1012)", len(idle), self.what)
        self.closed_draining += len(idle)
        return len(idle), len(open_) - len(idle)

    async def close_all(self) -> None:
        for ws in list(self._sockets):
            try:
                await ws.close(code=CLOSE_GOING_AWAY, message=b"gateway shutting down")
            except Exception:  # a socket that died under us: the others still get their close
                logger.debug("closing a WebSocket failed", exc_info=True)


def _count(by_ip: dict[str, int], ip: str, delta: int) -> None:
    count = by_ip.get(ip, 0) + delta
    if count > 0:
        by_ip[ip] = count
    else:
        by_ip.pop(ip, None)


SOCKETS_KEY: Final = web.AppKey("signaling_sockets", SocketRegistry)  # /ws, /jsonrpc and rooms sockets
ORIGINS_KEY: Final = web.AppKey("allowed_origins", OriginPolicy)  # the gateway's own and allowed ones


@dataclass(frozen=True, slots=True)
class SessionRules:
    """What sets one dialect's sockets apart in the loop (everything else is the shared limits)."""

    what: str  # in logs: "JSON", "JSON-RPC", "room", "SIP"
    login: bool = True  # a login message is awaited: the deadline and the awaiting-login caps apply
    per_message_rate: bool = True  # False: the dialect charges its own units with `take` (JSON-RPC calls)
    rate: float | None = None  # the dialect's own message rate and burst (rooms.rate, rooms.burst)
    burst: int | None = None
    answers_too_large: bool = True  # False: a message above the limit closes the socket (1009)
    protocols: tuple[str, ...] = ()  # the WebSocket subprotocols the upgrade accepts
    login_timeout: float | None = None  # the dialect's own login deadline (SIP: sip.websocket.auth_timeout)
    flows: bool = False  # SIP flows: counted for their whole life too (max_sip_flows, max_sip_flows_per_ip)


class Dialect(Protocol):
    """One socket's message handling in one dialect: all the loop asks of it."""

    @property
    def logged_in(self) -> bool:
        """Whether the login deadline is over for this socket (logged in, or no login needed)."""
        ...

    def idle(self, busy: Busy) -> bool:
        """No call in progress: a drain may close the socket (1012)."""
        ...

    async def on_open(self) -> None: ...

    async def on_message(self, data: str | bytes) -> None: ...

    async def on_refused(self, error: SignalingError, message: str | bytes | None = None) -> None:
        """A message not handled (`rate_limited`, `too_large`: ``message``, for the request id a reply
        echoes) or the login deadline passed (`login_timeout`, then close 4008): tell the peer in the
        dialect's words, or not at all."""
        ...

    async def on_close(self) -> None:
        """The socket ended, however (called once, never raises)."""
        ...


class SessionSocket:
    """One socket as a dialect sees it: the writer, and the limits a dialect reports to."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        request: web.Request,
        limits: SignalingLimits,
        rules: SessionRules,
        monotonic: Callable[[], float],
    ) -> None:
        self._ws = ws
        self._request = request
        self._limits = limits
        self._rules = rules
        self.remote = request.remote or ""
        self.close_code: int | None = None  # set when the loop must close the socket
        self._lock = asyncio.Lock()
        self._stuck = False
        rate = rules.rate if rules.rate is not None else limits.rate
        burst = rules.burst if rules.burst is not None else limits.burst
        self._bucket = TokenBucket(rate, burst, monotonic)
        self._rate = rate
        self._refused_in_a_row = 0
        self._failed_logins = 0
        self._in_flight: set[asyncio.Task[None]] = set()  # requests handed to `run`, not finished
        self._urgent = 0  # of those, urgent ones (they take no place)
        self._places = asyncio.Semaphore(limits.max_requests_in_flight)  # requests running at once
        self._lanes: dict[str, asyncio.Task[None]] = {}  # each lane's latest request
        self.is_authenticated = False  # SIP: a digest succeeded on this flow (`authenticated`)
        self.uncount: Callable[[], None] = lambda: None  # the loop's: leave the awaiting-login caps
        # a cluster: another instance relayed this socket here (a signed mark, RelayMarks): served
        # here, never relayed again
        self.relayed = False
        # a cluster: the signed mark this instance puts on a relay of this socket to ``path`` elsewhere
        self.relay_stamp: Callable[[str, str], Mapping[str, str]] | None = None  # (path, target URL)
        # the peer closed with a close frame of its own (RFC 6455 §5.5.1), other than 1012 / 1013: those say a
        # server on the way restarts (a drained instance's relay), not that the client left
        self.said_goodbye = False

    def authenticated(self) -> None:
        """A SIP digest succeeded on this flow (the transport says so): the authentication deadline is
        over for it, and it leaves the caps of flows awaiting authentication at once."""
        self.is_authenticated = True
        self.uncount()

    @property
    def closed(self) -> bool:
        return self._ws.closed or self._stuck

    @property
    def lost(self) -> bool:
        """Gone without a close frame of the peer's and without the loop closing it: a network that went
        away, a heartbeat unanswered, a process on the way that died (the peer may come back)."""
        return self.close_code is None and not self.said_goodbye

    @property
    def headers(self) -> Mapping[str, str]:
        """The upgrade request's headers (a relay passes Origin and X-Forwarded-For on: ws/relay.py)."""
        return self._request.headers

    async def send_text(self, text: str) -> bool:
        """Write one message, one writer at a time; whether it was. A peer that stops reading fills the
        socket buffers, and then every send would wait for it (the call layer's too): after `send_timeout`
        the socket is dropped and later sends return at once. Raises ConnectionError when the transport
        failed under it."""
        async with self._lock:
            if self._ws.closed or self._stuck:
                return False
            try:
                async with asyncio.timeout(self._limits.send_timeout):
                    await self._ws.send_str(text)
                return True
            except TimeoutError:
                self._stuck = True
                logger.info(
                    "%s WebSocket from %s not reading for %g s: dropping it",
                    self._rules.what, self.remote, self._limits.send_timeout,
                )  # fmt: skip
                if self._request.transport is not None:
                    self._request.transport.abort()  # a close frame could not be written either
                return False

    async def close(self, code: int, message: bytes = b"") -> None:
        """Close the socket now (a drain of SIP flows, a send that timed out)."""
        await self._ws.close(code=code, message=message)

    def close_with(self, code: int) -> None:
        """Ask the loop to close the socket with `code` once the message in hand is handled."""
        if self.close_code is None:
            self.close_code = code

    def take(self) -> bool:
        """One token of the rate limit; a refusal counts, and `max_rate_limited` in a row close (1008)."""
        if self._bucket.take():
            self._refused_in_a_row = 0
            return True
        self._refused_in_a_row += 1
        if self._refused_in_a_row >= self._limits.max_rate_limited:
            self.close_with(CLOSE_POLICY)
        return False

    def rate_limited(self) -> RateLimited:
        return RateLimited(f"more than {self._rate:g} messages per second: slow down")

    def run(self, work: Callable[[], Awaitable[None]], lane: str | None = None, urgent: bool = False) -> bool:
        """Handle one request beside the others in flight, the reader going on to the next message at
        once; whether it was taken. At most `max_requests_in_flight` run at once; the next ones wait
        their turn in order, up to `max_requests_queued` (beyond: False, the dialect answers `too_many()`).
        Requests of one `lane` run one after the other, in the order given; without a lane, as soon as
        a place is free. `urgent` ones (a hang-up, a ping) never wait for a place: they run at once,
        up to twice the limit beside the others."""
        limits = self._limits
        if urgent:
            if self._urgent >= limits.max_requests_in_flight * 2:
                return False
        elif (
            len(self._in_flight) - self._urgent >= limits.max_requests_in_flight + limits.max_requests_queued
        ):
            return False
        previous = self._lanes.get(lane) if lane is not None else None
        task = asyncio.get_running_loop().create_task(self._run(work, previous, urgent))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        if urgent:
            self._urgent += 1
            task.add_done_callback(self._urgent_done)
        if lane is not None:
            self._lanes[lane] = task
            task.add_done_callback(lambda done: self._lane_done(lane, done))
        return True

    def _urgent_done(self, _: asyncio.Task[None]) -> None:
        self._urgent -= 1

    def _lane_done(self, lane: str, task: asyncio.Task[None]) -> None:
        if self._lanes.get(lane) is task:
            del self._lanes[lane]

    async def _run(
        self, work: Callable[[], Awaitable[None]], previous: asyncio.Task[None] | None, urgent: bool
    ) -> None:
        if previous is not None:
            await asyncio.wait((previous,))  # however it ended
        try:
            if urgent:
                await work()
            else:
                async with self._places:  # (after its lane's turn: a waiting request holds no place)
                    await work()
        except Exception:  # the dialect answers its own errors: this is a bug, the socket goes on
            logger.exception("%s WebSocket from %s: a request failed", self._rules.what, self.remote)

    def too_many(self) -> RateLimited:
        limits = self._limits
        return RateLimited(
            f"{limits.max_requests_in_flight} requests of this session are in progress and "
            f"{limits.max_requests_queued} more wait: wait for a reply",
            code="too_many_requests",
        )

    async def settle(self) -> None:
        """The socket ended: the requests still in flight are cancelled (the dialect's `on_close` then
        ends their calls), so none completes for a session that is gone."""
        tasks = list(self._in_flight)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def login_failed(self) -> None:
        """A wrong credential on this socket: `max_failed_logins` close it (4001)."""
        self._failed_logins += 1
        if self._failed_logins >= self._limits.max_failed_logins:
            self.close_with(CLOSE_AUTH_FAILED)


async def receive_by(ws: web.WebSocketResponse, deadline: float | None) -> WSMessage:
    """``ws.receive()``, raising ``TimeoutError`` once the loop's clock reaches ``deadline`` (None: no
    limit). Not ``ws.receive(timeout=...)``: aiohttp restarts that timer after each control frame it
    handles, and a client answering the heartbeat's pings (every ``heartbeat`` seconds, less than the
    login timeout) would hold a socket awaiting login for ever."""
    if deadline is None:
        return await ws.receive()
    async with asyncio.timeout_at(deadline):
        return await ws.receive()


def origin_refusal(request: web.Request, allowed: OriginPolicy) -> web.Response | None:
    """403 for a WebSocket upgrade from another page's origin (a cross-site page must not drive a user's
    session), None when the origin is one of ours, allowed, or absent (a script). Never compared with
    the request's Host header (a DNS-rebinding page sets it): gateway/signaling/origin.py."""
    origin = request.headers.get("Origin")
    if allowed.allows(origin):
        return None
    logger.warning(
        "refusing a WebSocket to %s from %s: foreign Origin %r", request.path, request.remote, origin
    )
    return web.Response(
        status=403, text=f"Origin {origin!r} is not allowed (http.public_origins, http.allowed_origins)"
    )


class RelayMarks(Protocol):
    """How the instances of a cluster mark the WebSocket upgrades they relay to each other
    (gateway/signaling/cluster_http.py ``RelayMark``)."""

    def stamp(self, path: str, target: str = "") -> Mapping[str, str]:
        """The headers of a relay's upgrade to ``path`` at the instance advertised as ``target``."""
        ...

    def relayed(self, request: web.Request) -> bool:
        """Whether ``request`` is an upgrade another instance relayed (its mark valid)."""
        ...


def draining_refusal() -> web.Response:
    """503 for a WebSocket upgrade while the gateway drains: HAProxy retries it on another instance
    (deploy/haproxy.cfg: retry-on 503, redispatch)."""
    return web.Response(status=503, text="gateway draining", headers={"Retry-After": "1"})


def upgrade_refusal(
    sockets: SocketRegistry,
    limits: SignalingLimits,
    rules: SessionRules,
    ip: str,
    counted: bool,
    relayed: bool = False,
) -> web.Response | None:
    """503 while draining; 429 past a cap (per address first: one host's flood, then in all) for a
    socket the caps count (`counted`: it awaits a login; SIP flows: all, then those not authenticated);
    else None. A socket another instance `relayed` here is refused neither: it comes for the calls this
    instance holds (a draining one too, until it has handed them over), and the instance it reached
    counted it against its own caps."""
    if relayed:
        return None
    if sockets.draining:
        return draining_refusal()
    if not counted:
        return None
    what = "flows" if rules.flows else "sockets"
    caps = [(sockets.awaiting_by_ip.get(ip, 0), limits.max_awaiting_login_per_ip, f"of its {what} await login"),
            (sockets.awaiting_login, limits.max_awaiting_login, f"{what} await login")]  # fmt: skip
    if rules.flows:
        caps[:0] = [(sockets.flows_by_ip.get(ip, 0), limits.max_sip_flows_per_ip, "of its flows open"),
                    (sockets.flows, limits.max_sip_flows, "flows open")]  # fmt: skip
    reason = next((f"{cap} {text}" for count, cap, text in caps if count >= cap), None)
    if reason is None:
        return None
    if sockets.refusals.allow(logger, logging.WARNING):
        logger.warning("refusing a %s WebSocket from %s: %s", rules.what, ip, reason)
    text = "too many SIP WebSockets" if rules.flows else "too many connections awaiting login"
    return web.Response(status=FLOOD_STATUS, text=text, headers={"Retry-After": "5"})


def _size(data: str | bytes) -> int:
    return len(data.encode("utf-8", "surrogatepass")) if isinstance(data, str) else len(data)


async def serve(
    request: web.Request,
    *,
    rules: SessionRules,
    sockets: SocketRegistry,
    limits: SignalingLimits,
    open_dialect: Callable[[SessionSocket], Dialect],
    monotonic: Callable[[], float],
    counted: bool = True,
) -> web.StreamResponse:
    """The upgrade (after the caller's own checks: Origin, credentials), then the socket's whole life.
    `counted`: the caps count this socket (it awaits a login; a SIP flow always)."""
    ip = request.remote or ""
    marks = sockets.relay_marks
    relayed = marks is not None and marks.relayed(request)
    counted = counted and not relayed
    refusal = upgrade_refusal(sockets, limits, rules, ip, counted, relayed)
    if refusal is not None:
        return refusal
    factor = HARD_SIZE_FACTOR if rules.answers_too_large else 1
    ws = web.WebSocketResponse(
        protocols=rules.protocols, heartbeat=limits.heartbeat, max_msg_size=limits.max_message_bytes * factor
    )
    try:
        await ws.prepare(request)
    except (UnicodeError, ValueError) as exc:  # aiohttp choking on a malformed handshake header (fuzzed)
        logger.info("bad %s WebSocket handshake from %s: %s", rules.what, ip, type(exc).__name__)
        return web.Response(status=400, text="bad WebSocket handshake")
    socket = SessionSocket(ws, request, limits, rules, monotonic)
    socket.relayed = relayed
    socket.relay_stamp = marks.stamp if marks is not None else None
    dialect = open_dialect(socket)
    opened = monotonic()

    def idle(busy: Busy) -> bool:
        # relayed, it comes for calls held here: a drain gives it RELAYED_KEEP to take them back (a page's
        # login holds none until its `reattach`), and keeps it while it holds one
        return (not relayed or monotonic() - opened >= RELAYED_KEEP) and dialect.idle(busy)

    sockets.track(ws, idle)
    flow = rules.flows and not relayed  # (a relayed flow is the relaying instance's address, not a client's)
    if flow:
        sockets.count_flow(ip, 1)
    if counted:
        sockets.await_login(ip, 1)

    def uncount() -> None:
        nonlocal counted
        if counted:
            counted = False
            sockets.await_login(ip, -1)

    socket.uncount = uncount
    timeout = rules.login_timeout or limits.login_timeout
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        await dialect.on_open()
        await _read(ws, socket, dialect, rules, limits, deadline, timeout)
    finally:
        uncount()
        if flow:
            sockets.count_flow(ip, -1)
        try:
            await socket.settle()
        finally:
            await dialect.on_close()
            sockets.discard(ws)
            if not ws.closed:
                await ws.close(code=socket.close_code or CLOSE_NORMAL)
    return ws


async def _read(
    ws: web.WebSocketResponse,
    socket: SessionSocket,
    dialect: Dialect,
    rules: SessionRules,
    limits: SignalingLimits,
    deadline: float,
    timeout: float,
) -> None:
    """Each message handled in turn, until the loop is asked to close, the login deadline passes (for a
    dialect with a login, not yet logged in), the socket fails, or the peer goes (its close, or the
    heartbeat finding it dead)."""
    loop = asyncio.get_running_loop()
    while socket.close_code is None:
        waiting = rules.login and not dialect.logged_in
        if rules.login and not waiting:
            socket.uncount()
        if waiting and loop.time() >= deadline:
            await _login_timed_out(socket, dialect, timeout)
            return
        try:
            message = await receive_by(ws, deadline if waiting else None)
        except TimeoutError:
            if not dialect.logged_in:  # (SIP: a digest may have succeeded meanwhile)
                await _login_timed_out(socket, dialect, timeout)
                return
            continue
        if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
            await _handle(socket, dialect, rules, limits, message.data)
        elif message.type is WSMsgType.ERROR:
            logger.info("%s WebSocket from %s: socket error %s", rules.what, socket.remote, ws.exception())
            return
        else:  # CLOSE, CLOSING, CLOSED: the peer went away, or the heartbeat found it dead
            socket.said_goodbye = message.type is WSMsgType.CLOSE and ws.close_code not in ON_THE_WAY
            return


async def _handle(
    socket: SessionSocket, dialect: Dialect, rules: SessionRules, limits: SignalingLimits, data: str | bytes
) -> None:
    size = _size(data)
    within = size <= limits.max_message_bytes
    if rules.per_message_rate and not socket.take():
        # the refused request's id is echoed (a client waits on it), read only from a message of a size
        # the gateway would have read anyway
        await dialect.on_refused(socket.rate_limited(), data if within else None)
        return
    if not within:
        if not rules.answers_too_large:
            socket.close_with(CLOSE_TOO_LARGE)
            return
        await dialect.on_refused(
            TooLarge(f"message of {size} bytes is above the limit of {limits.max_message_bytes}")
        )
        return
    await dialect.on_message(data)


async def _login_timed_out(socket: SessionSocket, dialect: Dialect, timeout: float) -> None:
    await dialect.on_refused(LoginTimeout(f"no login within {timeout:g} seconds: closing"))
    socket.close_with(CLOSE_LOGIN_TIMEOUT)
