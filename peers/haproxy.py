"""A real HAProxy (Debian ``haproxy``) with the project's deploy/haproxy.cfg, on loopback, for cluster tests.

    with running_haproxy(tmp_path, ["127.0.0.2:8001", "127.0.0.3:8002", "127.0.0.4:8003"]) as front:
        front.url      # "http://127.0.0.1:PORT": browsers (WebUser) connect here

The configuration is used as shipped; its environment variables name the front address and the three
instances. HAProxy runs in the foreground (-db) in its own process group, killed on teardown.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from peers.binaries import require_binary
from peers.ports import free_port

CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "haproxy.cfg"


@dataclass
class HaProxy:
    host: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextlib.contextmanager
def running_haproxy(workdir: Path, instances: Sequence[str], host: str = "127.0.0.1") -> Iterator[HaProxy]:
    if len(instances) != 3:
        raise ValueError(f"deploy/haproxy.cfg names three instances, got {len(instances)}")
    binary = require_binary("haproxy")
    port = free_port(socket.SOCK_STREAM, host)
    env = {**os.environ, "GATEWAY_FRONT": f"{host}:{port}"}
    env.update({f"GATEWAY_{n}": address for n, address in enumerate(instances, 1)})
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "haproxy.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [binary, "-db", "-f", str(CONFIG)],
            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
    front = HaProxy(host, port, process, log_path)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"haproxy did not start:\n{front.log()[-2000:]}")
            time.sleep(0.05)
        yield front
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)
