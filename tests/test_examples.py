"""Every numbered tutorial example runs as a user would run it and exits 0, printing something."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

EXAMPLES = sorted((REPO / "examples").glob("[0-9][0-9]_*.py"))


def test_examples_exist() -> None:
    assert [p.name[:2] for p in EXAMPLES][:3] == ["01", "02", "03"]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs(example: Path, tmp_path: Path) -> None:
    # Run from an unrelated directory: examples must find their data relative to themselves.
    result = subprocess.run(
        [sys.executable, str(example)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip().splitlines()) >= 5, result.stdout
    assert "Traceback" not in result.stderr
