"""Free loopback ports for peers and gateways under test."""

from __future__ import annotations

import socket

__all__ = ["free_port"]


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    """A port the OS says is free right now on `host` (TCP by default; `socket.SOCK_DGRAM` for UDP).

    Another process may take it before it is bound again: peers that bind it retry on a clash."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
