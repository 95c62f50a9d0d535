"""The demo desk phone (examples/desk_phone.py, pjsua2) stops cleanly on Ctrl-C during a call: it hangs
up, exits 0, and never dies on pjsua's `pjsua_call_set_user_data` assertion (a Call object deleted after
libDestroy used to abort the process)."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from peers.demo import require_desk_phone
from peers.ports import free_port
from peers.sipp import Sipp
from tests.conftest import REPO


async def test_ctrl_c_during_a_call_exits_cleanly(tmp_path: Path) -> None:
    require_desk_phone()
    port = free_port(socket.SOCK_DGRAM)
    out, err = tmp_path / "phone.out", tmp_path / "phone.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        phone = subprocess.Popen(
            [sys.executable, "examples/desk_phone.py", "--listen", f"127.0.0.1:{port}", "--user", "2000",
             "--play-tone", "440"],
            cwd=REPO, stdin=subprocess.PIPE, stdout=stdout, stderr=stderr,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while "listening on" not in out.read_text():
            assert phone.poll() is None and time.monotonic() < deadline, err.read_text()[-2000:]
            await asyncio.sleep(0.1)
        async with Sipp(tmp_path, "uac_basic_call", f"127.0.0.1:{port}", service="2000", duration_ms=20000):
            while "CONFIRMED" not in out.read_text():
                assert phone.poll() is None and time.monotonic() < deadline, err.read_text()[-2000:]
                await asyncio.sleep(0.1)
            phone.send_signal(signal.SIGINT)
            returncode = await asyncio.to_thread(phone.wait, 10)
    finally:
        if phone.poll() is None:
            phone.kill()
            phone.wait()
    assert "Assertion" not in err.read_text(), err.read_text()[-2000:]
    assert returncode == 0, err.read_text()[-2000:]
    assert "DISCONNECTED" in out.read_text() and "phone stopped" in out.read_text(), out.read_text()
