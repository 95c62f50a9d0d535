"""SIP transports (RFC 3261 §18): the one part of the SIP stack that owns sockets.

A transport moves bytes: it hands every received message (a whole datagram, or what the
:class:`~sipcore.syntax.framing.StreamFramer` cut from a stream) to a callback with its
:class:`Source`, and sends bytes to an address. It does not parse: the transaction layer does,
with the transport's :attr:`Transport.framing`. :class:`UdpTransport` is here, TCP is in
:mod:`gateway.sip.transports.transport_tcp`; TLS and WebSocket (RFC 7118, one SIP message per WebSocket
message, so ``Framing.DATAGRAM`` on a reliable transport) are meant to be one class each that
satisfies the same :class:`Transport` protocol.

Sending never blocks and never raises on network failures: a failure that the transport learns
of (a TCP connection refused, reset or timed out, a send on a closed transport) is reported to
the ``on_error`` callback given with the data, on a later turn of the event loop, so that the
transaction layer can feed it to the transaction as a transport error (RFC 3261 §17.1.4, §18.4).

UDP and ICMP (RFC 3261 §18.4: host, network, port or protocol unreachable SHOULD be reported as a
failure to send): the socket has IP_RECVERR / IPV6_RECVERR set, so the kernel queues each ICMP error
with the destination of the datagram that caused it, and the transport reads that queue and tells
``on_unreachable`` which (ip, port) cannot be reached: a request to a closed PBX port fails at once
instead of after Timer B/F. With the option set the kernel also reports the error to the next send
on the socket, whatever its destination: that send is retried once after the queue is read, so no
datagram to another peer is lost for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast

from gateway.logs import RateLimit
from sipcore.errors import TransportError, Unreachable
from sipcore.location.routing import Address
from sipcore.syntax.parser import Framing

__all__ = [
    "ErrorCallback",
    "ReceiveCallback",
    "Source",
    "Transport",
    "UdpTransport",
    "address_family",
    "format_host",
    "normalize_address",
]

logger = logging.getLogger(__name__)

UDP_RECEIVE_BUFFER = 2**21  # bytes asked for SO_RCVBUF (the kernel caps it at rmem_max)
# Linux's IP_RECVERR (linux/in.h) and IPV6_RECVERR (linux/in6.h); the socket module names neither.
_RECVERR: dict[int, tuple[int, int]] = {
    socket.AF_INET: (socket.IPPROTO_IP, 11),
    socket.AF_INET6: (socket.IPPROTO_IPV6, 25),
}
_ICMP_REPEAT = 60.0  # seconds between INFO lines for one unreachable destination
# The errors ICMP host/network/port/protocol unreachable and parameter problem become (RFC 3261 §18.4).
_UNREACHABLE = frozenset(
    {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENOPROTOOPT, errno.EPROTO}
)
UnreachableCallback = Callable[["UdpTransport", Address, TransportError], None]


class Transport(Protocol):
    """What the transaction layer needs of a transport (UDP, TCP; later TLS, WS, WSS)."""

    @property
    def name(self) -> str:
        """The Via transport token: "UDP", "TCP", "TLS", "WS", "WSS"."""

    @property
    def reliable(self) -> bool:
        """True for stream transports: no retransmissions, timers D/I/J/K are zero (§17)."""

    @property
    def framing(self) -> Framing:
        """How received messages were delimited, for ``parse_message``."""

    @property
    def local(self) -> Address:
        """The bound (host, port)."""

    def send(self, data: bytes, destination: Address, on_error: ErrorCallback | None = None) -> None:
        """Send one message (or keep-alive); failures go to ``on_error`` later, never raised."""

    async def close(self) -> None:
        """Stop receiving and release sockets; idempotent."""


@dataclass(frozen=True, slots=True)
class Source:
    """Where a message came from: the transport it arrived on and the remote address."""

    transport: Transport
    host: str
    port: int

    @property
    def address(self) -> Address:
        return self.host, self.port

    @property
    def local(self) -> Address:
        return self.transport.local

    @property
    def reliable(self) -> bool:
        return self.transport.reliable

    def __str__(self) -> str:
        return f"{self.transport.name} {format_host(self.host)}:{self.port}"


ReceiveCallback = Callable[[bytes, Source], None]
ErrorCallback = Callable[[Exception], None]


def normalize_address(sockaddr: tuple[object, ...]) -> Address:
    """(host, port) of a socket address; IPv6 4-tuples lose flowinfo and scope id, IPv4-mapped
    IPv6 addresses (dual-stack sockets) become plain IPv4."""
    host, port = str(sockaddr[0]), int(str(sockaddr[1]))
    if host.startswith("::ffff:"):
        mapped = ipaddress.IPv6Address(host.split("%")[0]).ipv4_mapped
        if mapped is not None:
            host = str(mapped)
    return host, port


def address_family(host: str) -> socket.AddressFamily:
    """AF_INET or AF_INET6 for an IP literal (brackets allowed); ValueError for a name."""
    ip = ipaddress.ip_address(host.strip("[]").split("%")[0])
    return socket.AF_INET6 if ip.version == 6 else socket.AF_INET


def format_host(host: str) -> str:
    """An IP literal as written in a Via or URI: IPv6 in brackets (RFC 3261 §25.1 IPv6reference)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def report_error(on_error: ErrorCallback | None, exc: Exception) -> None:
    """Hand a send failure to its callback on the next turn of the loop (never re-entrantly)."""
    if on_error is not None:
        asyncio.get_running_loop().call_soon(on_error, exc)


class UdpTransport(asyncio.DatagramProtocol):
    """One datagram socket bound to a listen address (RFC 3261 §18.1.1, §18.2.1)."""

    name = "UDP"
    reliable = False
    framing = Framing.DATAGRAM

    def __init__(
        self, on_receive: ReceiveCallback, on_unreachable: UnreachableCallback | None = None
    ) -> None:
        self._on_receive = on_receive
        self._on_unreachable = on_unreachable
        self._transport: asyncio.DatagramTransport | None = None
        self._sock: socket.socket | None = None  # ours: asyncio's wrapper cannot read the error queue
        self._family = socket.AF_INET
        self._local: Address = ("", 0)
        self._closed = False
        self._icmp_log = RateLimit()
        self._icmp_seen: dict[Address, float] = {}  # destination -> when its ICMP error was last at INFO

    @classmethod
    async def bind(
        cls,
        host: str,
        port: int,
        on_receive: ReceiveCallback,
        on_unreachable: UnreachableCallback | None = None,
    ) -> UdpTransport:
        """Bind ``host:port`` (port 0: any free port) and start receiving; ICMP unreachable errors for a
        destination go to ``on_unreachable``."""
        loop = asyncio.get_running_loop()
        family = address_family(host)
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # dual-stack on "::"
            sock.bind((host.strip("[]"), port))
            sock.setblocking(False)
            with contextlib.suppress(OSError):  # not Linux: ICMP errors stay unread, timers decide
                sock.setsockopt(*_RECVERR[family], 1)
            _, protocol = await loop.create_datagram_endpoint(
                lambda: cls(on_receive, on_unreachable), sock=sock
            )
        except BaseException:
            sock.close()
            raise
        protocol._sock = sock
        logger.info("UDP transport listening on %s:%d", format_host(protocol.local[0]), protocol.local[1])
        return protocol

    @property
    def local(self) -> Address:
        return self._local

    def __repr__(self) -> str:
        return f"<UdpTransport {format_host(self._local[0])}:{self._local[1]}>"

    # asyncio.DatagramProtocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)
        sock = transport.get_extra_info("socket")
        # A burst must wait in the kernel while the event loop is busy, not be dropped there
        # (the Linux default of ~200 KB holds a few hundred SIP datagrams).
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
        self._family = sock.family
        self._local = normalize_address(sock.getsockname())

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        if not data.strip(b"\r\n\x00 "):
            return  # RFC 5626 §4.4.1-style keep-alive datagrams: nothing to parse or answer
        host, port = normalize_address(tuple(addr))
        self._on_receive(data, Source(self, host, port))

    def error_received(self, exc: Exception) -> None:
        logger.debug("UDP %s: %s", self, exc)
        self._read_errors()

    def _read_errors(self) -> None:
        """Read the socket's error queue: each ICMP unreachable names the destination it was for."""
        sock = self._sock
        if sock is None:
            return
        for _ in range(64):  # bounded: a flood of ICMP must not hold the loop
            try:
                _, ancillary, _, address = sock.recvmsg(1, 512, socket.MSG_ERRQUEUE)
            except OSError:  # BlockingIOError: the queue is empty
                return
            code = next(
                (struct.unpack_from("=I", data)[0] for level, kind, data in ancillary
                 if (level, kind) == _RECVERR.get(sock.family) and len(data) >= 4),
                None,
            )  # fmt: skip
            if code not in _UNREACHABLE or not address:
                continue
            destination = normalize_address(tuple(address))
            error = Unreachable(f"{format_host(destination[0])}:{destination[1]} (ICMP: {os.strerror(code)})")
            now = time.monotonic()  # one INFO line per destination a minute: a dead address's
            if now - self._icmp_seen.get(destination, -_ICMP_REPEAT) >= _ICMP_REPEAT:  # retransmissions
                if len(self._icmp_seen) >= 256:  # each bring one more ICMP error (issue 36)
                    self._icmp_seen.clear()
                self._icmp_seen[destination] = now
                if self._icmp_log.allow(logger, logging.INFO):
                    logger.info("UDP %s: %s (the next ones for it within a minute at DEBUG)", self, error)
            else:
                logger.debug("UDP %s: %s", self, error)
            if self._on_unreachable is not None:
                self._on_unreachable(self, destination, error)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True

    def send(self, data: bytes, destination: Address, on_error: ErrorCallback | None = None) -> None:
        if self._closed or self._transport is None or self._transport.is_closing():
            report_error(on_error, TransportError(f"{self!r} is closed"))
            return
        try:
            family = address_family(destination[0])
        except ValueError:
            report_error(on_error, TransportError(f"not an IP address: {destination[0]!r}"))
            return
        host = destination[0].strip("[]")
        if family != self._family:
            if not (self._family == socket.AF_INET6 and family == socket.AF_INET):
                report_error(on_error, TransportError(f"{self!r} cannot reach {host}"))
                return
            host = f"::ffff:{host}"  # IPv4 peer on a dual-stack IPv6 socket
        sock = self._sock
        # while asyncio's transport holds datagrams (the socket was full), new ones queue behind them
        if sock is not None and not cast(asyncio.WriteTransport, self._transport).get_write_buffer_size():
            try:
                sock.sendto(data, (host, destination[1]))
                return
            except (BlockingIOError, InterruptedError):
                pass  # asyncio buffers it until the socket is writable
            except OSError:  # an ICMP error for an earlier datagram surfaced here: read it, send again
                self._read_errors()
        self._transport.sendto(data, (host, destination[1]))

    async def close(self) -> None:
        if self._transport is not None and not self._closed:
            logger.info("UDP transport on %s:%d closed", format_host(self._local[0]), self._local[1])
            self._transport.close()
        self._closed = True
