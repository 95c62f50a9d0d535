"""Safe defaults (issue 32 item 12): `check` and `run` refuse demo secrets, a missing session_secret and an
open /metrics once a listener binds beyond loopback, unless `--insecure-lab`; the container's default
(the sample config with the Dockerfile's environment) refuses to serve; dev-certs/ is ignored by git."""

from __future__ import annotations

import base64
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from gateway.config.exposure import is_loopback
from gateway.identity.passwords import HashAlgorithm, hash_secret
from peers.ports import free_port
from tests.conftest import REPO
from tests.e2e.harness import BOB_HASH

DEMO_PROBLEMS = (
    "users[0] (alice).web_secret_hash: is a demo secret",
    "users[1] (bob).web_secret_hash: is a demo secret",
    "web_auth.session_secret: not set",
    "metrics.token: not set, so /metrics is open",
)


def _env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return {
        **env,
        "GATEWAY_STATE_DIR": str(tmp_path / "state"),
        "GATEWAY_SIP__LISTEN__0__PORT": str(free_port(socket.SOCK_DGRAM)),
        "GATEWAY_SIP__LISTEN__1__PORT": str(free_port()),
        **overrides,
    }


def _gateway(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7", "gw.example.org"])
def test_hosts_beyond_loopback_are_told_apart(host: str) -> None:
    assert not is_loopback(host)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.3", "::1", "localhost"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


def test_check_refuses_the_demo_config_on_all_addresses_naming_each_problem(tmp_path: Path) -> None:
    result = _gateway(_env(tmp_path, GATEWAY_HTTP__HOST="0.0.0.0"), "check", "-c", str(REPO / "gateway.yaml"))
    assert result.returncode == 1, result.stdout
    assert "refused: unsafe to listen beyond loopback (http 0.0.0.0:8080)" in result.stderr
    for problem in DEMO_PROBLEMS:
        assert problem in result.stderr, (problem, result.stderr)
    assert "--insecure-lab" in result.stderr
    assert "configuration OK" not in result.stdout
    assert "Traceback" not in result.stderr


def test_a_sip_listener_beyond_loopback_counts_too(tmp_path: Path) -> None:
    env = _env(tmp_path, GATEWAY_SIP__LISTEN__1__HOST="0.0.0.0")
    result = _gateway(env, "check", "-c", str(REPO / "gateway.yaml"))
    assert result.returncode == 1
    assert re.search(r"sip\.listen\[1\] \(tcp\) 0\.0\.0\.0:\d+", result.stderr), result.stderr


def test_check_with_the_override_passes_with_a_warning(tmp_path: Path) -> None:
    env = _env(tmp_path, GATEWAY_HTTP__HOST="0.0.0.0")
    result = _gateway(env, "check", "--insecure-lab", "-c", str(REPO / "gateway.yaml"))
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout
    assert "WARNING (--insecure-lab)" in result.stderr
    for problem in DEMO_PROBLEMS:
        assert problem in result.stderr


def test_the_loopback_demo_config_passes(tmp_path: Path) -> None:
    result = _gateway(_env(tmp_path), "check", "-c", str(REPO / "gateway.yaml"))
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr and "refused" not in result.stderr


def test_a_hardened_config_on_all_addresses_passes(tmp_path: Path) -> None:
    digest = hash_secret("a long secret nobody published", HashAlgorithm.PBKDF2_SHA256)
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "sip: {listen: [{transport: udp, port: 5060}, {transport: tcp, port: 5060}]}\n"
        "http: {host: 0.0.0.0, port: 8080}\n"
        "web_auth: {session_secret: {env: SESSION_SECRET}}\n"
        "metrics: {token: {env: METRICS_TOKEN}}\n"
        f'users:\n  - {{id: carol, sip: "sip:1003@pbx.example.org", web_secret_hash: "{digest}"}}\n'
    )
    env = _env(tmp_path, SESSION_SECRET="s" * 32, METRICS_TOKEN="m" * 24)
    result = _gateway(env, "check", "-c", str(config))
    assert result.returncode == 0, result.stderr
    # metrics on a loopback listener of its own needs no token
    config.write_text(
        config.read_text().replace("{token: {env: METRICS_TOKEN}}", '{listen: "127.0.0.1:9100"}')
    )
    assert _gateway(env, "check", "-c", str(config)).returncode == 0
    # a demo password re-hashed with a new salt is still the demo password
    config.write_text(config.read_text().replace(str(digest), str(hash_secret("bob-demo"))))
    refused = _gateway(env, "check", "-c", str(config))
    assert refused.returncode == 1 and "users[0] (carol).web_secret_hash: is a demo secret" in refused.stderr


def test_an_inline_cluster_secret_is_refused_beyond_loopback(tmp_path: Path) -> None:
    digest = hash_secret("a long secret nobody published", HashAlgorithm.PBKDF2_SHA256)
    config = tmp_path / "gateway.yaml"
    cluster = (
        "cluster: {redis: 'redis://10.0.0.5:6379/0', instance_id: gw1, secret: SECRET,"
        " advertise: {sip: '10.0.0.11:5060', http: 'http://10.0.0.11:8080'}}\n"
    )
    config.write_text(
        "sip: {listen: [{transport: udp, host: 0.0.0.0, port: 5060}, {transport: tcp, port: 5060}]}\n"
        "web_auth: {session_secret: {env: SESSION_SECRET}}\n"
        "metrics: {enabled: false}\n"
        f'users:\n  - {{id: carol, sip: "sip:1003@pbx.example.org", web_secret_hash: "{digest}"}}\n'
        + cluster.replace("SECRET", "an-inline-cluster-secret-0123")
    )
    env = _env(tmp_path, SESSION_SECRET="s" * 32, CLUSTER_SECRET="c" * 32)
    refused = _gateway(env, "check", "-c", str(config))
    assert refused.returncode == 1
    assert "cluster.secret: written in the file" in refused.stderr, refused.stderr
    config.write_text(config.read_text().replace("an-inline-cluster-secret-0123", "{env: CLUSTER_SECRET}"))
    accepted = _gateway(env, "check", "-c", str(config))
    assert accepted.returncode == 0, accepted.stderr


def _dockerfile_env() -> dict[str, str]:
    """The ENV of the Dockerfile's runtime stage."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    found: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            found.update(re.findall(r"(\w+)=(\S+)", line))
    return found


def test_the_container_default_refuses_to_serve_the_demo_on_all_addresses(tmp_path: Path) -> None:
    """The image's CMD (`run`) with the sample it installs and the Dockerfile's own environment, as a
    container started with no config mounted: exit 1 with a message saying what to mount; nothing
    listens."""
    text = (REPO / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["sip-webrtc-gateway"]' in text and 'CMD ["run"]' in text
    assert "sip-webrtc-gateway init /etc/sip-webrtc-gateway/gateway.yaml" in text
    docker = _dockerfile_env()
    assert docker["GATEWAY_HTTP__HOST"] == "0.0.0.0"
    sample = tmp_path / "gateway.yaml"
    assert _gateway(_env(tmp_path), "init", str(sample)).returncode == 0
    port = free_port()
    env = _env(tmp_path, GATEWAY_HTTP__HOST=docker["GATEWAY_HTTP__HOST"], GATEWAY_HTTP__PORT=str(port),
               GATEWAY_CONFIG=str(sample))  # fmt: skip
    result = _gateway(env, "run")
    assert result.returncode == 1
    assert "refusing to start: unsafe to listen beyond loopback" in result.stderr
    assert "mount your own gateway.yaml over /etc/sip-webrtc-gateway/gateway.yaml" in result.stderr
    for problem in DEMO_PROBLEMS:
        assert problem in result.stderr
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)


def _free_on_all_addresses() -> int:
    """A TCP port free on every address (free_port checks loopback only; 0.0.0.0 collides with any)."""
    with socket.socket() as probe:
        probe.bind(("0.0.0.0", 0))
        port: int = probe.getsockname()[1]
        return port


def test_run_with_the_override_serves_and_warns(tmp_path: Path) -> None:
    port = _free_on_all_addresses()
    env = _env(tmp_path, GATEWAY_HTTP__HOST="0.0.0.0", GATEWAY_HTTP__PORT=str(port))
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", "--insecure-lab", "-c", str(REPO / "gateway.yaml")],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()[1]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                    assert response.status == 200
                    break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "the gateway never answered /healthz"
                time.sleep(0.2)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert "INSECURE LAB (--insecure-lab)" in stderr
    assert "web_auth.session_secret: not set" in stderr


def test_a_reload_adding_a_demo_user_beyond_loopback_is_refused(tmp_path: Path) -> None:
    """SIGHUP with the demo bob added to a gateway serving on all addresses: nothing changes, the log
    says why, bob's published secret logs nobody in; carol (her own secret) still can."""
    carol = "carol's own long secret"
    port, log = _free_on_all_addresses(), tmp_path / "gateway.log"
    config = tmp_path / "gateway.yaml"
    users = f'users:\n  - {{id: carol, sip: "sip:1003@127.0.0.1", web_secret_hash: "{hash_secret(carol)}"}}\n'
    config.write_text(
        f"sip: {{listen: [{{transport: udp, host: 127.0.0.1, port: {free_port(socket.SOCK_DGRAM)}}}]}}\n"
        f"http: {{host: 0.0.0.0, port: {port}}}\n"
        "web_auth: {session_secret: {env: SESSION_SECRET}}\n"
        "metrics: {enabled: false}\n"
        f"state_dir: {tmp_path / 'state'}\n" + users
    )
    env = {
        **_env(tmp_path, SESSION_SECRET="s" * 32),
        "GATEWAY_SIP__LISTEN__0__PORT": str(free_port(socket.SOCK_DGRAM)),
    }
    env.pop("GATEWAY_SIP__LISTEN__1__PORT")
    with log.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", "-c", str(config)], cwd=REPO, env=env,
            stdout=subprocess.DEVNULL, stderr=err, text=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def status(user: str, secret: str) -> int:
        token = base64.b64encode(f"{user}:{secret}".encode()).decode()
        request = urllib.request.Request(base + "/contacts", headers={"Authorization": f"Basic {token}"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the gateway never answered /healthz"
                time.sleep(0.2)
        assert status("carol", carol) == 200
        demo_bob = f'  - {{id: bob, sip: "sip:1002@127.0.0.1", web_secret_hash: "{BOB_HASH}"}}\n'
        config.write_text(config.read_text() + demo_bob)
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while "refused beyond loopback" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.1)
        assert "users[1] (bob).web_secret_hash: is a demo secret" in log.read_text()
        assert status("bob", "bob-demo") == 401
        assert status("carol", carol) == 200
    finally:
        process.terminate()
        process.wait(30)
    assert "Traceback" not in log.read_text()


def test_dev_certs_are_ignored_by_git() -> None:
    result = subprocess.run(
        ["git", "check-ignore", "-q", "dev-certs/dev-ca-key.pem"], cwd=REPO, capture_output=True, timeout=30
    )
    assert result.returncode == 0, "dev-certs/ (the dev CA's private key) must be in .gitignore"
