"""Free loopback ports for peers and gateways under test.

Outside a parallel run a port is one the OS hands out (its ephemeral range). Under pytest-xdist each
worker takes its ports from bands of its own below the ephemeral range (Linux: 32768-60999): no other
worker hands them out, and no socket's automatic bind (a browser, aioice, a client connection) lands on
one between the choice and the bind, the race that made "address already in use" fail a test now and
then. Gateways' RTP ranges come from `free_range`, in another band, for the same reason.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator

__all__ = ["free_port", "free_range"]

# Per worker (gw0..gw7; gw8 shares gw0's bands): single ports, then RTP ranges. All below 32768.
_WORKERS = 8
_PORTS_BASE, _PORTS_PER_WORKER = 10000, 1000  # 10000-17999
_RANGES_BASE, _RANGES_PER_WORKER = 18000, 1800  # 18000-32399

# Ports browsers refuse to load pages from (Chromium's net/base/port_util.cc kRestrictedPorts; Firefox's
# list has the same): a gateway on one fails its browser test with net::ERR_UNSAFE_PORT. 10080 is in
# worker 0's band; the others are listed so that a band moved later cannot take them either.
BROWSER_BLOCKED = frozenset({
    1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103,
    104, 109, 110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427, 465, 512, 513,
    514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993, 995, 1719, 1720,
    1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080,
})  # fmt: skip

_lock = threading.Lock()
_cursors: dict[str, int] = {}


def _worker() -> int | None:
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(name[2:]) % _WORKERS if name.startswith("gw") and name[2:].isdigit() else None


def _bindable(port: int, host: str, kinds: tuple[int, ...]) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for kind in kinds:
        with socket.socket(family, kind) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True


def _cycle(key: str, base: int, size: int, step: int) -> Iterator[int]:
    """Each start of the band once, resuming after the last one handed out (under the lock)."""
    # a process starts where its pid points, so that a peer started by a worker (sharing its bands)
    # does not begin with the ports the worker handed out first
    first = _cursors.get(key, os.getpid() * 2 * 37 % size)
    for i in range(size // step):
        offset = (first + i * step) % size
        _cursors[key] = (offset + step) % size
        yield base + offset


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    """A port free right now on `host` for both UDP and TCP (`kind`: what the caller binds first).

    Outside a parallel run another process may take it before it is bound again: peers that bind it
    retry on a clash."""
    worker = _worker()
    if worker is None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, kind) as sock:
            sock.bind((host, 0))
            return int(sock.getsockname()[1])
    with _lock:
        base = _PORTS_BASE + worker * _PORTS_PER_WORKER
        for port in _cycle(f"port{worker}", base, _PORTS_PER_WORKER, 1):
            if port in BROWSER_BLOCKED:
                continue
            if _bindable(port, host, (kind, socket.SOCK_DGRAM + socket.SOCK_STREAM - kind)):
                return port
    raise RuntimeError(f"no free port left in {base}-{base + _PORTS_PER_WORKER - 1}")


def free_range(count: int = 200, host: str = "127.0.0.1") -> int:
    """The even first port of `count` consecutive UDP ports free right now on `host` (a gateway's
    media.rtp_ports, a TURN server's relay range)."""
    count += count % 2
    worker = _worker()
    if worker is None:
        base, size = 30000, 20000
        start = base + 2 * (free_port(socket.SOCK_DGRAM, host) % (size // 2 - count))
        return start
    with _lock:
        base = _RANGES_BASE + worker * _RANGES_PER_WORKER
        for start in _cycle(f"range{worker}", base, _RANGES_PER_WORKER - count + 2, 2):
            if all(_bindable(port, host, (socket.SOCK_DGRAM,)) for port in range(start, start + count)):
                _cursors[f"range{worker}"] = (start - base + count) % (_RANGES_PER_WORKER - count + 2)
                return start
    raise RuntimeError(f"no {count} free ports left in {base}-{base + _RANGES_PER_WORKER - 1}")
