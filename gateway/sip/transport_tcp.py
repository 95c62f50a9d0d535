"""The TCP transport (RFC 3261 §18 over streams).

A :class:`TcpTransport` listens on one address and keeps a table of open connections keyed by
the remote (ip, port), whichever side opened them. A response goes back over the connection its
request came on (RFC 3261 §18.2.2: the source address of an inbound connection is its key); a
request to an address reuses an open connection to it, or opens one (§18.1.1), queueing what is
sent until the connection is up. Each connection has its own
:class:`~gateway.sip.framing.StreamFramer`: a double CRLF ping is answered with a CRLF pong
(RFC 5626 §3.5.1), a framing error (no Content-Length, garbage) closes that connection only,
and a connection idle for ``idle_timeout`` seconds is closed.

Connection states: CONNECTING (outbound, not yet up) -> OPEN -> CLOSED; inbound connections
start OPEN.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable
from typing import cast

from gateway.sip.errors import SIPError
from gateway.sip.framing import KeepAlive, StreamFramer
from gateway.sip.parser import DEFAULT_LIMITS, Framing, ParserLimits
from gateway.sip.transport import (
    Address,
    ErrorCallback,
    ReceiveCallback,
    Source,
    TransportError,
    address_family,
    format_host,
    normalize_address,
    report_error,
)

__all__ = ["ClosedCallback", "ConnectionState", "TcpTransport"]

logger = logging.getLogger(__name__)

ConnectionState = enum.Enum("ConnectionState", "CONNECTING OPEN CLOSED")
ClosedCallback = Callable[["TcpTransport", Address], None]
_PONG = b"\r\n"


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

    def __repr__(self) -> str:
        direction = "to" if self.outbound else "from"
        return (
            f"<TCP connection {direction} {format_host(self.remote[0])}:{self.remote[1]} {self.state.name}>"
        )

    def _set_state(self, new: ConnectionState) -> None:
        logger.debug("%r: %s -> %s", self, self.state.name, new.name)
        self.state = new

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self.remote = normalize_address(transport.get_extra_info("peername"))
        self._set_state(ConnectionState.OPEN)
        if not self.outbound:
            self._owner._register(self)
        self._touch()
        pending, self._pending = self._pending, []
        for data, _ in pending:
            self._transport.write(data)

    def data_received(self, data: bytes) -> None:
        self._touch()
        try:
            items = self._framer.feed(data)
        except SIPError as exc:
            # RFC 3261 §18.3: a stream that cannot be framed cannot be resynchronised.
            logger.info("%r: framing error, closing: %s", self, exc.detail)
            self.close()
            return
        source = Source(self._owner, *self.remote)
        for item in items:
            if isinstance(item, KeepAlive):
                if item.ping and self._transport is not None:
                    self._transport.write(_PONG)  # RFC 5626 §3.5.1
                continue
            self._owner._on_receive(item, source)
            if self.state is ConnectionState.CLOSED:
                return

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
        logger.info("%r: connect failed: %s", self, exc)
        self._closed(TransportError(f"cannot connect to {self.remote[0]}:{self.remote[1]}: {exc}"))

    def close(self) -> None:
        if self._transport is not None and self.state is ConnectionState.OPEN:
            self._transport.close()
        self._closed(TransportError(f"{self!r} closed"))

    def _closed(self, error: TransportError) -> None:
        if self.state is ConnectionState.CLOSED:
            return
        self._set_state(ConnectionState.CLOSED)
        if self._idle is not None:
            self._idle.cancel()
        pending, self._pending = self._pending, []
        for _, on_error in pending:
            report_error(on_error, error)
        self._owner._forget(self)

    def _touch(self) -> None:
        self._last_activity = self._loop.time()
        if self._idle is None:
            self._idle = self._loop.call_at(self._last_activity + self._owner.idle_timeout, self._check_idle)

    def _check_idle(self) -> None:
        self._idle = None
        if self.state is not ConnectionState.OPEN:
            return
        deadline = self._last_activity + self._owner.idle_timeout
        if self._loop.time() >= deadline:
            logger.debug("%r: idle for %.1f s, closing", self, self._owner.idle_timeout)
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
    ) -> None:
        if idle_timeout <= 0 or connect_timeout <= 0:
            raise ValueError(f"timeouts must be positive, got {idle_timeout!r}, {connect_timeout!r}")
        self._on_receive = on_receive
        self._on_closed = on_closed
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self.limits = limits
        self._server: asyncio.Server | None = None
        self._local: Address = ("", 0)
        self._connections: dict[Address, _Connection] = {}
        self._connecting: set[asyncio.Task[None]] = set()
        self._closed = False

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
    ) -> TcpTransport:
        """Listen on ``host:port`` (port 0: any free port). ``on_closed`` is told of every
        connection that closes (so that transactions waiting on it can fail at once)."""
        self = cls(
            on_receive,
            idle_timeout=idle_timeout,
            connect_timeout=connect_timeout,
            limits=limits,
            on_closed=on_closed,
        )
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self, None, outbound=False),
            host.strip("[]"),
            port,
            family=address_family(host),
            reuse_address=True,
        )
        self._local = normalize_address(self._server.sockets[0].getsockname())
        logger.info("TCP transport listening on %s:%d", format_host(self._local[0]), self._local[1])
        return self

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
            connection = _Connection(self, key, outbound=True)
            self._connections[key] = connection
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
                ),
                self.connect_timeout,
            )
        except (OSError, TimeoutError) as exc:
            connection.connect_failed(exc)

    def _register(self, connection: _Connection) -> None:
        old = self._connections.get(connection.remote)
        self._connections[connection.remote] = connection
        if old is not None and old is not connection:
            old.close()
        logger.debug("%r: accepted %r", self, connection)

    def _forget(self, connection: _Connection) -> None:
        if self._connections.get(connection.remote) is connection:
            del self._connections[connection.remote]
            if self._on_closed is not None and not self._closed:
                self._on_closed(self, connection.remote)

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
