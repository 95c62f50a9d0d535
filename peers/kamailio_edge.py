"""Kamailio as the SIP edge of a gateway cluster: deploy/kamailio-cluster.cfg as shipped, on loopback.

    with running_edge(tmp_path, [("127.0.0.2", 5071), ("127.0.0.3", 5072)]) as edge:
        edge.aor("1001")     # "sip:1001@127.0.0.1:PORT": a desk phone calls web user 1001 through it

The dispatcher list is written into the test's directory and named with `-A DISPATCHER_LIST=...`.
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
from peers.kamailio import options_ping
from peers.ports import free_port

CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "kamailio-cluster.cfg"


@dataclass
class KamailioEdge:
    host: str
    port: int
    workdir: Path
    process: subprocess.Popen[bytes]

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def aor(self, user: str) -> str:
        return f"sip:{user}@{self.address}"

    def log(self) -> str:
        path = self.workdir / "kamailio.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextlib.contextmanager
def running_edge(
    workdir: Path,
    gateways: Sequence[tuple[str, int]],
    host: str = "127.0.0.1",
    ping_interval: int = 1,
    ka_interval: int = 30,
) -> Iterator[KamailioEdge]:
    binary = require_binary("kamailio")
    workdir = workdir / "kamailio-edge"
    (workdir / "run").mkdir(parents=True, exist_ok=True)
    listing = workdir / "dispatcher.list"
    listing.write_text("".join(f"1 sip:{h}:{p}\n" for h, p in gateways))
    port = free_port(socket.SOCK_DGRAM, host)
    with (workdir / "kamailio.log").open("wb") as log:
        process = subprocess.Popen(
            [binary, "-DD", "-E", "-f", str(CONFIG), "-Y", str(workdir / "run"), "-l", f"udp:{host}:{port}",
             "-A", f'DISPATCHER_LIST="{listing}"', "-A", f"PING_INTERVAL={ping_interval}", "-A", f"KA_INTERVAL={ka_interval}",
             "-m", "32", "-M", "4"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=workdir, start_new_session=True,
        )  # fmt: skip
    edge = KamailioEdge(host, port, workdir, process)
    try:
        deadline = time.monotonic() + 10
        while (status := options_ping(host, port)) is None or not status.endswith("200 Keepalive"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"kamailio did not start:\n{edge.log()[-3000:]}")
        yield edge
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)
                break
