"""The Makefile's editable installs (`make run`, `make test`) print no setuptools notice that is not a
problem (issue 67 item 13): pyproject.toml's `[tool.setuptools.ext-modules]` is "still *experimental*",
and every editable install says "Editable installation." with a banner. The Makefile filters exactly
those by their first words; a quick `pip install --dry-run -e .` shows the filter at work (the editable
build itself compiles the fast lane: too slow for a test)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

from tests.conftest import REPO


def _make_dry_run(*targets: str) -> list[str]:
    """The pip install lines make would run for ``targets`` once pyproject.toml changed."""
    run = subprocess.run(
        ["make", "--no-print-directory", "-n", "-W", "pyproject.toml", *targets],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return [line for line in run.stdout.splitlines() if "pip install" in line and " -e " in line]


def test_every_editable_install_filters_the_setuptools_notices() -> None:
    lines = _make_dry_run(".venv/.stamp-run", ".venv/.stamp-test", ".venv/.stamp-bench")
    assert len(lines) == 3, lines
    for line in lines:
        for command in line.split(" || "):
            assert command.startswith("PYTHONWARNINGS='ignore:Editable installation.,"), line


def test_the_filter_hides_the_experimental_notice_and_nothing_else() -> None:
    line = _make_dry_run(".venv/.stamp-test")[0]
    filters = shlex.split(line)[0].removeprefix("PYTHONWARNINGS=")
    assert [f.split(":")[1] for f in filters.split(",")] == [
        "Editable installation.", "`[tool.setuptools.ext-modules]`"
    ]  # fmt: skip
    outputs = []
    for warnings in (None, filters):
        env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
        if warnings is not None:
            env["PYTHONWARNINGS"] = warnings
        run = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--no-deps", "-e", "."],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        outputs.append(run.stdout + run.stderr)
    unfiltered, filtered = outputs
    assert re.search(r"ext-modules.*experimental", unfiltered), unfiltered  # the notice is real here
    assert "experimental" not in filtered and "Warning" not in filtered, filtered
