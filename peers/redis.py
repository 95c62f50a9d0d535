"""A real Redis (Debian ``redis-server``) on a loopback port, for tests of the gateway cluster.

    with running_redis(tmp_path) as redis:
        redis.url            # "redis://127.0.0.1:PORT/0"
        redis.stop()         # an outage (SIGTERM; or kill=True: SIGKILL)
        redis.start()        # back on the same port, with what it had written (appendonly)

    with running_sentinel(tmp_path) as sentinel:   # a primary, a replica, three sentinels (quorum 2)
        sentinel.addresses   # ["127.0.0.1:PORT", ...]: cluster.sentinel.addresses
        sentinel.primary()   # the Redis the sentinels name as the master of `mymaster` now
        sentinel.primary().stop(kill=True)   # a failover: the replica is promoted within a few seconds

No persistence beyond the test's directory; the process groups are killed on teardown.
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
from typing import BinaryIO

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

    extra: tuple[str, ...] = ()  # more redis-server arguments (--replicaof HOST PORT)
    config: Path | None = None  # a sentinel's configuration file (it holds the port, and is rewritten)

    def start(self, timeout: float = 10.0) -> None:
        binary = require_binary("redis-server")
        log = self.log_path.open("ab")
        if self.config is not None:  # a sentinel: the file first, then --sentinel
            command = [binary, str(self.config), *self.extra]
        else:
            command = [binary, "--bind", self.host, "--port", str(self.port), "--dir", str(self.workdir),
                       "--save", "", "--appendonly", "yes", "--protected-mode", "no", "--daemonize", "no",
                       *self.extra]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
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

    def info(self, field: str) -> str | None:
        """One field of INFO (None when absent or Redis does not answer)."""
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                sock.sendall(_resp(("INFO",)))
                text = "".join(_read_strings(sock.makefile("rb")))
        except (OSError, RuntimeError, ValueError):
            return None
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key == field:
                return value.strip()
        return None

    def role(self) -> str | None:
        """ "master" or "slave" (INFO's role), None when it does not answer."""
        return self.info("role")

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


@dataclass
class SentinelGroup:
    """A Redis primary, its replica and three sentinels watching them as `service` (quorum 2)."""

    service: str
    servers: list[Redis]  # [the first primary, its replica]
    sentinels: list[Redis]  # each a `redis-server CONF --sentinel` (there is no other sentinel binary)

    @property
    def addresses(self) -> list[str]:
        return [f"{s.host}:{s.port}" for s in self.sentinels]

    def ask(self, *command: str) -> list[str]:
        """A command to the first sentinel that answers (RESP arrays of bulk strings read simply)."""
        for sentinel in self.sentinels:
            try:
                with socket.create_connection((sentinel.host, sentinel.port), timeout=1.0) as sock:
                    sock.sendall(_resp(command))
                    return _read_strings(sock.makefile("rb"))
            except OSError:
                continue
        raise RuntimeError("no sentinel answers")

    def primary(self) -> Redis:
        """The server the sentinels name as the master now."""
        host, port = self.ask("SENTINEL", "get-master-addr-by-name", self.service)[:2]
        return next(s for s in self.servers if (s.host, s.port) == (host, int(port)))

    def wait_for_primary(self, not_this: Redis, timeout: float = 30.0) -> Redis:
        """Once the sentinels have promoted another server than `not_this` (and it says it is a master)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, RuntimeError, StopIteration, ValueError):
                now = self.primary()
                if now is not not_this and now.role() == "master":
                    return now
            time.sleep(0.1)
        raise RuntimeError(f"no failover within {timeout:g} s")

    def stop(self) -> None:
        for process in (*self.sentinels, *self.servers):
            process.stop(kill=True)


def _resp(command: tuple[str, ...]) -> bytes:
    parts = [f"*{len(command)}\r\n".encode()]
    for word in command:
        data = word.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def _read_strings(reader: BinaryIO) -> list[str]:
    """A RESP reply as a flat list of its strings (an array of bulk strings, nested arrays flattened)."""
    line = reader.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind == b"*":
        return [item for _ in range(max(int(rest), 0)) for item in _read_strings(reader)]
    if kind == b"$":
        size = int(rest)
        return [] if size < 0 else [reader.read(size + 2)[:-2].decode()]
    if kind == b"-":
        raise RuntimeError(rest.decode())
    return [rest.decode()]


@contextlib.contextmanager
def running_sentinel(
    workdir: Path, host: str = "127.0.0.1", service: str = "mymaster", down_after_ms: int = 1000
) -> Iterator[SentinelGroup]:
    """A primary, one replica (`--replicaof`) and three sentinels (quorum 2) on free loopback ports, the
    sentinels taking the primary for down after `down_after_ms` of silence (failover-timeout 5 s); every
    process killed (its group) on the way out."""
    servers: list[Redis] = []
    sentinels: list[Redis] = []
    group = SentinelGroup(service, servers, sentinels)
    try:
        for name in ("primary", "replica"):
            directory = workdir / f"redis-{name}"
            directory.mkdir(parents=True, exist_ok=True)
            extra = () if not servers else ("--replicaof", host, str(servers[0].port))
            server = Redis(host, free_port(socket.SOCK_STREAM, host), directory, extra=extra)
            server.start()
            servers.append(server)
        primary = servers[0]
        deadline = time.monotonic() + 10
        while servers[1].info("master_link_status") != "up":  # the replica has synced
            if time.monotonic() > deadline:
                raise RuntimeError("the replica did not sync with the primary")
            time.sleep(0.05)
        for index in range(3):
            directory = workdir / f"sentinel-{index + 1}"
            directory.mkdir(parents=True, exist_ok=True)
            port = free_port(socket.SOCK_STREAM, host)
            conf = directory / "sentinel.conf"  # the sentinel rewrites it: a file of its own
            conf.write_text(
                f"port {port}\nbind {host}\nprotected-mode no\ndir {directory}\n"
                f"sentinel resolve-hostnames no\n"
                f"sentinel monitor {service} {host} {primary.port} 2\n"
                f"sentinel down-after-milliseconds {service} {down_after_ms}\n"
                f"sentinel failover-timeout {service} 5000\n"
                f"sentinel parallel-syncs {service} 1\n"
            )
            sentinel = Redis(host, port, directory, extra=("--sentinel",), config=conf)
            sentinel.start()
            sentinels.append(sentinel)
        deadline = time.monotonic() + 15
        while True:  # every sentinel knows the replica and the two others
            with contextlib.suppress(OSError, RuntimeError, ValueError):
                if all(_knows_all(group, s) for s in sentinels):
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the sentinels did not discover each other and the replica")
            time.sleep(0.1)
        yield group
    finally:
        group.stop()


def _knows_all(group: SentinelGroup, sentinel: Redis) -> bool:
    one = SentinelGroup(group.service, group.servers, [sentinel])
    reply = one.ask("SENTINEL", "master", group.service)
    fields = dict(zip(reply[::2], reply[1::2], strict=False))
    return fields.get("num-slaves") == "1" and fields.get("num-other-sentinels") == "2"
