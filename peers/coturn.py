"""A real TURN server (Debian ``coturn``) on a loopback port, with TURN REST API credentials.

    with running_coturn(tmp_path, secret) as turn:
        turn.url             # "turn:127.0.0.1:PORT?transport=udp" ("turn:[fd42:202::1]:PORT..." on IPv6)
        turn.allocations()   # allocations coturn logged so far (its verbose log)

coturn runs with ``use-auth-secret`` and ``static-auth-secret`` (draft-uberti-behave-turn-rest-00: it
accepts username ``<expiry>:<user>`` with password base64(HMAC-SHA1(secret, username)) until the
expiry), UDP and TCP only (``--no-tls --no-dtls``), relaying to loopback peers
(``--allow-loopback-peers``: the gateway is on 127.0.0.1), no CLI; its pid file and database are in the
test's directory. The process group is killed on teardown.

It relays from ``host`` unless ``relays`` names the relay addresses: a TURN server listening on IPv6
needs an IPv4 one as well for clients that ask for an IPv4 relay over IPv6 (Chromium does; aioice asks
for no family, which RFC 6156 §4.2 makes IPv4): with none coturn answers 440 Unsupported address family.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from peers.binaries import require_binary
from peers.ports import free_port, free_range

REALM = "gateway.test"
RELAY_PORTS = 40  # coturn's relay ports: a range of its own above the listening port


@dataclass
class Coturn:
    host: str
    port: int
    secret: str
    workdir: Path
    relays: tuple[str, ...] = ()  # the relay addresses; empty: host
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host  # RFC 7065 §3.1: an IPv6 literal
        return f"turn:{host}:{self.port}?transport=udp"

    @property
    def log_path(self) -> Path:
        return self.workdir / "turnserver.log"

    def start(self, timeout: float = 10.0) -> None:
        binary = require_binary("turnserver")
        low = free_range(RELAY_PORTS + 1, self.host)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [binary, "-n", f"--listening-ip={self.host}", f"--listening-port={self.port}",
             *(f"--relay-ip={relay}" for relay in self.relays or (self.host,)), f"--min-port={low}", f"--max-port={low + RELAY_PORTS}",
             "--use-auth-secret", f"--static-auth-secret={self.secret}", f"--realm={REALM}",
             "--no-tls", "--no-dtls", "--allow-loopback-peers", "--no-cli", "--fingerprint",
             "--log-file=stdout", "--simple-log", "--verbose",
             f"--pidfile={self.workdir / 'turnserver.pid'}", f"--userdb={self.workdir / 'turndb'}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout
        while not self.binding():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"turnserver did not start:\n{self.log_text()[-2000:]}")
            time.sleep(0.05)

    def binding(self) -> bool:
        """Whether coturn answers a STUN Binding request (RFC 5389 §6) on its UDP port."""
        transaction = secrets.token_bytes(12)
        request = struct.pack("!HHI", 0x0001, 0, 0x2112A442) + transaction
        with socket.socket(
            socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_DGRAM
        ) as sock:
            sock.settimeout(0.3)
            try:
                sock.sendto(request, (self.host, self.port))
                data = sock.recv(2048)
            except OSError:
                return False
        return len(data) >= 20 and data[:2] == b"\x01\x01" and data[8:20] == transaction

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def allocations(self) -> int:
        """Successful allocations so far, as coturn logs them."""
        return self.log_text().count("ALLOCATE processed, success")

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


@contextlib.contextmanager
def running_coturn(
    workdir: Path, secret: str, host: str = "127.0.0.1", relays: tuple[str, ...] = ()
) -> Iterator[Coturn]:
    directory = workdir / "coturn"
    directory.mkdir(parents=True, exist_ok=True)
    for attempt in range(3):
        server = Coturn(host, _free_udp_and_tcp(host), secret, directory, relays)
        server.log_path.unlink(missing_ok=True)  # (what an attempt before logged)
        try:
            server.start()
            break
        except RuntimeError as exc:  # another test took the port meanwhile (its TCP side, once): again
            server.stop()
            if attempt == 2 or "Address already in use" not in str(exc):
                raise
    try:
        yield server
    finally:
        server.stop()


def _free_udp_and_tcp(host: str) -> int:
    """A port free for UDP and TCP both: coturn listens on both."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    while True:
        port = free_port(socket.SOCK_DGRAM, host)
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        return port
