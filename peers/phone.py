"""`DeskPhone`: drive the desk phone (`peers.deskphone`, a real pjsua2 phone) from asyncio code.

The phone runs in its own process with ``--control``: commands go to its stdin and events come back on
its stdout as JSON lines. Each phone gets a free SIP port on 127.0.0.1 (or the one given) and records
calls under its work directory (a new temporary one when none is given). The process is always killed on close, even when a test fails half-way.

    async with DeskPhone(tmp_path, user="2001", tone=880) as bob:
        async with DeskPhone(tmp_path, user="2000", tone=440) as alice:
            call = await alice.call(bob.uri)
            await alice.wait_for("state", call=call, state="CONFIRMED")
            await alice.send("dtmf", digits="123")
            await bob.wait_for("dtmf", digit="1")
            await alice.hangup()
            wav = await bob.wait_for_recording()
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from peers.ports import free_port
from peers.scratch import scratch_dir

Event = dict[str, Any]
_counter = itertools.count(1)


class PhoneError(AssertionError):
    """The phone did not do what the test waited for; the message ends with the phone's log."""


class DeskPhone:
    def __init__(
        self,
        workdir: Path | None = None,
        *,
        user: str = "2000",
        host: str = "127.0.0.1",
        port: int | None = None,
        answer: str = "auto",
        answer_delay_ms: int = 0,
        tone: float = 0.0,
        echo: bool = False,
        register: str = "",
        password: str = "",
        domain: str = "",
        codecs: str = "PCMU,PCMA,G722",
        extra_args: tuple[str, ...] = (),
        log_level: int = 3,
    ) -> None:
        self.user = user
        self.host = host
        self._fixed_port = port is not None
        self.port = port or free_port(socket.SOCK_DGRAM, host)
        if workdir is None:
            workdir = scratch_dir("desk-phone-")
        self.workdir = workdir / f"phone-{user}-{next(_counter)}"
        self.record_dir = self.workdir / "recordings"
        self.log_path = self.workdir / "phone.log"
        self.args = [
            "--control",
            f"--user={user}",
            f"--answer={answer}",
            f"--answer-delay={answer_delay_ms}",
            f"--record-dir={self.record_dir}",
            f"--codecs={codecs}",
            f"--rtp-port={random.randrange(20000, 40000, 2)}",  # pjsua moves on if it is taken
            f"--log-level={log_level}",
            *((f"--play-tone={tone}",) if tone else ()),
            *(("--echo",) if echo else ()),
            *((f"--register={register}", f"--password={password}") if register else ()),
            *((f"--domain={domain}",) if domain else ()),
            *extra_args,
        ]
        self.events: list[Event] = []
        self._consumed: set[int] = set()
        self._changed = asyncio.Event()
        self._ids = itertools.count(1)
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._log_file: Any = None

    @property
    def pid(self) -> int | None:
        """The phone process's PID while it runs (a test may kill it to play a phone that died)."""
        return self._process.pid if self._process is not None else None

    @property
    def address(self) -> str:
        """host:port of the phone's SIP socket (a sipp UAC's remote address)."""
        return f"{self.host}:{self.port}"

    @property
    def uri(self) -> str:
        """Where to call this phone directly."""
        return f"sip:{self.user}@{self.address}"

    # --- life cycle ------------------------------------------------------------------------------------
    async def start(self, timeout: float = 10) -> DeskPhone:
        self.record_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            await self._spawn()
            try:
                await self.wait_for("ready", timeout=timeout)
                return self
            except PhoneError:
                # free_port() can race with another process; a port we chose ourselves can be replaced
                taken = any(
                    "already in use" in str(e.get("message")) for e in self.seen("error", cmd="start")
                )
                if not taken or self._fixed_port or attempt == 2:
                    raise
                await self.close()
                self.port = free_port(socket.SOCK_DGRAM, self.host)
                self.events.clear()
                self._consumed.clear()
        raise AssertionError("unreachable")

    async def _spawn(self) -> None:
        self._log_file = self.log_path.open("ab")
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "peers.deskphone",
            f"--listen={self.host}:{self.port}",
            *self.args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._log_file,
            cwd=self.workdir,
        )
        self._reader = asyncio.create_task(self._read_events())

    async def close(self, timeout: float = 5) -> int | None:
        """Ask the phone to quit, then kill it if it has not; idempotent. Returns its exit status."""
        process, self._process = self._process, None
        if process is None:
            return None
        try:
            if process.returncode is None and process.stdin is not None:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    process.stdin.write(b'{"cmd": "quit"}\n')
                    await process.stdin.drain()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), timeout)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            if self._reader is not None:
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await asyncio.wait_for(self._reader, 2)
            if self._log_file is not None:
                self._log_file.close()
        return process.returncode

    async def __aenter__(self) -> DeskPhone:
        try:
            return await self.start()
        except BaseException:
            await self.close()
            raise

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # --- events ----------------------------------------------------------------------------------------
    async def _read_events(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        stdout = self._process.stdout
        while line := await stdout.readline():
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "garbage", "line": line.decode(errors="replace")}
            self.events.append(event)
            self._changed.set()
        self.events.append({"event": "exited"})
        self._changed.set()

    def _find(self, event: str, match: dict[str, Any]) -> Event | None:
        for index, candidate in enumerate(self.events):
            if index in self._consumed or candidate.get("event") != event:
                continue
            if all(_matches(candidate.get(k), v) for k, v in match.items()):
                self._consumed.add(index)
                return candidate
        return None

    async def wait_for(self, event: str, timeout: float = 10, **match: Any) -> Event:
        """The oldest event of this kind not returned before whose fields match (values or predicates).

        ``await phone.wait_for("state", state="CONFIRMED", timeout=10)``; a predicate works too:
        ``await phone.wait_for("registered", code=lambda c: c >= 400)``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = self._find(event, match)
            if found is not None:
                return found
            if self.events and self.events[-1].get("event") == "exited" and event != "exited":
                raise PhoneError(f"phone {self.user} exited while waiting for {event} {match}{self._tail()}")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise PhoneError(f"phone {self.user}: no {event} {match} within {timeout}s{self._tail()}")
            self._changed.clear()
            # asyncio.timeout, not wait_for: Python 3.11's wait_for loses a cancellation that comes as the
            # event is set, and a cancelled waiter would wait on forever
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._changed.wait()

    def seen(self, event: str, **match: Any) -> list[Event]:
        """Every event of this kind received so far that matches (consumed or not)."""
        return [
            e
            for e in self.events
            if e.get("event") == event and all(_matches(e.get(k), v) for k, v in match.items())
        ]

    def _tail(self, lines: int = 40) -> str:
        events = "\n".join(json.dumps(e) for e in self.events[-15:])
        log = ""
        if self.log_path.exists():
            log = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return f"\n--- last events ---\n{events}\n--- end of {self.log_path} ---\n{log}"

    # --- commands --------------------------------------------------------------------------------------
    async def send(self, cmd: str, timeout: float = 5, **fields: Any) -> Event:
        """Send a command and return its "ok" event; a refused command raises PhoneError."""
        if self._process is None or self._process.stdin is None:
            raise PhoneError(f"phone {self.user} is not running")
        command_id = next(self._ids)
        line = json.dumps({"cmd": cmd, "id": command_id, **fields}) + "\n"
        try:
            self._process.stdin.write(line.encode())
            await self._process.stdin.drain()
        except ConnectionError as exc:
            raise PhoneError(f"phone {self.user} is gone ({exc}){self._tail()}") from exc
        reply = await self.wait_for_any(("ok", "error"), timeout=timeout, id=command_id)
        if reply["event"] == "error":
            raise PhoneError(f"phone {self.user} refused {cmd}: {reply.get('message')}")
        return reply

    async def wait_for_any(self, events: tuple[str, ...], timeout: float = 10, **match: Any) -> Event:
        tasks = [asyncio.ensure_future(self.wait_for(e, timeout, **match)) for e in events]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            return next(iter(done)).result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)  # the loser's outcome is not news

    async def call(self, uri: str) -> int:
        """Place a call; returns the phone's number for it (the "call" field of its events)."""
        reply = await self.send("call", uri=uri)
        return int(reply["call"])

    async def hangup(self, call: int | None = None) -> None:
        await self.send("hangup", **({} if call is None else {"call": call}))

    async def rtp(self, call: int | None = None) -> dict[str, Any]:
        """The call's audio counters on the phone: {"received", "sent": RTP packets, "source": "host:port"
        the last packet received came from}."""
        return dict(await self.send("rtp", **({} if call is None else {"call": call})))

    async def wait_for_recording(self, call: int | None = None, timeout: float = 10) -> Path:
        """The WAV file of a call, once the call has ended and the phone has closed the file."""
        event = await self.wait_for("recorded", timeout=timeout, **({} if call is None else {"call": call}))
        return Path(event["path"])


def _matches(value: Any, expected: Any | Callable[[Any], bool]) -> bool:
    return bool(expected(value)) if callable(expected) else bool(value == expected)
