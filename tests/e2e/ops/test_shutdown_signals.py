"""`sip-webrtc-gateway run` stops in time: SIGTERM during 20 connected calls exits within 2 s and every
far end has seen a BYE for its call, whether the far ends answer the BYEs (a sipp UAS) or never do (a
hung or dead phone: the BYEs' retransmissions end with the shutdown deadline)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from peers.demo import ALICE_HASH
from peers.ports import free_port
from peers.sipp import Sipp, SippResult
from peers.web_user import WebUser
from peers.webpeer import WebPeer
from tests.conftest import REPO
from tests.e2e.harness import ALICE_SECRET

CALLS = 20
RTP_START = 37000  # this test's RTP ports (37000-37999)


def gateway_file(
    tmp_path: Path, pbx: str, *, extra_users: list[dict[str, Any]] | None = None
) -> tuple[Path, int]:
    """A gateway.yaml on loopback with alice (who may call any number) and the PBX at `pbx`; its HTTP
    port."""
    http_port = free_port()
    config = {
        "sip": {
            "listen": [{"transport": "udp", "host": "127.0.0.1", "port": free_port(socket.SOCK_DGRAM)}],
            "trusted_sources": ["127.0.0.1/32"],
        },
        "media": {"rtp_ports": {"start": RTP_START + 2 * (os.getpid() % 200), "end": 0}},
        "pbx": {"address": pbx, "domain": "127.0.0.1"},
        "http": {"host": "127.0.0.1", "port": http_port},
        "users": [
            {"id": "alice", "sip": "1001", "allow_outbound": ["."], "web_secret_hash": ALICE_HASH},
            *(extra_users or []),
        ],
        "state_dir": str(tmp_path / "state"),
        # alice's CALLS at once, each holding a SIP pair and a pair per web host address (loopback:
        # 127.0.0.1 and ::1): more than the default quarter of the range a user may hold
        "limits": {"calls_per_user": 2 * CALLS, "unanswered_per_user": 2 * CALLS, "port_share": 1.0},
    }
    rtp = config["media"]["rtp_ports"]  # type: ignore[index]
    rtp["end"] = rtp["start"] + 599
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, http_port


def start_gateway(config: Path, http_port: int, tmp_path: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", "-c", str(config)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "gateway.log", "w"),  # noqa: SIM115 - the child writes it
        text=True,
    )
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, (tmp_path / "gateway.log").read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=1):
                return process
        except OSError:
            assert time.monotonic() < deadline, "the gateway did not start"
            time.sleep(0.1)


def stop_timeline(log: str, signalled: float) -> str:
    """Where a slow stop spent its time: seconds from the SIGTERM to the log's "shutting down" and
    "stopped" lines (the rest is the interpreter's exit)."""
    marks = []
    for mark in ("gateway shutting down", "gateway stopped"):
        found = re.search(rf"^(\S+ \S+) INFO +gateway\.app: {mark}", log, re.MULTILINE)
        if found is not None:
            logged = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            marks.append(f"{mark} at +{logged - signalled:.2f} s")
    return ", ".join(marks) or "no stop logged"


def bye_call_ids(result: SippResult) -> set[str]:
    """The Call-IDs of the BYEs a sipp received (its message trace)."""
    return set(re.findall(r"^\s*BYE sip:.*?^\s*Call-ID:\s*(\S+)", result.messages, re.MULTILINE | re.DOTALL))


@pytest.mark.parametrize("scenario", ["uas_basic_call", "uas_silent_bye"])
async def test_sigterm_during_20_calls_exits_at_once_with_a_bye_to_every_far_end(
    tmp_path: Path, scenario: str
) -> None:
    async with Sipp(tmp_path, scenario, calls=None, rtp_echo=True, auto_answer=True) as far_end:
        config, http_port = gateway_file(tmp_path, far_end.address)
        process = start_gateway(config, http_port, tmp_path)
        peers: list[WebPeer] = []
        try:
            async with WebUser(f"http://127.0.0.1:{http_port}", "alice", ALICE_SECRET) as alice:

                async def place() -> None:
                    peer = WebPeer(1000)
                    peers.append(peer)
                    call_id = await alice.call("2000", await peer.offer())
                    await peer.accept((await alice.wait_for("connected", call_id=call_id, timeout=30))["sdp"])

                await asyncio.gather(*(place() for _ in range(CALLS)))
                await asyncio.sleep(1)  # media flowing on every call
                started, signalled = time.monotonic(), time.time()
                process.send_signal(signal.SIGTERM)
                returncode = await asyncio.to_thread(process.wait, 10)
                took = time.monotonic() - started
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            for peer in peers:
                await peer.close()
        log = (tmp_path / "gateway.log").read_text()
        assert returncode == 0, log[-3000:]
        # By design 2 s (gateway/app.py SHUTDOWN_TIMEOUT 1.5 s, then the teardown): 1.7-1.8 s at load 8.
        # The interpreter's exit once walked the whole heap, 3.4-5.3 s in all at load 6-9 (gc.freeze() in
        # gateway/cli_run.py). The test allows 5 s: it is here to catch a stop that waits for transactions
        # or a drain (30 s), or an exit that walks the heap again; the message says which phase was slow.
        assert took < 5.0, f"exit took {took:.2f} s ({stop_timeline(log, signalled)})\n{log[-3000:]}"
        assert "Traceback" not in log, log[-3000:]
        result = await far_end.stop()
    assert len(bye_call_ids(result)) == CALLS, result


async def test_a_bye_cut_by_the_shutdown_says_so(tmp_path: Path) -> None:
    """Issue 67 item 13: Ctrl-C during a call whose far end had just gone (the demo's desk phone stops
    with the gateway) logged "udp ...:5070 did not answer: tried last for 60 s" and "BYE failed" after
    0.5 s: a shutdown tries no hop later, and its log says the BYE was not answered before it."""
    async with Sipp(tmp_path, "uas_basic_call", calls=None, rtp_echo=True, auto_answer=True) as far_end:
        config, http_port = gateway_file(tmp_path, far_end.address)
        process = start_gateway(config, http_port, tmp_path)
        peer = WebPeer(1000)
        try:
            async with WebUser(f"http://127.0.0.1:{http_port}", "alice", ALICE_SECRET) as alice:
                call_id = await alice.call("2000", await peer.offer())
                await peer.accept((await alice.wait_for("connected", call_id=call_id, timeout=30))["sdp"])
                await far_end.stop()  # the far end is gone: the BYE gets ICMP port unreachable
                process.send_signal(signal.SIGINT)
                returncode = await asyncio.to_thread(process.wait, 10)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            await peer.close()
    log = (tmp_path / "gateway.log").read_text()
    assert returncode == 0, log[-3000:]
    assert "tried last for" not in log and "BYE failed" not in log, log[-3000:]
    host, port = far_end.address.rsplit(":", 1)
    said = (
        f"BYE to UDP {host}:{port} not answered before the shutdown (transport error: Destination Unreachable"
    )
    assert said in log, log[-3000:]
