"""`make run`'s script (scripts/demo) with every port moved as the README's "Ports" table says: the
gateway serves on the moved HTTP port, the demo desk phone answers on its moved port (DEMO_PHONE_PORT,
which moves the gateway's pbx.address with it), and the PBX keep-alive finds it at once: /readyz is
ready and /healthz never says "unreachable" while the phone starts (issue 36: the demo opened with a
false "phone system unreachable" for 35 s), then "reachable" within a few seconds. Its banner names a
URL the browser opens and the logins in effect, over HTTP and over the README's HTTPS recipe (issue 67
item 10: it said https://0.0.0.0:PORT/ and alice-demo after the recipe had replaced that secret)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.devcert import make_dev_certificates
from gateway.identity.passwords import hash_secret
from peers.demo import require_desk_phone
from peers.ports import free_port, free_range
from tests.conftest import REPO


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def readme_port_variables() -> set[str]:
    """The variables the README's "Ports" table says move each port."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    table = text[text.index("### Ports") :].split("\n\n", 2)[1]
    return set(re.findall(r"`((?:GATEWAY|DEMO)_[A-Z0-9_]+)`", table))


class PortTaken(Exception):
    """Another process (a test beside this one) took a port between free_port() and the demo's bind."""


def test_the_demo_runs_on_moved_ports_and_finds_its_phone_at_once(tmp_path: Path) -> None:
    require_desk_phone()
    for attempt in range(3):  # fresh ports when one was taken meanwhile
        try:
            _demo_on_moved_ports(tmp_path / f"try{attempt}")
            return
        except PortTaken as exc:
            print(f"port taken, again with fresh ports: {exc}")
    raise AssertionError("three sets of free ports were taken before the demo bound them")


def _demo_on_moved_ports(tmp_path: Path) -> None:
    http, sip, phone = free_port(), free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    rtp = free_range()
    moved = {  # each port the README's "Ports" table lists, by the variable it names
        "GATEWAY_HTTP__PORT": str(http),
        "GATEWAY_SIP__LISTEN__0__PORT": str(sip),
        "GATEWAY_SIP__LISTEN__1__PORT": str(free_port()),
        "GATEWAY_MEDIA__RTP_PORTS__START": str(rtp),
        "GATEWAY_MEDIA__RTP_PORTS__END": str(rtp + 100),
        "GATEWAY_MEDIA__WEB_PORTS__START": str(rtp + 102),  # optional: the browsers' own range
        "GATEWAY_MEDIA__WEB_PORTS__END": str(rtp + 200),
        "DEMO_PHONE_PORT": str(phone),
    }
    assert readme_port_variables() == set(moved)  # the README and what moves the ports, in step
    env = {
        **os.environ,
        "BIN": str(Path(sys.executable).parent),
        "GATEWAY_STATE_DIR": str(tmp_path / "state"),
        **moved,
    }
    process = subprocess.Popen(
        [str(REPO / "scripts" / "demo")], cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{http}"
    states: list[str] = []
    lines: list[str] = []  # the demo's output as it comes (a thread reads it: the pipe must not fill)
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                time.sleep(0.2)  # the reader's last lines
                if "already in use" in "".join(lines):
                    raise PortTaken("".join(lines)[-300:])
                raise AssertionError("".join(lines)[-3000:])
            try:
                _, health = _get(base + "/healthz")
            except OSError:
                assert time.monotonic() < deadline, "the gateway never served"
                time.sleep(0.2)
                continue
            if "pbx" not in health:  # not the demo's gateway: another process serves on its port
                raise PortTaken(f"127.0.0.1:{http} answers {health}")
            states.append(health["pbx"]["state"])
            if states[-1] == "reachable":
                break
            assert time.monotonic() < deadline, states
            ready, body = _get(base + "/readyz")
            assert ready == 200, body  # the PBX's state never takes the web front down
            time.sleep(0.2)
        while not any("type here:" in line for line in lines):  # the banner follows the ready file
            assert time.monotonic() < deadline and process.poll() is None, "".join(lines)[-3000:]
            time.sleep(0.1)
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the script stops the gateway and the phone by PID
        process.wait(timeout=30)
        reader.join(timeout=10)
        output = "".join(lines)
    assert "unreachable" not in states, states
    assert f"127.0.0.1:{phone}" in health["pbx"]["target"], health
    assert "type here:  call 1001" in output, output[-3000:]  # the phone dials it at 127.0.0.1:{sip}
    assert f"open http://127.0.0.1:{http}/, log in as alice / alice-demo\n" in output, output[-3000:]


def test_the_https_demo_banner_names_a_url_the_certificate_holds_and_the_logins_in_effect(
    tmp_path: Path,
) -> None:
    """The README's HTTPS recipe (dev-cert, http.tls on 0.0.0.0, the demo users' secrets replaced, a
    session key and a /metrics token), given as GATEWAY_* overrides of the shipped gateway.yaml."""
    require_desk_phone()
    certificates = make_dev_certificates(tmp_path / "dev-certs", ["192.0.2.7"])
    own = str(hash_secret("not-the-demo-secret"))
    recipe = {
        "GATEWAY_HTTP__HOST": "0.0.0.0",
        "GATEWAY_HTTP__TLS__CERTIFICATE": str(certificates.certificate),
        "GATEWAY_HTTP__TLS__PRIVATE_KEY": str(certificates.private_key),
        "GATEWAY_USERS__0__WEB_SECRET_HASH": own,
        "GATEWAY_USERS__1__WEB_SECRET_HASH": own,
        "GATEWAY_WEB_SESSION_SECRET": "s" * 32,
        "GATEWAY_METRICS__TOKEN": "m" * 32,
    }
    context = ssl.create_default_context(cafile=str(certificates.ca))
    opened: list[int] = []

    def open_the_banner_url(output: str) -> None:  # as a browser trusting the dev CA does
        url = re.findall(r"Demo: open (\S+),", output)[0]
        with urllib.request.urlopen(url + "healthz", timeout=5, context=context) as reply:
            opened.append(reply.status)

    for attempt in range(3):  # fresh ports when one was taken meanwhile
        http = free_port()
        env = {**_demo_env(tmp_path / f"try{attempt}", http), **recipe}
        output = _demo_banner(env, "type here:", open_the_banner_url)
        if "already in use" not in output:
            break
    banner = output[output.index("Demo: open") :]
    login = "log in as alice (or bob) with the secret whose hash is its web_secret_hash in gateway.yaml"
    assert banner.startswith(f"Demo: open https://localhost:{http}/, {login}\n"), output[-3000:]
    assert "0.0.0.0" not in banner and "alice-demo" not in output, output[-3000:]
    assert opened == [200]


def _demo_env(state: Path, http: int) -> dict[str, str]:
    """scripts/demo's environment with every port on a free one and a state directory of its own."""
    rtp = free_range()
    return {
        **{name: value for name, value in os.environ.items() if not name.startswith("GATEWAY_")},
        "BIN": str(Path(sys.executable).parent),
        "GATEWAY_STATE_DIR": str(state),
        "GATEWAY_HTTP__PORT": str(http),
        "GATEWAY_SIP__LISTEN__0__PORT": str(free_port(socket.SOCK_DGRAM)),
        "GATEWAY_SIP__LISTEN__1__PORT": str(free_port()),
        "GATEWAY_MEDIA__RTP_PORTS__START": str(rtp),
        "GATEWAY_MEDIA__RTP_PORTS__END": str(rtp + 100),
        "DEMO_PHONE_PORT": str(free_port(socket.SOCK_DGRAM)),
    }


def _demo_banner(env: dict[str, str], until: str, then: Callable[[str], None]) -> str:
    """scripts/demo's output up to the line holding ``until`` (or its exit); ``then(output)`` runs
    while the demo still serves, then SIGTERM stops it."""
    process = subprocess.Popen(
        [str(REPO / "scripts" / "demo")], cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while not any(until in line for line in lines) and process.poll() is None:
            assert time.monotonic() < deadline, "".join(lines)[-3000:]
            time.sleep(0.1)
        if process.poll() is None:
            then("".join(lines))
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the script stops the gateway and the phone by PID
        process.wait(timeout=30)
        reader.join(timeout=10)
    return "".join(lines)
