"""What an HTTP(S)/WSS listener lets a peer hold before it has sent a request (issue 32, items 3 and 4).

asyncio's `create_server(ssl=...)` hands a connection to aiohttp only once its TLS handshake has ended
(up to 60 s later), and aiohttp has no deadline for a request's header: both let one host park
thousands of sockets at no cost, until the process runs out of file descriptors and a call fails.
A :class:`ConnectionGate` sits in front of aiohttp's request handler, on plain TCP:

- at accept, before any byte is read: at most ``max_connections`` in all and ``max_connections_per_ip``
  from one address, and one descriptor of the process's :class:`~gateway.fd_reserve.FdReserve`;
  others are closed at once (logged at WARNING, rate-limited, with the address);
- of an address's connections, at most ``max_waiting_per_ip`` may be waiting (no whole first request
  header yet: in their handshake or header), its share of the listener; and when the listener is full,
  the oldest waiting connection that has waited a second makes room for the newcomer, as a stale
  handshake does below (issue 67: 4,096 half-open requests from 33 addresses kept /healthz out);
- TLS (HTTPS, WSS) starts then, and must end within ``handshake_timeout`` seconds; at most
  ``max_handshakes_per_ip`` run at once from one address and ``max_handshakes`` in all (asyncio and
  OpenSSL hold ~400 KB for each: a flood of handshakes is a flood of memory, and a real client's
  takes milliseconds); when all are taken, one that has run for a second makes room for the newcomer
  (the oldest first), so that enough addresses, each under its own cap, cannot keep everyone out;
- the first request's header must be complete (its blank line, RFC 9112 §2.1) within
  ``header_timeout`` seconds of that; later requests on the connection have aiohttp's keep-alive
  timeout (``keepalive_timeout``), and a body must be complete within ``body_timeout`` seconds of its
  header (:func:`body_deadline`, a middleware).

Each connection: ADMITTING -> (HANDSHAKE ->) HEADER -> OPEN -> CLOSED.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import logging
import ssl
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.fd_reserve import FdReserve
from gateway.logs import RateLimit

logger = logging.getLogger(__name__)

_END_OF_HEADER = b"\r\n\r\n"
EVICT_AFTER = 1.0  # seconds: a handshake this old yields its slot to a new connection when all are taken

GuardState = enum.Enum("GuardState", "ADMITTING HANDSHAKE HEADER OPEN CLOSED")


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """The caps and deadlines of one listener (gateway.yaml `connections`; docs/signaling.md, *Limits*)."""

    max_connections: int = 4096
    max_connections_per_ip: int = 128
    max_waiting_per_ip: int = 32  # of those, without a whole first request header yet
    max_handshakes_per_ip: int = 16
    max_handshakes: int = 512
    proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()  # no per-address caps for them
    handshake_timeout: float = 5.0
    header_timeout: float = 10.0
    keepalive_timeout: float = 30.0
    body_timeout: float = 30.0

    def __post_init__(self) -> None:
        for name in (
            "max_connections",
            "max_connections_per_ip",
            "max_waiting_per_ip",
            "max_handshakes_per_ip",
            "max_handshakes",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)!r}")
        for name in ("handshake_timeout", "header_timeout", "keepalive_timeout", "body_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")


REFUSAL_REASONS = (
    "handshakes_per_address",
    "handshakes",
    "waiting_per_address",
    "connections",
    "fd_reserve",
    "too_slow",
)


class ConnectionGate:
    """The counts of one listener and the factory of its guarded protocols."""

    def __init__(self, name: str, limits: HttpLimits, fd_reserve: FdReserve | None = None) -> None:
        self.name = name
        self.limits = limits
        self.fd_reserve = fd_reserve
        self._per_ip: dict[str, int] = {}
        self._handshaking: dict[str, int] = {}  # of those, in their TLS handshake
        self._handshakes = 0  # all of those
        self._pending: dict[_Guard, float] = {}  # the connections in their handshake, oldest first: since
        self._waiting: dict[_Guard, float] = {}  # all before their first header, oldest first: since
        self._waiting_per_ip: dict[str, int] = {}
        self._guards: set[_Guard] = set()
        self._refusals = RateLimit()
        self._timeouts = RateLimit()
        # connections refused or closed before a request, by reason (gateway_connections_refused)
        self.refused: Counter[str] = Counter(dict.fromkeys(REFUSAL_REASONS, 0))

    @property
    def open(self) -> int:
        """Connections held now (in a handshake, before their header, or open)."""
        return len(self._guards)

    def from_address(self, host: str) -> int:
        return self._per_ip.get(host, 0)

    def factory(
        self, inner: Callable[[], asyncio.Protocol], ssl_context: ssl.SSLContext | None
    ) -> Callable[[], asyncio.Protocol]:
        """The protocol factory for `create_server`: each connection guarded, then handed to `inner`."""
        return lambda: _Guard(self, inner, ssl_context)

    def close_all(self) -> None:
        """The listener stops: connections still in their handshake or header go (aiohttp closes its own)."""
        for guard in list(self._guards):
            if guard.state in (GuardState.ADMITTING, GuardState.HANDSHAKE, GuardState.HEADER):
                guard.abort()

    def _admit(self, guard: _Guard, host: str, *, tls: bool) -> bool:
        limits = self.limits
        proxy = self._is_proxy(host)
        if tls and not proxy and self._handshaking.get(host, 0) >= limits.max_handshakes_per_ip:
            self._refuse(
                host, f"{self._handshaking[host]} TLS handshakes from that address", "handshakes_per_address"
            )
            return False
        full = tls and self._handshakes >= limits.max_handshakes
        if full and not self._evict_oldest(
            self._pending, limits.handshake_timeout, "TLS handshake unfinished"
        ):
            self._refuse(host, f"{self._handshakes} TLS handshakes under way", "handshakes")
            return False
        if not proxy and self._per_ip.get(host, 0) >= limits.max_connections_per_ip:
            self._refuse(host, f"{self._per_ip[host]} open from that address", "connections")
            return False
        if not proxy and self._waiting_per_ip.get(host, 0) >= limits.max_waiting_per_ip:
            waiting = self._waiting_per_ip[host]
            self._refuse(host, f"{waiting} from that address without a request yet", "waiting_per_address")
            return False
        full = len(self._guards) >= limits.max_connections
        if full and not self._evict_oldest(self._waiting, limits.header_timeout, "no request header"):
            self._refuse(host, f"{len(self._guards)} open", "connections")
            return False
        reserve = self.fd_reserve
        if reserve is not None and not reserve.take():
            self._refuse(
                host, f"file descriptors kept for media (signaling holds {reserve.in_use})", "fd_reserve"
            )
            return False
        self._guards.add(guard)
        self._per_ip[host] = self._per_ip.get(host, 0) + 1
        self._waiting[guard] = asyncio.get_running_loop().time()
        self._waiting_per_ip[host] = self._waiting_per_ip.get(host, 0) + 1
        if tls:
            self._handshaking[host] = self._handshaking.get(host, 0) + 1
            self._handshakes += 1
        return True

    def _is_proxy(self, host: str) -> bool:
        if not self.limits.proxies:
            return False
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        return any(address in network for network in self.limits.proxies)

    def _handshake_started(self, guard: _Guard) -> None:
        self._pending[guard] = asyncio.get_running_loop().time()

    def _evict_oldest(self, since_of: dict[_Guard, float], deadline: float, what: str) -> bool:
        """All slots are taken (TLS handshakes, or the listener's connections): the oldest of
        ``since_of`` (handshakes, or connections without a whole first request header) makes room for a
        new connection if it has waited EVICT_AFTER seconds, or half its ``deadline`` if shorter. A
        browser's handshake takes milliseconds and it sends its request at once: one that old is most
        likely a flood's, which from enough addresses, each under its own caps, could otherwise keep
        every newcomer out until its deadline."""
        oldest = next(iter(since_of.items()), None)
        if oldest is None:
            return False
        guard, since = oldest
        age = asyncio.get_running_loop().time() - since
        if age < min(EVICT_AFTER, deadline / 2):
            return False
        self._too_slow(guard.host, f"{what} after {age:.1f} s, closed for a newer connection")
        guard.evict()
        return True

    def _waiting_over(self, guard: _Guard, host: str) -> None:
        if self._waiting.pop(guard, None) is None:
            return
        left = self._waiting_per_ip.get(host, 0) - 1
        if left > 0:
            self._waiting_per_ip[host] = left
        else:
            self._waiting_per_ip.pop(host, None)

    def _handshake_over(self, guard: _Guard, host: str) -> None:
        self._pending.pop(guard, None)
        self._handshakes -= 1
        left = self._handshaking.get(host, 0) - 1
        if left > 0:
            self._handshaking[host] = left
        else:
            self._handshaking.pop(host, None)

    def _refuse(self, host: str, why: str, reason: str) -> None:
        self.refused[reason] += 1
        if self._refusals.allow(logger, logging.WARNING):
            logger.warning("%s: refusing a connection from %s (%s)", self.name, host, why)

    def _release(self, guard: _Guard, host: str) -> None:
        if guard not in self._guards:
            return
        self._guards.discard(guard)
        left = self._per_ip.get(host, 0) - 1
        if left > 0:
            self._per_ip[host] = left
        else:
            self._per_ip.pop(host, None)
        if self.fd_reserve is not None:
            self.fd_reserve.give()

    def _too_slow(self, host: str, what: str) -> None:
        self.refused["too_slow"] += 1
        if self._timeouts.allow(logger, logging.INFO):
            logger.info("%s: closing a connection from %s: %s", self.name, host, what)


class _Guard(asyncio.Protocol):
    """One connection: admitted, secured, its first header timed, then aiohttp's request handler's."""

    def __init__(
        self,
        gate: ConnectionGate,
        inner: Callable[[], asyncio.Protocol],
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        self._gate = gate
        self._make_inner = inner
        self._inner: asyncio.Protocol | None = None
        self._ssl = ssl_context
        self.state = GuardState.ADMITTING
        self._host = ""
        self._raw: asyncio.Transport | None = None
        self._transport: asyncio.Transport | None = None  # what aiohttp writes to (TLS or raw)
        self._early: list[bytes] = []  # decrypted before the handshake's end was handled
        self._tail = b""  # the last bytes seen, for a blank line split across reads
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._counted_handshake = False  # in the gate's handshakes of this address

    def _set_state(self, new: GuardState) -> None:
        logger.debug(
            "%s connection from %s: %s -> %s", self._gate.name, self._host, self.state.name, new.name
        )
        if self._counted_handshake and new is not GuardState.HANDSHAKE:
            self._counted_handshake = False
            self._gate._handshake_over(self, self._host)
        if new in (GuardState.OPEN, GuardState.CLOSED):  # its first request header is in, or it is gone
            self._gate._waiting_over(self, self._host)
        self.state = new

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        raw = cast(asyncio.Transport, transport)  # a server's stream transport
        peer = transport.get_extra_info("peername")
        self._host = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        if not self._gate._admit(self, self._host, tls=self._ssl is not None):
            self._set_state(GuardState.CLOSED)
            raw.abort()
            return
        self._raw = raw
        if self._ssl is None:
            self._start(raw)
            return
        raw.pause_reading()  # the ClientHello is start_tls's to read
        self._set_state(GuardState.HANDSHAKE)
        self._counted_handshake = True
        self._gate._handshake_started(self)
        self._task = asyncio.get_running_loop().create_task(self._secure(raw, self._ssl))

    async def _secure(self, raw: asyncio.Transport, context: ssl.SSLContext) -> None:
        timeout = self._gate.limits.handshake_timeout
        try:
            secured = await asyncio.get_running_loop().start_tls(
                raw, self, context, server_side=True, ssl_handshake_timeout=timeout
            )
        except (OSError, TimeoutError) as exc:  # ssl.SSLError; a deadline: ConnectionAbortedError
            self._gate._too_slow(self._host, f"TLS handshake: {exc or type(exc).__name__}")
            raw.abort()
            self._closed()  # asyncio tells no protocol of a connection lost in its handshake
            return
        if secured is None or self.state is not GuardState.HANDSHAKE:
            raw.abort()
            self._closed()
            return
        self._start(secured)

    def _start(self, transport: asyncio.Transport) -> None:
        """Hand the connection to aiohttp, with the deadline of its first header."""
        self._transport = transport
        self._set_state(GuardState.HEADER)
        self._timer = asyncio.get_running_loop().call_later(self._gate.limits.header_timeout, self._no_header)
        self._inner = self._make_inner()
        self._inner.connection_made(transport)
        early, self._early = self._early, []
        for data in early:
            self.data_received(data)

    def _no_header(self) -> None:
        self._timer = None
        if self.state is GuardState.HEADER:
            self._gate._too_slow(
                self._host, f"no request header within {self._gate.limits.header_timeout:g} s"
            )
            self.abort()

    @property
    def host(self) -> str:
        return self._host

    def evict(self) -> None:
        """Give up a connection still in its handshake or header, its counts freed now (a newer one takes
        its slot)."""
        transport = self._transport or self._raw
        self._closed()
        if transport is not None:
            transport.abort()  # in its handshake: _secure's start_tls fails and finds the guard closed

    def abort(self) -> None:
        """Close at once: no TLS close_notify to wait for, the descriptor is free now."""
        transport = self._transport or self._raw
        if transport is not None:
            transport.abort()
        else:
            self._closed()

    def data_received(self, data: bytes) -> None:
        inner = self._inner
        if inner is None:
            if self.state is GuardState.HANDSHAKE:
                self._early.append(data)
            return
        if self.state is GuardState.HEADER:
            seen = self._tail + data
            if _END_OF_HEADER in seen:
                self._set_state(GuardState.OPEN)
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
            else:
                self._tail = seen[-3:]
        inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._inner is None:
            return None  # close
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed()
        inner, self._inner = self._inner, None
        if inner is not None:
            inner.connection_lost(exc)

    def _closed(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.state is not GuardState.CLOSED:
            self._set_state(GuardState.CLOSED)
        self._gate._release(self, self._host)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def body_deadline(timeout: float) -> Middleware:
    """A middleware: a request whose body is not all in ``timeout`` seconds after its header loses its
    connection (the handler's read fails as when the client goes away). Requests without a body (GET,
    WebSocket upgrades) are not timed."""
    refusals = RateLimit()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.body_exists or request.content.is_eof():
            return await handler(request)

        def too_slow() -> None:
            if request.content.is_eof():
                return
            if refusals.allow(logger, logging.INFO):
                logger.info(
                    "closing a connection from %s: request body incomplete after %g s",
                    request.remote,
                    timeout,
                )
            transport = request.transport
            if transport is not None:
                transport.abort()

        timer = asyncio.get_running_loop().call_later(timeout, too_slow)
        try:
            return await handler(request)
        finally:
            timer.cancel()

    return middleware
