"""What the command line says about the config file itself (issue 67 item 13): a YAML syntax error names
the file and the line (PyYAML alone says `in "<unicode string>"`), a missing file is "no such file" (it
was reported as an invalid configuration), and `check` names every setting a `GATEWAY_*` variable sets
instead of the file (an exported variable silently overrode it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m gateway ARGS` with no GATEWAY_* variable but ``env``."""
    clean = {name: value for name, value in os.environ.items() if not name.startswith("GATEWAY_")}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], cwd=REPO, env={**clean, **env},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_a_yaml_syntax_error_names_the_file_and_its_line(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("http:\n  port: 8080\nsip:\n  listen: [\n  bad: : x\n")
    for command in ("check", "run"):
        result = cli(command, "-c", str(path))
        assert result.returncode == 1, result.stderr
        assert f"  {path}, line 5, column 8: not valid YAML: expected the node content" in result.stderr
        assert "<unicode string>" not in result.stderr
    path.write_text('sip:\n  user_agent: "unclosed\n')
    result = cli("check", "-c", str(path))
    assert f"{path}, line 3, column 1: not valid YAML: found unexpected end of stream" in result.stderr
    assert "(while scanning a quoted scalar at line 2)" in result.stderr


def test_a_missing_file_is_no_such_file_not_an_invalid_configuration(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    for command in ("check", "run", "healthcheck"):
        result = cli(command, "-c", str(missing))
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith(f"{missing}: no such file"), result.stderr
        assert "invalid configuration" not in result.stderr and "Traceback" not in result.stderr


def test_check_names_each_setting_the_environment_sets(tmp_path: Path) -> None:
    shipped = str(REPO / "gateway.yaml")
    result = cli("check", "-c", shipped, GATEWAY_HTTP__PORT="9090", GATEWAY_METRICS__TOKEN="t0ken" * 8)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "  from environment:  http.port (GATEWAY_HTTP__PORT, not the file)" in lines, result.stdout
    assert "  from environment:  metrics.token (GATEWAY_METRICS__TOKEN, not the file)" in lines
    assert "t0ken" not in result.stdout  # a value may be a secret: named, never shown
    result = cli("check", "-c", shipped)
    assert "  from environment:  nothing (no GATEWAY_* variable overrides the file)" in result.stdout
