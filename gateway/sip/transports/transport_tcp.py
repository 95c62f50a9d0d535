"""The TCP and TLS transports (RFC 3261 §18 over streams; TLS: §26.2, RFC 5630, RFC 5922).

A :class:`TcpTransport` listens on one address and keeps a table of open connections keyed by
the remote (ip, port), whichever side opened them. A response goes back over the connection its
request came on (RFC 3261 §18.2.2: the source address of an inbound connection is its key); a
request to an address reuses an open connection to it, or opens one (§18.1.1), queueing what is
sent until the connection is up. Each connection has its own
:class:`~sipcore.syntax.framing.StreamFramer`: a double CRLF ping is answered with a CRLF pong
(RFC 5626 §3.5.1), a framing error (no Content-Length, garbage) closes that connection only,
and a connection idle for ``idle_timeout`` seconds is closed.

Against hostile peers (:class:`TcpLimits`): the table holds at most ``max_connections``
connections, and at most ``max_connections_per_ip`` inbound ones from one IP (more are closed as
soon as they are accepted); only whole messages and keep-alives count as activity, and a
message that has begun must be complete within ``message_timeout`` seconds, so that a trickle of
partial bytes (slowloris) cannot hold a connection open. A TLS listener accepts plain TCP and applies
those caps at once (and the process's :class:`~gateway.fd_reserve.FdReserve`), before the handshake,
which must then end within ``handshake_timeout`` seconds (issue 32: connections parked in their
handshake used to count against nothing).

Connection states: CONNECTING (outbound, not yet up; inbound TLS: in its handshake) -> OPEN -> CLOSED;
inbound TCP connections start OPEN.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from gateway.fd_reserve import FdReserve
from gateway.logs import RateLimit
from gateway.sip.transports.transport import (
    ErrorCallback,
    ReceiveCallback,
    Source,
    address_family,
    format_host,
    normalize_address,
    report_error,
)
from sipcore.errors import CertificateRejected, SIPError, TransportError, Unreachable
from sipcore.location.routing import Address
from sipcore.syntax.framing import KeepAlive, StreamFramer
from sipcore.syntax.parser import DEFAULT_LIMITS, Framing, ParserLimits

__all__ = ["ClosedCallback", "ConnectionState", "TcpLimits", "TcpTransport", "TlsTransport"]

logger = logging.getLogger(__name__)

ConnectionState = enum.Enum("ConnectionState", "CONNECTING OPEN CLOSED")
LINGER = 1.0  # seconds a connection whose stream broke stays open for the answers to what came before
ClosedCallback = Callable[["TcpTransport", Address, TransportError], None]  # with why it closed
_PONG = b"\r\n"


@dataclass(frozen=True, slots=True)
class TcpLimits:
    """Bounds on what TCP peers may hold (see the module note). Sources the policy does not trust get at
    most ``max_connections - reserved_trusted`` connections in all, ``max_untrusted_per_ip`` each, and
    lose an idle one after ``untrusted_idle_timeout`` seconds: they can never fill the table a trusted
    PBX needs (issue 10)."""

    max_connections: int = 1024
    max_connections_per_ip: int = 32
    message_timeout: float = 30.0
    reserved_trusted: int = 256
    max_untrusted_per_ip: int = 4
    untrusted_idle_timeout: float = 10.0
    handshake_timeout: float = 5.0  # seconds an inbound TLS handshake may take, from accept

    def __post_init__(self) -> None:
        for name in ("max_connections", "max_connections_per_ip", "max_untrusted_per_ip"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if not isinstance(self.reserved_trusted, int) or self.reserved_trusted < 0:
            raise ValueError(f"reserved_trusted must be an integer >= 0, not {self.reserved_trusted!r}")
        if (
            not self.message_timeout > 0
            or not self.untrusted_idle_timeout > 0
            or not self.handshake_timeout > 0
        ):
            raise ValueError("message_timeout, untrusted_idle_timeout and handshake_timeout must be positive")


DEFAULT_TCP_LIMITS = TcpLimits()


class _Connection(asyncio.Protocol):
    """One TCP connection: framing in, queued writes out, idle timer."""

    def __init__(self, owner: TcpTransport, remote: Address | None, *, outbound: bool) -> None:
        self._owner = owner
        self.remote: Address = remote or ("", 0)
        self.outbound = outbound
        self.state = ConnectionState.CONNECTING
        self._transport: asyncio.Transport | None = None
        self._framer = StreamFramer(owner.limits)
        self._pending: list[tuple[bytes, ErrorCallback | None]] = []
        self._loop = asyncio.get_running_loop()
        self._last_activity = self._loop.time()
        self._idle: asyncio.TimerHandle | None = None
        self._partial: asyncio.TimerHandle | None = None  # a begun message must end by then
        self._holds_fd = False  # counted in the owner's FdReserve
        self.untrusted = False  # inbound from a source the policy does not trust (set on admission)
        self._early: list[bytes] = []  # inbound TLS: data decrypted before the handshake's end is handled

    def __repr__(self) -> str:
        direction = "to" if self.outbound else "from"
        where = f"{format_host(self.remote[0])}:{self.remote[1]}"
        return f"<{self._owner.name} connection {direction} {where} {self.state.name}>"

    def _set_state(self, new: ConnectionState) -> None:
        logger.debug("%r: %s -> %s", self, self.state.name, new.name)
        self.state = new

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self.remote = normalize_address(transport.get_extra_info("peername"))
        handshake = not self.outbound and self._owner.server_ssl is not None
        if handshake:
            self._transport.pause_reading()  # not a byte of the ClientHello here: start_tls takes them
        else:
            self._set_state(ConnectionState.OPEN)
        if not self.outbound:
            if not self._owner._admit(self) or not self._owner._take_fd(self):
                self.close()
                return
            self._holds_fd = self._owner.fd_reserve is not None
            self._owner._register(self)
        self._touch()
        if handshake:  # RFC 5630 §3: the TLS handshake first, under its own deadline
            self._owner._handshake(self, self._transport)
            return
        pending, self._pending = self._pending, []
        for data, _ in pending:
            self._transport.write(data)

    @property
    def is_open(self) -> bool:
        return self.state is ConnectionState.OPEN

    def secured(self, transport: asyncio.Transport) -> None:
        """Inbound TLS: the handshake is done, ``transport`` carries the plain text from now on."""
        if self.state is not ConnectionState.CONNECTING:
            transport.close()
            return
        self._transport = transport
        self._set_state(ConnectionState.OPEN)
        self._touch()
        pending, self._pending = self._pending, []
        for data, _ in pending:
            transport.write(data)
        early, self._early = self._early, []
        for data in early:
            if self.is_open:
                self.data_received(data)

    def data_received(self, data: bytes) -> None:
        if self.state is ConnectionState.CONNECTING:  # decrypted before start_tls returned: keep it
            self._early.append(data)
            return
        try:
            items = self._framer.feed(data)
        except SIPError as exc:
            # RFC 3261 §18.3: a stream that cannot be framed cannot be resynchronised.
            logger.info("%r: framing error, closing: %s", self, exc.detail)
            self.close()
            return
        except Exception:
            logger.exception("%r: framer failed, closing", self)
            self.close()
            return
        if items:
            self._touch()  # only whole messages and keep-alives are activity
        self._watch_partial()
        source = Source(self._owner, *self.remote)
        for item in items:
            if isinstance(item, KeepAlive):
                if item.ping and self._transport is not None:
                    self._transport.write(_PONG)  # RFC 5626 §3.5.1
                continue
            self._owner._on_receive(item, source)
            if self.state is ConnectionState.CLOSED:
                return
        error = self._framer.error
        if error is not None:  # complete messages were handled first; the rest cannot be framed
            logger.info("%r: framing error after %d message(s), closing: %s", self, len(items), error.detail)
            self._linger()

    def _linger(self) -> None:
        """RFC 3261 §18.3: a stream that cannot be framed cannot be resynchronised, but the whole
        messages before the bad bytes are answered (a REGISTER's 405 went out with the connection
        before): read no more, and close ``LINGER`` seconds later, once their responses are written."""
        if self._transport is not None:
            self._transport.pause_reading()
        if self._partial is not None:
            self._partial.cancel()
            self._partial = None
        self._loop.call_later(LINGER, self.close)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed(TransportError(f"connection to {self.remote[0]}:{self.remote[1]} lost: {exc}"))

    # ours
    def write(self, data: bytes, on_error: ErrorCallback | None) -> None:
        if self.state is ConnectionState.CONNECTING:
            self._pending.append((data, on_error))
        elif self.state is ConnectionState.OPEN and self._transport is not None:
            self._touch()
            self._transport.write(data)
        else:
            report_error(on_error, TransportError(f"{self!r} is closed"))

    def connect_failed(self, exc: Exception) -> None:
        where = f"{format_host(self.remote[0])}:{self.remote[1]}"
        if isinstance(exc, ssl.SSLCertVerificationError):
            name = self._owner.server_name(self.remote[0])
            detail = f"{where} ({name}): {exc.verify_message or exc.reason}"
            logger.warning("%r: the peer's TLS certificate is rejected: %s", self, detail)
            self._closed(CertificateRejected(detail))
            return
        logger.info("%r: connect failed: %s", self, exc)
        if isinstance(exc, ConnectionRefusedError):  # RST: nobody listens there, no point waiting
            self._closed(Unreachable(f"{where} refused the connection"))
            return
        self._closed(TransportError(f"cannot connect to {where}: {exc}"))

    def close(self) -> None:
        if self._transport is not None and self.state is not ConnectionState.CLOSED:
            self._transport.close()
        self._closed(TransportError(f"{self!r} closed"))

    def _closed(self, error: TransportError) -> None:
        if self.state is ConnectionState.CLOSED:
            return
        self._set_state(ConnectionState.CLOSED)
        if self._idle is not None:
            self._idle.cancel()
        if self._partial is not None:
            self._partial.cancel()
            self._partial = None
        pending, self._pending = self._pending, []
        for _, on_error in pending:
            report_error(on_error, error)
        if self._holds_fd:
            self._holds_fd = False
            self._owner._fd_given()
        self._owner._forget(self, error)

    def _touch(self) -> None:
        self._last_activity = self._loop.time()
        if self._idle is None:
            self._idle = self._loop.call_at(self._last_activity + self._idle_timeout(), self._check_idle)

    def _idle_timeout(self) -> float:
        return self._owner.idle_timeout if self.outbound else self._owner.idle_timeout_for(self.remote[0])

    def _watch_partial(self) -> None:
        """Start the clock when a message begins; stop it when nothing partial is left."""
        if self._framer.buffered == 0:
            if self._partial is not None:
                self._partial.cancel()
                self._partial = None
        elif self._partial is None:
            self._partial = self._loop.call_later(self._owner.tcp_limits.message_timeout, self._too_slow)

    def _too_slow(self) -> None:
        self._partial = None
        if self.state is ConnectionState.OPEN:
            logger.info(
                "%r: message incomplete after %.1f s (%d bytes), closing",
                self, self._owner.tcp_limits.message_timeout, self._framer.buffered,
            )  # fmt: skip
            self.close()

    def _check_idle(self) -> None:
        self._idle = None
        if self.state is not ConnectionState.OPEN:
            return
        deadline = self._last_activity + self._idle_timeout()
        if self._loop.time() >= deadline:
            logger.debug("%r: idle for %.1f s, closing", self, self._idle_timeout())
            self.close()
        else:
            self._idle = self._loop.call_at(deadline, self._check_idle)


class TcpTransport:
    """A TCP listening socket and its connection table (RFC 3261 §18.1.1, §18.2.2)."""

    name = "TCP"
    reliable = True
    framing = Framing.STREAM

    def __init__(
        self,
        on_receive: ReceiveCallback,
        *,
        idle_timeout: float = 300.0,
        connect_timeout: float = 5.0,
        limits: ParserLimits = DEFAULT_LIMITS,
        on_closed: ClosedCallback | None = None,
        tcp_limits: TcpLimits = DEFAULT_TCP_LIMITS,
    ) -> None:
        if idle_timeout <= 0 or connect_timeout <= 0:
            raise ValueError(f"timeouts must be positive, got {idle_timeout!r}, {connect_timeout!r}")
        self._on_receive = on_receive
        self._on_closed = on_closed
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self.limits = limits
        self.tcp_limits = tcp_limits
        self._server: asyncio.Server | None = None
        self._local: Address = ("", 0)
        self._connections: dict[Address, _Connection] = {}
        # what admission counts, kept as the table changes (`_put`, `_drop`): checking each of a flood's
        # connections against the whole table took the loop from everyone else (issue 32)
        self._inbound_by_ip: dict[str, int] = {}
        self._untrusted_inbound = 0
        self._connecting: set[asyncio.Task[None]] = set()
        self._closed = False
        self.trusts: Callable[[str], bool] | None = None  # the policy's: who gets the reserved room
        self._refusals = RateLimit()
        self._handshake_failures = RateLimit()
        self.fd_reserve: FdReserve | None = (
            None  # the process's budget of descriptors (gateway/fd_reserve.py)
        )
        self.server_ssl: ssl.SSLContext | None = None  # TLS: what we present to those who connect
        self.client_ssl: ssl.SSLContext | None = None  # TLS: how we verify those we connect to
        self.server_names: dict[str, str] = {}  # TLS: IP -> the name its certificate must carry

    @classmethod
    async def listen(
        cls,
        host: str,
        port: int,
        on_receive: ReceiveCallback,
        *,
        idle_timeout: float = 300.0,
        connect_timeout: float = 5.0,
        limits: ParserLimits = DEFAULT_LIMITS,
        on_closed: ClosedCallback | None = None,
        tcp_limits: TcpLimits = DEFAULT_TCP_LIMITS,
        tls: tuple[ssl.SSLContext, ssl.SSLContext] | None = None,
        backlog: int = 100,
    ) -> TcpTransport:
        """Listen on ``host:port`` (port 0: any free port). ``on_closed`` is told of every
        connection that closes (so that transactions waiting on it can fail at once). ``tls``: the
        server and client contexts of a TLS transport (:class:`TlsTransport`). ``backlog``: the listen
        queue, and how many asyncio accepts at once (``FdReserve.accept_burst``)."""
        self = cls(
            on_receive,
            idle_timeout=idle_timeout,
            connect_timeout=connect_timeout,
            limits=limits,
            on_closed=on_closed,
            tcp_limits=tcp_limits,
        )
        if tls is not None:
            self.server_ssl, self.client_ssl = tls
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self, None, outbound=False),
            host.strip("[]"),
            port,
            family=address_family(host),
            reuse_address=True,
            backlog=backlog,
        )  # no ssl= here: TLS starts in connection_made, after the caps (issue 32)
        self._local = normalize_address(self._server.sockets[0].getsockname())
        logger.info("%s transport listening on %s:%d", self.name, format_host(self._local[0]), self._local[1])
        return self

    def server_name(self, host: str) -> str:
        """The name the certificate of ``host`` (an IP) must carry: the host name it was reached by, or
        the IP itself (RFC 5922 §7.1)."""
        return self.server_names.get(host, host)

    @property
    def local(self) -> Address:
        return self._local

    @property
    def connections(self) -> dict[Address, ConnectionState]:
        """Open and opening connections by remote address (for tests and metrics)."""
        return {address: conn.state for address, conn in self._connections.items()}

    def __repr__(self) -> str:
        return f"<TcpTransport {format_host(self._local[0])}:{self._local[1]}>"

    def send(self, data: bytes, destination: Address, on_error: ErrorCallback | None = None) -> None:
        if self._closed:
            report_error(on_error, TransportError(f"{self!r} is closed"))
            return
        key = (destination[0].strip("[]"), destination[1])
        connection = self._connections.get(key)
        if connection is None:
            try:
                address_family(key[0])
            except ValueError:
                report_error(on_error, TransportError(f"not an IP address: {key[0]!r}"))
                return
            if len(self._connections) >= self.tcp_limits.max_connections:
                report_error(on_error, TransportError(f"{self!r}: connection table full"))
                return
            connection = _Connection(self, key, outbound=True)
            self._put(connection)
            task = asyncio.get_running_loop().create_task(self._connect(connection))
            self._connecting.add(task)
            task.add_done_callback(self._connecting.discard)
        connection.write(data, on_error)

    async def _connect(self, connection: _Connection) -> None:
        loop = asyncio.get_running_loop()
        host, port = connection.remote
        local_host = self._local[0] if address_family(host) == address_family(self._local[0]) else None
        try:
            await asyncio.wait_for(
                loop.create_connection(
                    lambda: connection,
                    host,
                    port,
                    local_addr=(local_host, 0) if local_host else None,
                    ssl=self.client_ssl,
                    server_hostname=self.server_name(host) if self.client_ssl is not None else None,
                ),
                self.connect_timeout,
            )
        except (OSError, TimeoutError) as exc:
            connection.connect_failed(exc)

    def trusted(self, host: str) -> bool:
        return self.trusts is None or self.trusts(host)

    def _admit(self, connection: _Connection) -> bool:
        """Room for one more inbound connection (a reconnect from the same address replaces its
        old one, so it is always admitted)? Untrusted sources never take the room reserved for
        trusted ones."""
        host = connection.remote[0]
        trusted = self.trusted(host)
        connection.untrusted = not trusted
        if connection.remote in self._connections:
            return True
        limits = self.tcp_limits
        room = limits.max_connections if trusted else max(0, limits.max_connections - limits.reserved_trusted)
        counted = len(self._connections) if trusted else self._untrusted_inbound
        per_ip = limits.max_connections_per_ip if trusted else limits.max_untrusted_per_ip
        same_ip = self._inbound_by_ip.get(host, 0)
        if counted >= room or same_ip >= per_ip:
            if self._refusals.allow(logger, logging.WARNING):
                logger.warning(
                    "%r: refusing a connection from %s (%s: %d of %d, %d from that address)",
                    self, host, "trusted" if trusted else "untrusted", counted, room, same_ip,
                )  # fmt: skip
            return False
        return True

    def _take_fd(self, connection: _Connection) -> bool:
        """A descriptor of the process's budget for an inbound connection (True without a budget)."""
        reserve = self.fd_reserve
        if reserve is None or reserve.take():
            return True
        if self._refusals.allow(logger, logging.WARNING):
            logger.warning(
                "%r: refusing a connection from %s: signaling holds %d file descriptors, the rest "
                "is kept for media (connections.fd_reserve)",
                self, connection.remote[0], reserve.in_use,
            )  # fmt: skip
        return False

    def _fd_given(self) -> None:
        if self.fd_reserve is not None:
            self.fd_reserve.give()

    def _handshake(self, connection: _Connection, raw: asyncio.Transport) -> None:
        task = asyncio.get_running_loop().create_task(self._secure(connection, raw))
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    async def _secure(self, connection: _Connection, raw: asyncio.Transport) -> None:
        """The server side of an inbound TLS handshake, ``handshake_timeout`` at most (then: closed)."""
        context = self.server_ssl
        if context is None or connection.state is not ConnectionState.CONNECTING or raw.is_closing():
            connection.close()
            return
        timeout = self.tcp_limits.handshake_timeout
        try:
            secured = await asyncio.get_running_loop().start_tls(
                raw, connection, context, server_side=True, ssl_handshake_timeout=timeout
            )
        except (OSError, TimeoutError, ssl.SSLError) as exc:  # a timeout: ConnectionAbortedError
            if self._handshake_failures.allow(logger, logging.INFO):
                logger.info(
                    "%r: TLS handshake failed from %s: %s",
                    self,
                    connection.remote[0],
                    exc or type(exc).__name__,
                )
            connection.close()
            return
        if secured is None:  # the peer went away as it ended
            connection.close()
            return
        connection.secured(secured)

    def idle_timeout_for(self, host: str) -> float:
        """How long a connection from ``host`` may stay without a whole message."""
        if self.trusted(host):
            return self.idle_timeout
        return min(self.idle_timeout, self.tcp_limits.untrusted_idle_timeout)

    def _register(self, connection: _Connection) -> None:
        old = self._put(connection)
        if old is not None and old is not connection:
            old.close()
        logger.debug("%r: accepted %r", self, connection)

    def _forget(self, connection: _Connection, error: TransportError) -> None:
        if self._connections.get(connection.remote) is connection:
            self._drop(connection)
            if self._on_closed is not None and not self._closed:
                self._on_closed(self, connection.remote, error)

    def _put(self, connection: _Connection) -> _Connection | None:
        """`connection` into the table (replacing the one of its address, returned), counts kept."""
        old = self._connections.get(connection.remote)
        if old is not None:
            self._drop(old)
        self._connections[connection.remote] = connection
        self._count(connection, 1)
        return old

    def _drop(self, connection: _Connection) -> None:
        del self._connections[connection.remote]
        self._count(connection, -1)

    def _count(self, connection: _Connection, step: int) -> None:
        if connection.outbound:
            return
        host = connection.remote[0]
        left = self._inbound_by_ip.get(host, 0) + step
        if left > 0:
            self._inbound_by_ip[host] = left
        else:
            self._inbound_by_ip.pop(host, None)
        if connection.untrusted:
            self._untrusted_inbound += step

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in list(self._connecting):
            task.cancel()
        for connection in list(self._connections.values()):
            connection.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        logger.info("TCP transport on %s:%d closed", format_host(self._local[0]), self._local[1])


class TlsTransport(TcpTransport):
    """SIP over TLS (RFC 3261 §26.2, RFC 5630): TCP with the contexts given to ``listen``; outbound
    connections verify the peer's certificate against the name it was reached by (RFC 5922), and a
    certificate that does not verify fails the request (CertificateRejected), never a plain retry."""

    name = "TLS"
