"""A real Redis (Debian ``redis-server``) on a loopback port, for tests of the gateway cluster.

    with running_redis(tmp_path) as redis:
        redis.url            # "redis://127.0.0.1:PORT/0"
        redis.stop()         # an outage (SIGTERM; or kill=True: SIGKILL)
        redis.start()        # back on the same port, with what it had written (appendonly)

No persistence beyond the test's directory; the process group is killed on teardown.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from peers.binaries import require_binary
from peers.ports import free_port


@dataclass
class Redis:
    host: str
    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.workdir / "redis.log"

    def start(self, timeout: float = 10.0) -> None:
        binary = require_binary("redis-server")
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [binary, "--bind", self.host, "--port", str(self.port), "--dir", str(self.workdir),
             "--save", "", "--appendonly", "yes", "--protected-mode", "no", "--daemonize", "no"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start:\n{self.log_path.read_text()[-2000:]}")
            time.sleep(0.05)

    def ping(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, kill: bool = False) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


@contextlib.contextmanager
def running_redis(workdir: Path, host: str = "127.0.0.1") -> Iterator[Redis]:
    directory = workdir / "redis"
    directory.mkdir(parents=True, exist_ok=True)
    server = Redis(host, free_port(socket.SOCK_STREAM, host), directory)
    server.start()
    try:
        yield server
    finally:
        server.stop(kill=True)
