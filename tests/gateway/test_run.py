"""`sip-webrtc-gateway run` starts from the shipped gateway.yaml, answers /healthz, and stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from peers.ports import free_port
from tests.conftest import REPO


def _get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=2) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("application/json")
        body: dict[str, object] = json.loads(response.read())
        return body


def _wait_for_health(url: str, process: subprocess.Popen[str], deadline_s: float = 30.0) -> dict[str, object]:
    deadline = time.monotonic() + deadline_s
    while True:
        if process.poll() is not None:
            raise AssertionError(f"gateway exited early with {process.returncode}")
        try:
            return _get_json(url)
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_run_serves_healthz_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "GATEWAY_HTTP__HOST": "127.0.0.1",
        "GATEWAY_HTTP__PORT": str(port),
        # gateway.yaml listens on 5060 (UDP and TCP); a test must not depend on that port being free.
        "GATEWAY_SIP__LISTEN__0__PORT": str(free_port(socket.SOCK_DGRAM)),
        "GATEWAY_SIP__LISTEN__1__PORT": str(free_port()),
        "GATEWAY_STATE_DIR": str(tmp_path / "state"),  # not the checkout's ./state
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", "-c", str(REPO / "gateway.yaml")],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        health = _wait_for_health(f"http://127.0.0.1:{port}/healthz", process)
        assert health["status"] == "ok"
        assert "sip" in health
        assert isinstance(health["uptime_s"], float | int)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert "gateway stopped" in stderr


def test_run_reports_a_bad_config_and_exits_1(tmp_path: object) -> None:
    from pathlib import Path

    bad = Path(str(tmp_path)) / "bad.yaml"
    bad.write_text("http:\n  prot: 8080\n")
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "run", "-c", str(bad)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "http.prot: unknown key" in result.stderr


def test_run_reports_a_missing_file(tmp_path: object) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "run", "-c", f"{tmp_path}/nope.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "nope.yaml" in result.stderr
