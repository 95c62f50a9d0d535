"""A real Asterisk 22 (chan_pjsip) as the PBX behind the gateway, for end-to-end tests.

No package registry has Asterisk for this machine kind: shared/peers/asterisk (beside the project's
checkout, ../shared, or beside a folder above it; ``ASTERISK_HOME`` names another) holds a build of 22.10.1 with its bundled pjproject, started by
its ``bin/run-asterisk DIR`` with the configuration files a test writes into DIR. Its run-time libraries,
prompts and music on hold are Debian packages (scripts/system-packages.txt).

``running_asterisk`` writes the test's files, adds the pjsip transport on a free loopback port and an
RTP range of the test's own (rtp.conf), starts Asterisk in the foreground in its own process group,
waits until it is fully booted and answers SIP OPTIONS, and stops it by its PID on the way out:

    with running_asterisk(tmp_path, {"pjsip.conf": ENDPOINTS, "extensions.conf": DIALPLAN}) as pbx:
        gateway_config(pbx.address, ...)          # "127.0.0.1:PORT", the gateway's pbx.address
        await pbx.cli("channel originate PJSIP/1001 application Milliwatt")
        await pbx.restart()                       # the same ports and files, a new process

The pjsip logger is on, so ``pbx.log()`` (Asterisk's messages.log) holds every SIP message it sent and
received, as an operator would see them with ``pjsip set logger on``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from peers.binaries import unavailable
from peers.kamailio import options_ping
from peers.ports import free_port, free_range

__all__ = ["Asterisk", "asterisk_home", "running_asterisk"]

# What run-asterisk would write itself, plus the verbose log that carries the pjsip logger's messages.
_LOGGER = "[general]\n[logfiles]\nmessages.log => notice,warning,error,verbose\n"
RTP_PORTS = 100  # 50 calls' worth of RTP/RTCP pairs: plenty for a test


def asterisk_home() -> Path:
    """The Asterisk build (its bin/run-asterisk), or a skip / failure (CI=true) saying what is missing."""
    home = _find_home()
    if home is None:
        unavailable(
            "no Asterisk build in shared/peers/asterisk beside the checkout or above it (set ASTERISK_HOME)"
        )
    if not Path("/usr/share/asterisk/sounds").is_dir():
        unavailable("Asterisk's prompts are missing: apt-get install asterisk-core-sounds-en-wav")
    return home


def _find_home() -> Path | None:
    """``ASTERISK_HOME``, else shared/peers/asterisk beside the checkout (../shared) or beside a folder
    above it (a CI clone one level deeper): the first with a bin/run-asterisk."""
    if "ASTERISK_HOME" in os.environ:
        candidates = [Path(os.environ["ASTERISK_HOME"])]
    else:
        candidates = [
            parent / "shared" / "peers" / "asterisk" for parent in Path(__file__).resolve().parents[1:]
        ]
    return next((home for home in candidates if (home / "bin" / "run-asterisk").exists()), None)


class Asterisk:
    """One Asterisk process over a configuration directory; ``restart()`` keeps its ports and files."""

    def __init__(self, home: Path, workdir: Path, host: str, port: int, rtp_start: int) -> None:
        self.home = home
        self.workdir = workdir
        self.host = host
        self.port = port
        self.rtp_start = rtp_start
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """host:port of its UDP transport: the gateway's ``pbx.address``."""
        return f"{self.host}:{self.port}"

    def uri(self, user: str) -> str:
        return f"sip:{user}@{self.address}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.returncode is None else None

    def log(self, since: int = 0) -> str:
        """Asterisk's messages.log: its warnings, the dialplan's steps and every SIP message; from
        ``since`` (a ``log_mark()``) on: what happened after that mark (tests sharing one Asterisk)."""
        path = self.workdir / "var" / "log" / "messages.log"
        if not path.exists():
            return ""
        with path.open("rb") as log:
            log.seek(since)
            return log.read().decode(errors="replace")

    def log_mark(self) -> int:
        """Where the log ends now, for ``log(since=...)``."""
        path = self.workdir / "var" / "log" / "messages.log"
        return path.stat().st_size if path.exists() else 0

    def console(self) -> str:
        path = self.workdir / "console.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _command(self, *args: str) -> list[str]:
        return [str(self.home / "bin" / "run-asterisk"), str(self.workdir), *args]

    async def cli(self, command: str, timeout: float = 10) -> str:
        """Run one CLI command in the running Asterisk (``asterisk -rx``); its output."""
        process = await asyncio.create_subprocess_exec(
            *self._command("-rx", command),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            async with asyncio.timeout(timeout):
                output, _ = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
        return output.decode(errors="replace")

    def boot(self, timeout: float = 20) -> None:
        """Start it and wait until it is fully booted and answers OPTIONS (blocking: a fixture's, or
        ``start()``'s thread)."""
        with (self.workdir / "console.log").open("ab") as console:
            self.process = subprocess.Popen(
                self._command("-f", "-n", "-g", "-vvv"),
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=console,
                cwd=self.workdir,
                start_new_session=True,  # its own process group: stop() ends whatever it started too
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"Asterisk exited with {self.process.returncode}:\n{self.console()[-4000:]}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"Asterisk did not boot within {timeout} s:\n{self.console()[-4000:]}")
            booted = subprocess.run(
                self._command("-rx", "core waitfullybooted"),
                capture_output=True,
                timeout=timeout,
                check=False,
            )
            if b"fully booted" in booted.stdout.lower() and options_ping(self.host, self.port) is not None:
                break
            time.sleep(0.1)
        subprocess.run(
            self._command("-rx", "pjsip set logger on"), capture_output=True, timeout=10, check=False
        )

    async def start(self) -> None:
        await asyncio.to_thread(self.boot)

    def halt(self, sig: signal.Signals = signal.SIGTERM) -> int | None:
        """``sig`` to its process group (SIGTERM: Asterisk hangs up its channels and exits; SIGKILL: it
        vanishes as a crashed PBX does), SIGKILL after 10 s (blocking)."""
        process = self.process
        if process is None:
            return None
        for each, grace in ((sig, 10.0), (signal.SIGKILL, 5.0)):
            if process.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, each)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(grace)
        return process.returncode

    async def stop(self, sig: signal.Signals = signal.SIGTERM) -> int | None:
        return await asyncio.to_thread(self.halt, sig)

    async def restart(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop it and start it again with the same files and ports (a PBX restarted mid-call)."""
        await self.stop(sig)
        await self.start()


def _write_files(workdir: Path, files: Mapping[str, str], host: str, port: int, rtp_start: int) -> None:
    for name, text in files.items():
        if name == "pjsip.conf":
            # the transport on the test's own port, before the test's endpoints
            text = f"[transport-udp]\ntype=transport\nprotocol=udp\nbind={host}:{port}\n\n{text}"
        elif name == "extensions.conf":
            # its own address for the dialplan (a Transfer() to a URI at this PBX): ${ASTERISK_ADDRESS}
            text = f"[globals]\nASTERISK_ADDRESS={host}:{port}\n\n{text}"
        (workdir / name).write_text(text)
    (workdir / "rtp.conf").write_text(
        f"[general]\nrtpstart={rtp_start}\nrtpend={rtp_start + RTP_PORTS - 1}\n"
    )
    if "logger.conf" not in files:
        (workdir / "logger.conf").write_text(_LOGGER)


@contextlib.contextmanager
def running_asterisk(workdir: Path, files: Mapping[str, str], host: str = "127.0.0.1") -> Iterator[Asterisk]:
    """Asterisk with ``files`` (pjsip.conf without a transport: one is added on a free port;
    extensions.conf without a [globals] section: one is added, setting ASTERISK_ADDRESS to host:port;
    voicemail.conf...) in ``workdir``/asterisk; stopped by PID at the end. A plain
    context manager, so that a module-scoped fixture can share one Asterisk between tests."""
    home = asterisk_home()
    workdir = workdir / "asterisk"
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port(socket.SOCK_DGRAM, host)
    rtp_start = free_range(RTP_PORTS, host)
    _write_files(workdir, files, host, port, rtp_start)
    pbx = Asterisk(home, workdir, host, port, rtp_start)
    try:
        pbx.boot()
        yield pbx
    finally:
        pbx.halt()
