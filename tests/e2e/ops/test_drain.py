"""A single gateway (no `cluster:`) drained by SIGUSR1, as a process (`python -m gateway run`): every
socket without a call is closed at once with 1012 (Service Restart) so that a restart behind any proxy
moves its users at once, the others are kept, new upgrades get 503, /readyz 503, and the gateway keeps
running until it is stopped.

- closed with 1012: alice's `/ws` session (idle), a JSON-RPC peer, a rooms peer alone in its room, and a
  SIP-over-WebSocket flow with a registration (its binding gone with it);
- kept: two rooms peers in one room (a conversation the drain must not cut) until one leaves: the other
  is then alone, and closed with 1012 too;
- refused with 503: new `/ws`, `/jsonrpc`, rooms and SIP WebSocket upgrades.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import yaml

from peers.demo import ALICE_HASH
from peers.ports import free_port
from peers.web_user import WebUser
from tests.conftest import REPO
from tests.e2e.harness import ALICE_SECRET
from tests.e2e.websip.test_sip_websocket import ALICE_SIP_PASSWORD, SipSocket

RTP_START = 43800  # this test's RTP ports (43800-43999)


def start_gateway(tmp_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The gateway as a process with SIP over WebSocket and anonymous rooms; its HTTP URL."""
    http_port = free_port()
    config = {
        "sip": {
            "listen": [{"transport": "udp", "host": "127.0.0.1", "port": free_port(socket.SOCK_DGRAM)}],
            "websocket": {},
        },
        "media": {"rtp_ports": {"start": RTP_START, "end": RTP_START + 199}},
        "pbx": {"domain": "127.0.0.1"},
        "http": {"host": "127.0.0.1", "port": http_port},
        "rooms": {"allow_anonymous": True, "rules": [{"room": "*", "public": True}]},  # a lab's open rooms
        "users": [
            {
                "id": "alice",
                "sip": "1001",
                "allow_outbound": ["."],
                "web_secret_hash": ALICE_HASH,
                "sip_auth": {"password": ALICE_SIP_PASSWORD},
            }
        ],
        "state_dir": str(tmp_path / "state"),
    }
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    ready = tmp_path / "ready"
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", "-c", str(path), "--ready-file", str(ready)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "gateway.log", "wb"),  # noqa: SIM115 - the child writes it
    )
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert process.poll() is None, (tmp_path / "gateway.log").read_text()
        assert time.monotonic() < deadline, "the gateway did not start"
        time.sleep(0.1)
    return process, f"http://127.0.0.1:{http_port}"


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


async def closed_with(ws: aiohttp.ClientWebSocketResponse, timeout: float = 3.0) -> int | None:
    """Read until the server's close frame; its code (aiohttp's own close_code can say 1006 when its
    close handshake after the frame is cut short, as under load)."""
    async with asyncio.timeout(timeout):
        while True:
            message = await ws.receive()
            if message.type is aiohttp.WSMsgType.CLOSE:
                return int(message.data)
            if message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.ERROR):
                return ws.close_code


async def joined(ws: aiohttp.ClientWebSocketResponse) -> None:
    while True:
        message = json.loads(await asyncio.wait_for(ws.receive_str(), 5))
        if message.get("type") == "joined":
            return


async def test_sigusr1_closes_the_sockets_without_a_call_with_1012(tmp_path: Path) -> None:
    process, url = start_gateway(tmp_path)
    ws_url = url.replace("http", "ws", 1)
    try:
        async with (
            WebUser(url, "alice", ALICE_SECRET) as alice,
            aiohttp.ClientSession() as http,
            http.ws_connect(f"{ws_url}/jsonrpc?token={alice.token}") as rpc,
            http.ws_connect(f"{ws_url}/webrtc/signaling/lonely/p1") as lonely,
            http.ws_connect(f"{ws_url}/webrtc/signaling/pair/p1") as first,
            http.ws_connect(f"{ws_url}/webrtc/signaling/pair/p2") as second,
            http.ws_connect(f"{ws_url}/sip", protocols=("sip",)) as sip_ws,
        ):
            for room_socket in (lonely, first, second):
                await joined(room_socket)
            sip = SipSocket(sip_ws)
            _, registered = await sip.register("alice", ALICE_SIP_PASSWORD, "127.0.0.1")
            assert registered.startswith("SIP/2.0 200 "), registered

            process.send_signal(signal.SIGUSR1)
            closed = await alice.wait_for("closed", timeout=3)
            assert closed["code"] == 1012, closed
            codes = await asyncio.gather(closed_with(rpc), closed_with(lonely), closed_with(sip_ws))
            assert codes == [1012, 1012, 1012], codes
            assert status_of(f"{url}/readyz") == 503

            # new upgrades are refused: a proxy retries them elsewhere
            for path, protocols in (
                ("/ws", ()),
                ("/jsonrpc", ()),
                ("/webrtc/signaling/r/p", ()),
                ("/sip", ("sip",)),
            ):
                try:
                    async with http.ws_connect(ws_url + path, protocols=protocols):
                        raise AssertionError(f"{path}: upgraded while draining")
                except aiohttp.WSServerHandshakeError as exc:
                    assert exc.status == 503, (path, exc)

            # the pair's conversation is not cut... until one leaves: the other is alone, then closed
            await asyncio.sleep(0.5)
            assert not first.closed and not second.closed
            await second.close()
            assert await closed_with(first) == 1012
            assert process.poll() is None  # alone, a drained gateway keeps running until it is stopped
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            returncode = await asyncio.to_thread(process.wait, 10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
    log = (tmp_path / "gateway.log").read_text()
    assert returncode == 0 and "Traceback" not in log, log[-3000:]
    assert "draining: 1 SIP WebSocket flows without a call closed (1012)" in log, log[-3000:]
