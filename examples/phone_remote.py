"""Drive the desk phone (examples/desk_phone.py) from another process, for examples 04 and 05.

The phone runs in its own process (pjsua2 wants its own thread and at most 4 calls); this talks to it
over the JSON lines of its --control mode. The test suite has a fuller wrapper in tests/peers/phone.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Phone:
    """The desk phone in its own process, driven by JSON lines (--control)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, port: int, *args: str) -> Phone:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(HERE / "desk_phone.py"), "--control", f"--listen=127.0.0.1:{port}",
            "--user=2000", "--play-tone=440", *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        phone = cls(process)
        await phone.wait_for("ready")
        return phone

    async def wait_for(self, name: str, timeout: float = 10, **match: Any) -> dict[str, Any]:
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while line := await self.process.stdout.readline():
                event = json.loads(line)
                if event.get("event") == name and all(event.get(k) == v for k, v in match.items()):
                    return dict(event)
        raise RuntimeError(f"the phone stopped before {name}")

    async def send(self, cmd: str, **fields: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"cmd": cmd, **fields}).encode() + b"\n")
        await self.process.stdin.drain()

    async def stop(self) -> None:
        if self.process.returncode is None and self.process.stdin is not None:
            with contextlib.suppress(ConnectionError):
                self.process.stdin.write(b'{"cmd": "quit"}\n')
                await self.process.stdin.drain()
            try:
                await asyncio.wait_for(self.process.wait(), 5)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
