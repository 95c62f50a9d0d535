"""Run sipp (Debian ``sip-tester``) scenarios as subprocesses on loopback, for tests.

A `Sipp` is one sipp process: a built-in scenario (``"uac"``, ``"uas"``, ...: ``-sn``) or one of ours in
peers/scenarios (``"uac_basic_call"`` or a path: ``-sf``). It gets free SIP and media ports on
127.0.0.1, traces messages and errors into its own directory, and always ends with a `SippResult`:

    # foreground: a UAC places one call and exits
    result = await Sipp(tmp_path, "uac_basic_call", phone.uri_hostport, service="2000", duration_ms=1000).run()
    assert result.ok, result

    # background: a UAS waits for calls; stop() (or leaving the block) ends it cleanly
    async with Sipp(tmp_path, "uas_basic_call", calls=1, rtp_echo=True) as uas:
        ...call uas.uri from a phone...
        result = await uas.wait(timeout=10)   # -m 1: it exits by itself after one call

sipp's exit status: 0 all calls succeeded, 1 at least one failed (also: the scenario did not load),
97 stopped by an internal command, 99 ended without any call, 254 a port could not be bound (`start`
then retries on new ports), 255 fatal error.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import re
import signal
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from peers.ports import free_port, free_range

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
BUILTIN = {
    "uac",
    "uas",
    "regexp",
    "3pcc-A",
    "3pcc-B",
    "3pcc-C-A",
    "3pcc-C-B",
    "branchc",
    "branchs",
    "uac_pcap",
    "ooc_default",
}
_counter = itertools.count(1)
_EXIT_BIND_ERROR = 254  # sipp's EXIT_BIND_ERROR (-2): "Unable to bind main socket / audio RTP socket"
_BIND_ATTEMPTS = 4
_BIND_GRACE = 0.05  # seconds a started sipp is watched for an immediate bind error


@dataclass(frozen=True, slots=True)
class SippResult:
    returncode: int
    messages: str  # -trace_msg: every message sent and received
    errors: str  # -trace_err: unexpected messages and scenario errors
    logs: str  # -trace_logs: the scenario's <log> actions
    screen: str  # -trace_screen: the final statistics screen
    stderr: str
    workdir: Path

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def count(self, start_line: str) -> int:
        """How many traced messages begin with this start line prefix, e.g. "SIP/2.0 200" or "INFO"."""
        return len(re.findall(rf"^\s*{re.escape(start_line)}", self.messages, re.MULTILINE))

    def __str__(self) -> str:
        tail = "\n".join(self.messages.splitlines()[-60:])
        return (
            f"sipp exited {self.returncode} (workdir {self.workdir})\n--- stderr ---\n{self.stderr}\n"
            f"--- errors ---\n{self.errors[-3000:]}\n--- last messages ---\n{tail}"
        )


class Sipp:
    def __init__(
        self,
        workdir: Path,
        scenario: str | Path,
        remote: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        media_port: int | None = None,
        service: str | None = None,
        calls: int | None = 1,
        rate: float | None = None,
        limit: int | None = None,
        duration_ms: int | None = None,
        auth: tuple[str, str] | None = None,
        inf: Path | Sequence[Sequence[str]] | None = None,
        rtp_echo: bool = False,
        auto_answer: bool = False,
        keys: dict[str, str] | None = None,
        timeout: float = 30,
        extra_args: Sequence[str] = (),
    ) -> None:
        """`remote` is "host:port" for a UAC; `calls` is -m (None: unlimited), `rate` -r, `limit` -l,
        `duration_ms` -d (the length of <pause/>), `auth` (-au, -ap), `inf` an injection file or rows for
        one (written with SEQUENTIAL), `auto_answer` -aa (200 to INFO/NOTIFY/OPTIONS/UPDATE), `keys`
        -key NAME VALUE pairs, `timeout` sipp's own global -timeout (seconds, fails the run)."""
        self.scenario = scenario
        self.name = Path(str(scenario)).stem
        self.host = host
        self._fixed_ports = (port, media_port)
        self._parent = workdir
        self.timeout = timeout
        args = [*self._scenario_args(scenario)]
        if remote:
            args.append(remote)
        args += ["-nostdin", "-timeout", f"{timeout}s", "-timeout_error", "-max_retrans", "5"]
        if service is not None:
            args += ["-s", service]
        if calls is not None:
            args += ["-m", str(calls)]
        if rate is not None:
            args += ["-r", f"{rate:g}"]
        if limit is not None:
            args += ["-l", str(limit)]
        if duration_ms is not None:
            args += ["-d", str(duration_ms)]
        if auth is not None:
            args += ["-au", auth[0], "-ap", auth[1]]
        if inf is not None:
            args += ["-inf", str(self._injection_file(inf))]
        if rtp_echo:
            args.append("-rtp_echo")
        if auto_answer:
            args.append("-aa")
        for key, value in (keys or {}).items():
            args += ["-key", key, value]
        self._options = [*args, *extra_args]
        self._pick_ports()
        self._process: asyncio.subprocess.Process | None = None
        self._stderr: BinaryIO | None = None
        self._result: SippResult | None = None

    def _pick_ports(self) -> None:
        """Choose the SIP and media ports (free now; another process may still take one first: `start`
        then picks again) and the trace directory named after them, and build the command line."""
        port, media_port = self._fixed_ports
        self.port = port or free_port(socket.SOCK_DGRAM, self.host)
        self.media_port = media_port or _free_even_udp_pair(self.host)
        self.workdir = self._parent / f"sipp-{self.name}-{next(_counter)}-{self.port}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        host, traces = self.host, self.workdir
        self.args = [
            *self._options,
            *("-i", host, "-p", str(self.port), "-mi", host, "-mp", str(self.media_port)),
            *("-trace_msg", "-message_file", str(traces / "messages.log")),
            *("-trace_err", "-error_file", str(traces / "errors.log")),
            *("-trace_logs", "-log_file", str(traces / "logs.log")),
            *("-trace_screen", "-screen_file", str(traces / "screen.log")),
        ]

    @property
    def address(self) -> str:
        """host:port of this sipp's SIP socket (give it to a UAC, or dial sip:user@address)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def uri(self, user: str = "sipp") -> str:
        return f"sip:{user}@{self.address}"

    def _scenario_args(self, scenario: str | Path) -> list[str]:
        if isinstance(scenario, str) and scenario in BUILTIN:
            return ["-sn", scenario]
        path = Path(scenario)
        if not path.suffix:
            path = SCENARIOS / f"{scenario}.xml"
        if not path.is_file():
            raise FileNotFoundError(f"no sipp scenario {scenario!r} (looked for {path})")
        return ["-sf", str(path)]

    def _injection_file(self, inf: Path | Sequence[Sequence[str]]) -> Path:
        if isinstance(inf, Path):
            return inf
        path = self._parent / f"injection-{self.name}-{next(_counter)}.csv"
        path.write_text("SEQUENTIAL\n" + "".join(";".join(row) + ";\n" for row in inf))
        return path

    # --- running ---------------------------------------------------------------------------------------
    async def start(self, ready_timeout: float = 5) -> Sipp:
        """Start in the background and return once sipp holds its SIP and media ports (or has already
        exited). Ports are chosen free but not held until sipp binds them: when another process took
        one in between (sipp exits EXIT_BIND_ERROR), start again on new ones, unless they were given."""
        for attempt in range(_BIND_ATTEMPTS):
            if attempt:
                self._pick_ports()
            await self._spawn(ready_timeout)
            assert self._process is not None
            if self._process.returncode != _EXIT_BIND_ERROR or all(self._fixed_ports):
                break
        return self

    async def _spawn(self, ready_timeout: float) -> None:
        self._stderr = (self.workdir / "stderr.log").open("wb")
        self._process = process = await asyncio.create_subprocess_exec(
            "sipp",
            *self.args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,  # the live screen; -trace_screen keeps the final one
            stderr=self._stderr,
            cwd=self.workdir,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ready_timeout
        # sipp binds its SIP socket, then the media ones, then runs: either all are taken or it exits
        while process.returncode is None and not all(
            _udp_port_taken(self.host, port) for port in (self.port, self.media_port)
        ):
            if loop.time() > deadline:
                await self.stop()
                raise TimeoutError(f"sipp did not bind {self.address} within {ready_timeout}s")
            await asyncio.sleep(0.02)
        with contextlib.suppress(TimeoutError):  # a port taken by someone else: sipp exits at once
            await asyncio.wait_for(process.wait(), _BIND_GRACE)
        if process.returncode == _EXIT_BIND_ERROR:
            self._stderr.close()

    async def wait(self, timeout: float | None = None) -> SippResult:
        """Wait for sipp to end by itself (e.g. after -m calls); kill it after `timeout` and say so."""
        if self._result is not None:
            return self._result
        if self._process is None:
            raise RuntimeError("sipp was not started")
        try:
            await asyncio.wait_for(self._process.wait(), timeout or self.timeout + 5)
        except TimeoutError:
            await self._terminate()
        return self._finish()

    async def run(self, timeout: float | None = None) -> SippResult:
        """Start, wait until sipp exits by itself, return the result."""
        await self.start()
        return await self.wait(timeout)

    async def stop(self) -> SippResult:
        """End a background sipp: SIGUSR1 asks for a smooth exit (no new calls), then SIGTERM, SIGKILL."""
        if self._result is not None:
            return self._result
        if self._process is not None and self._process.returncode is None:
            await self._terminate()
        return self._finish()

    async def _terminate(self) -> None:
        assert self._process is not None
        for sig, grace in ((signal.SIGUSR1, 2.0), (signal.SIGTERM, 1.0), (signal.SIGKILL, 5.0)):
            if self._process.returncode is not None:
                return
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(sig)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._process.wait(), grace)

    def _finish(self) -> SippResult:
        assert self._process is not None and self._process.returncode is not None
        if self._stderr is not None:
            self._stderr.close()

        def read(name: str) -> str:
            path = self.workdir / name
            return path.read_text(errors="replace") if path.exists() else ""

        self._result = SippResult(
            returncode=self._process.returncode,
            messages=read("messages.log"),
            errors=read("errors.log"),
            logs=read("logs.log"),
            screen=read("screen.log"),
            stderr=read("stderr.log"),
            workdir=self.workdir,
        )
        return self._result

    async def __aenter__(self) -> Sipp:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


def load_errors(result: SippResult) -> list[str]:
    """What sipp complained about in a `check_loads` run; empty when the scenario loaded and ran."""
    lines = [line for line in result.stderr.splitlines() if re.match(r"\d{4}-\d\d-\d\d\t", line)]
    errors = [line for line in lines if "timed out after" not in line]
    if not errors and len(lines) == 0:  # no error, but no timeout either: it stopped early
        errors.append(f"sipp ended without running until its timeout (exit {result.returncode})")
    return errors


async def check_loads(workdir: Path, scenario: str | Path, **options: object) -> SippResult:
    """Run a scenario for one second against a port where nobody answers. A scenario that loads runs
    until sipp's global timeout; one that does not (bad XML, unknown action, undefined label or
    variable) makes sipp print an error at once: `load_errors(result)` lists what it said."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # swallows whatever a UAC sends
    silent.bind(("127.0.0.1", 0))
    try:
        remote = f"127.0.0.1:{silent.getsockname()[1]}"
        sipp = Sipp(workdir, scenario, remote, timeout=1, calls=1, **options)  # type: ignore[arg-type]
        return await sipp.run(timeout=10)
    finally:
        silent.close()


def _udp_port_taken(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def _free_even_udp_pair(host: str) -> int:
    """An even UDP port p with p to p+3 free now (sipp's -rtp_echo also listens on p+2)."""
    return free_range(4, host)
