"""The demo terminal (issue 36 item 10): `make run`'s script (scripts/demo) on moved ports, driven as a
person drives it. The web user sees "Busy" for 2001 (the demo's busy line) and "No such number" for any
number but 2000; `call 1001` typed at the phone rings alice; `help` lists the commands and a mistyped one
answers in one line; Ctrl-C stops both and exits 0 (and `make run` execs the script, so make prints no
"*** Interrupt"); `quit` at the phone ends the whole demo and says so."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from peers.demo import ALICE_SECRET, require_desk_phone
from peers.ports import free_port, free_range
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.conftest import REPO


class Demo:
    """scripts/demo in its own session on free ports; its terminal a pipe in and a file out."""

    def __init__(self, tmp_path: Path) -> None:
        http, self.sip = free_port(), free_port(socket.SOCK_DGRAM)
        rtp = free_range()
        env = {
            **os.environ,
            "BIN": str(Path(sys.executable).parent),
            "GATEWAY_HTTP__PORT": str(http),
            "GATEWAY_SIP__LISTEN__0__PORT": str(self.sip),
            "GATEWAY_SIP__LISTEN__1__PORT": str(free_port()),
            "GATEWAY_MEDIA__RTP_PORTS__START": str(rtp),
            "GATEWAY_MEDIA__RTP_PORTS__END": str(rtp + 100),
            "DEMO_PHONE_PORT": str(free_port(socket.SOCK_DGRAM)),
            "GATEWAY_STATE_DIR": str(tmp_path / "state"),
        }
        self.base = f"http://127.0.0.1:{http}"
        self.log = tmp_path / "demo.out"
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [str(REPO / "scripts" / "demo")], cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=out,
                stderr=subprocess.STDOUT, text=True, start_new_session=True,
            )  # fmt: skip

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            assert self.process.poll() is None or text in self.output(), self.output()[-3000:]
            assert time.monotonic() < deadline, f"no {text!r} in:\n{self.output()[-3000:]}"
            await asyncio.sleep(0.1)

    def type(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    async def exit_status(self, timeout: float = 30) -> int:
        return await asyncio.to_thread(self.process.wait, timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


async def test_busy_and_unknown_numbers_reach_the_page_and_1001_rings_alice(tmp_path: Path) -> None:
    require_desk_phone()
    demo = Demo(tmp_path)
    try:
        await demo.wait_for("Demo: open")  # the phone listened before the gateway began
        async with WebUser(demo.base, "alice", ALICE_SECRET) as alice:
            for number, reason, message in (
                ("2001", "busy", "Busy"),
                ("2099", "no_such_number", "No such number"),
            ):
                peer = WebPeer()
                try:
                    call_id = await alice.call(number, await peer.offer())
                    ended = await alice.wait_for("ended", call_id=call_id)
                finally:
                    await peer.close()
                assert (ended["reason"], ended.get("message")) == (reason, message), ended
            demo.type("help")
            demo.type("call 1001")  # a bare number: the phone dials it at the gateway (--dial-domain)
            incoming = await alice.wait_for("incoming")
            demo.type("bogus")
            demo.type("hangup")
            await alice.wait_for("ended", call_id=incoming["call_id"])
        await demo.wait_for("unknown command 'bogus' (type help for the list)")
        os.killpg(demo.process.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole group
        status = await demo.exit_status()
    finally:
        demo.kill()
    output = demo.output()
    assert status == 0, output[-3000:]  # not 130: make would report "Error 130"
    assert "quit                   stop this phone (under `make run`: the whole demo" in output, output
    assert re.search(rf"ok cmd=call call=\d+ uri=sip:1001@127.0.0.1:{demo.sip}\n", output), output[-3000:]
    # the whole group gets the SIGINT: the script's trap says "demo stopped", or, when a child's own exit
    # reaches the script's `wait -n` first, the path of the one that ended first says it stops the other
    # (the gateway's exit, 0.1 s with no call, won that race in a series); exit 0 each way
    stopped = (
        "demo stopped (gateway and desk phone)",
        "the desk phone quit: stopping the gateway too",
        "the gateway stopped (status 0): stopping the desk phone",
    )
    assert any(s in output for s in stopped) and "gateway.app: gateway stopped" in output, output[-3000:]
    assert "phone stopped" in output and "Traceback" not in output, output[-3000:]


async def test_quit_at_the_phone_ends_the_demo_and_says_so(tmp_path: Path) -> None:
    require_desk_phone()
    demo = Demo(tmp_path)
    try:
        await demo.wait_for("Demo: open")
        demo.type("quit")
        status = await demo.exit_status()
    finally:
        demo.kill()
    output = demo.output()
    assert status == 0, output[-3000:]
    assert "the desk phone quit: stopping the gateway too" in output, output[-3000:]
    assert "gateway stopped" in output, output[-3000:]


def test_make_run_execs_the_demo_so_a_ctrl_c_it_handles_is_clean() -> None:
    """make prints "*** [Makefile:N: run] Interrupt" when its child dies of SIGINT; with a shell between
    make and the script (`VAR=x scripts/demo` runs under /bin/sh) that shell dies so, whatever the
    script's own exit status."""
    recipe = (REPO / "Makefile").read_text().split("\nrun:", 1)[1].split("\n\n", 1)[0]
    assert "exec scripts/demo" in recipe, recipe
