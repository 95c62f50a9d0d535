"""`sip-webrtc-gateway run` starts from the shipped gateway.yaml, answers /healthz, and stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from gateway.cli_run import browser_urls
from gateway.config.exposure import OVERRIDE
from gateway.devcert import make_dev_certificates
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


def _start(tmp_path: Path, http_port: int, *args: str, **extra: str) -> subprocess.Popen[str]:
    """`run` with the shipped gateway.yaml on free ports and a state directory of the test's own;
    ``extra``: more environment overrides."""
    env = {
        **os.environ,
        "GATEWAY_HTTP__HOST": "127.0.0.1",
        "GATEWAY_HTTP__PORT": str(http_port),
        # gateway.yaml listens on 5060 (UDP and TCP); a test must not depend on that port being free.
        "GATEWAY_SIP__LISTEN__0__PORT": str(free_port(socket.SOCK_DGRAM)),
        "GATEWAY_SIP__LISTEN__1__PORT": str(free_port()),
        "GATEWAY_STATE_DIR": str(tmp_path / "state"),  # not the checkout's ./state
        **extra,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", "-c", str(REPO / "gateway.yaml"), *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(process: subprocess.Popen[str]) -> str:
    """SIGTERM; the gateway's stderr, once it exited 0 (killed if it does not exit)."""
    process.send_signal(signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    return stderr


def test_run_serves_healthz_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    process = _start(tmp_path, port)
    try:
        health = _wait_for_health(f"http://127.0.0.1:{port}/healthz", process)
        assert health["status"] == "ok"
        assert "sip" in health
        assert isinstance(health["uptime_s"], float | int)
    finally:
        stderr = _stop(process)
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


def _run_with(env_overrides: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GATEWAY_STATE_DIR": str(tmp_path / "state"), **env_overrides}
    return subprocess.run(
        [sys.executable, "-m", "gateway", "run", "-c", str(REPO / "gateway.yaml")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_taken_port_is_named_without_a_traceback(tmp_path: Path) -> None:
    """The SIP UDP port, then the HTTP port, taken by another socket: one line naming the listener,
    its address and the reason; exit 1."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        result = _run_with(
            {
                "GATEWAY_HTTP__PORT": str(free_port()),
                "GATEWAY_SIP__LISTEN__0__PORT": str(port),
                "GATEWAY_SIP__LISTEN__1__PORT": str(free_port()),
            },
            tmp_path,
        )
    assert result.returncode == 1, result.stderr
    assert f"cannot start: SIP udp 127.0.0.1:{port}: address already in use" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert "gateway ready" not in result.stderr
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run_with({"GATEWAY_HTTP__PORT": str(port)}, tmp_path)
    assert result.returncode == 1, result.stderr
    assert f"cannot start: HTTP 127.0.0.1:{port}: address already in use" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_the_ready_file_and_banner_come_once_the_gateway_listens(tmp_path: Path) -> None:
    port = free_port()
    ready = tmp_path / "ready"
    udp, tcp = str(free_port(socket.SOCK_DGRAM)), str(free_port())
    ports = {"GATEWAY_SIP__LISTEN__0__PORT": udp, "GATEWAY_SIP__LISTEN__1__PORT": tcp}
    process = _start(tmp_path, port, "--ready-file", str(ready), **ports)
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() or not ready.read_text():
            assert process.poll() is None and time.monotonic() < deadline, "no ready file"
            time.sleep(0.05)
        url, login = ready.read_text().splitlines()  # what scripts/demo's banner prints
        assert url == f"http://127.0.0.1:{port}/"
        assert login == "log in as alice / alice-demo"
        with urllib.request.urlopen(url + "healthz", timeout=2) as response:  # listening already
            assert response.status == 200
    finally:
        stderr = _stop(process)
    assert stderr.index("HTTP listening") < stderr.index(f"gateway ready: open {url} in a browser"), stderr
    # every SIP listener named by its own transport (issue 33: the TLS port was called "udp")
    banner = next(line for line in stderr.splitlines() if "gateway ready" in line)
    assert f"SIP on udp 127.0.0.1:{udp}, tcp 127.0.0.1:{tcp}" in banner, banner


def test_the_banner_names_what_the_certificate_holds_on_a_wildcard(tmp_path: Path) -> None:
    """Issue 39: on 0.0.0.0 with HTTPS the banner said https://0.0.0.0:8443/, which fails the
    certificate's name check; it names the certificate's own names, each of which opens the page."""
    certificates = make_dev_certificates(tmp_path / "certs", ["localhost", "127.0.0.1"])
    port = free_port()
    tls = {
        "GATEWAY_HTTP__TLS__CERTIFICATE": str(certificates.certificate),
        "GATEWAY_HTTP__TLS__PRIVATE_KEY": str(certificates.private_key),
    }
    process = _start(tmp_path, port, OVERRIDE, GATEWAY_HTTP__HOST="0.0.0.0", **tls)
    try:
        context = ssl.create_default_context(cafile=str(certificates.ca))
        deadline = time.monotonic() + 30
        while True:  # the page opens by the name the banner gives
            try:
                with urllib.request.urlopen(
                    f"https://localhost:{port}/healthz", timeout=2, context=context
                ) as reply:
                    assert reply.status == 200
                    break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "not serving"
                time.sleep(0.1)
    finally:
        stderr = _stop(process)
    banner = next(line for line in stderr.splitlines() if "gateway ready" in line)
    assert f"open https://localhost:{port}/ (or https://127.0.0.1:{port}/) in a browser" in banner, banner
    assert "0.0.0.0" not in banner


def test_browser_urls() -> None:
    assert browser_urls("http://127.0.0.1:8080", None) == ["http://127.0.0.1:8080/"]
    assert browser_urls("http://0.0.0.0:8080", None) == ["http://127.0.0.1:8080/"]
    assert browser_urls("https://[::]:8443", "/nonexistent.pem") == ["https://[::]:8443/"]  # no names: as is
