"""A local DNS server for tests: dnsmasq (Debian ``dnsmasq-base``) serving SRV, NAPTR and A records.

    async with Dnsmasq(tmp_path, srv=[SrvHost("_sip._udp.pbx.test", "a.pbx.test", 5070, 10, 0)],
                       naptr=[Naptr("pbx.test", 10, 10, "SIP+D2U", "_sip._udp.pbx.test")],
                       hosts={"a.pbx.test": "127.0.0.1"}) as dns:
        ...dns.server is ("127.0.0.53", port): give it to dns.servers...

It listens on 127.0.0.53 (another loopback "host") at a free UDP port, answers only from its own
records (``--no-resolv --no-hosts``: nothing leaves the machine) with ``ttl`` seconds, logs the queries
it gets (`queries()`), and is stopped by its PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from peers.binaries import unavailable
from peers.ports import free_port

__all__ = ["Dnsmasq", "Naptr", "SrvHost", "require_dnsmasq"]

DEFAULT_HOST = "127.0.0.53"


@dataclass(frozen=True, slots=True)
class SrvHost:
    """An SRV record: ``name`` (``_sip._udp.pbx.test``) -> ``target``:``port``."""

    name: str
    target: str
    port: int
    priority: int = 0
    weight: int = 0

    def option(self) -> str:
        return f"--srv-host={self.name},{self.target},{self.port},{self.priority},{self.weight}"


@dataclass(frozen=True, slots=True)
class Naptr:
    """A terminal (flag S) NAPTR record of a SIP service pointing at an SRV name (RFC 3263 §4.1)."""

    name: str
    order: int
    preference: int
    service: str  # SIP+D2U, SIP+D2T, SIPS+D2T
    replacement: str
    flags: str = "S"

    def option(self) -> str:
        fields = (self.name, self.order, self.preference, self.flags, self.service, "", self.replacement)
        return "--naptr-record=" + ",".join(map(str, fields))


def require_dnsmasq() -> str:
    """dnsmasq's path (it lives in /usr/sbin, which a user's PATH may lack); skip or fail without it."""
    path = shutil.which("dnsmasq") or shutil.which("dnsmasq", path="/usr/sbin:/sbin")
    if path is None:
        unavailable("dnsmasq is not installed (Debian dnsmasq-base; scripts/install-system-deps installs it)")
    return path


class Dnsmasq:
    def __init__(
        self,
        workdir: Path,
        *,
        srv: Iterable[SrvHost] = (),
        naptr: Iterable[Naptr] = (),
        hosts: Mapping[str, str] | None = None,
        host: str = DEFAULT_HOST,
        ttl: int = 60,
    ) -> None:
        self.host = host
        self.port = free_port(socket.SOCK_DGRAM, host)
        self.log = workdir / f"dnsmasq-{self.port}.log"
        self.args = [
            "--no-daemon",
            f"--port={self.port}",
            f"--listen-address={host}",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--conf-file=/dev/null",
            "--pid-file=",
            "--user=root",  # no change of user: nothing to drop when run by a developer
            f"--local-ttl={ttl}",
            "--log-queries",
            f"--log-facility={self.log}",
            *(record.option() for record in srv),
            *(record.option() for record in naptr),
            *(f"--host-record={name},{address}" for name, address in (hosts or {}).items()),
        ]
        self._process: asyncio.subprocess.Process | None = None

    @property
    def server(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def address(self) -> str:
        """``host:port``, as ``dns.servers`` takes it."""
        return f"{self.host}:{self.port}"

    async def start(self) -> Dnsmasq:
        self._process = await asyncio.create_subprocess_exec(
            require_dnsmasq(),
            *self.args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while not (self.log.exists() and "started" in self.log.read_text(errors="replace")):
            if self._process.returncode is not None or loop.time() > deadline:
                error = b""
                if self._process.stderr is not None and self._process.returncode is not None:
                    error = await self._process.stderr.read()
                await self.stop()
                raise RuntimeError(
                    f"dnsmasq did not start on {self.address}: {error.decode(errors='replace')}"
                )
            await asyncio.sleep(0.02)
        return self

    def queries(self) -> list[str]:
        """The queries it got, as ``"SRV _sip._udp.pbx.test"``, in order."""
        out = []
        for line in self.log.read_text(errors="replace").splitlines() if self.log.exists() else ():
            if "query[" in line:
                kind, _, rest = line.split("query[", 1)[1].partition("]")
                out.append(f"{kind} {rest.split()[0]}")
        return out

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    async def __aenter__(self) -> Dnsmasq:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
