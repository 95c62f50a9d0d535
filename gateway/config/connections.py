"""The `connections` section of gateway.yaml: what a peer may hold before it has authenticated (issue 32).

Every listener counts a connection from the moment it is accepted, before any TLS handshake: a
handshake has `tls_handshake_timeout` seconds to finish (SIP over TLS, HTTPS, WSS), SIP TCP/TLS and
HTTP have caps per address and in all, an HTTP request must send its header within
`http_header_timeout` (at most `http_max_waiting_per_ip` of an address's connections wait for it; when
the listener is full the oldest waiting one goes first) and its body within `http_body_timeout`, and
`fd_reserve` of the process's file descriptors are kept for media (RTP ports, ICE sockets): no
signaling flood can take what a call needs.
docs/signaling.md (*Limits*) is the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from gateway.config.errors import InvalidValue
from gateway.config.values import FloatRange, IntRange


@dataclass(frozen=True, slots=True)
class ConnectionsSection:
    """Caps and deadlines of every listener before authentication (see the module note)."""

    tls_handshake_timeout: Annotated[float, FloatRange(0.1, 60.0)] = 5.0  # seconds, from accept
    # HTTPS/WSS handshakes at once from one address (each holds ~400 KB; a browser's takes ms)
    tls_max_handshakes_per_ip: Annotated[int, IntRange(1, 1_000_000)] = 16
    tls_max_handshakes: Annotated[int, IntRange(1, 1_000_000)] = 512  # per HTTPS/WSS listener (~200 MB)
    sip_max_connections: Annotated[int, IntRange(1, 1_000_000)] = 1024  # SIP TCP/TLS, per listener
    sip_max_connections_per_ip: Annotated[int, IntRange(1, 1_000_000)] = 32  # from a trusted address
    sip_max_untrusted_per_ip: Annotated[int, IntRange(1, 1_000_000)] = 4  # from any other address
    sip_untrusted_idle_timeout: Annotated[float, FloatRange(0.1, 3600.0)] = 10.0  # without a whole message
    http_max_connections: Annotated[int, IntRange(1, 1_000_000)] = 4096  # per HTTP(S) listener
    # an office behind one NAT: a WebSocket and a few requests each
    http_max_connections_per_ip: Annotated[int, IntRange(1, 1_000_000)] = 128
    # of those, without a whole first request header yet (a browser sends it at once): its share of the
    # listener, so that slowloris needs http_max_connections / this many addresses to fill it; when it
    # is full, the oldest such connection is closed for a newcomer
    http_max_waiting_per_ip: Annotated[int, IntRange(1, 1_000_000)] = 32
    http_header_timeout: Annotated[float, FloatRange(0.1, 600.0)] = 10.0  # first request's header
    # idle between requests (aiohttp clients drop theirs at 15 s), and a later request's header
    http_keepalive_timeout: Annotated[float, FloatRange(0.1, 3600.0)] = 30.0
    # a request body, once its header is in
    http_body_timeout: Annotated[float, FloatRange(0.1, 600.0)] = 30.0
    # share of RLIMIT_NOFILE (raised to the hard limit at start) that signaling may never take
    fd_reserve: Annotated[float, FloatRange(0.0, 0.9)] = 0.25

    def __post_init__(self) -> None:
        if self.sip_max_untrusted_per_ip > self.sip_max_connections_per_ip:
            raise InvalidValue(
                "sip_max_untrusted_per_ip",
                f"must not exceed sip_max_connections_per_ip ({self.sip_max_connections_per_ip})",
            )
