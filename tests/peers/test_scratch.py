"""Scratch directories (peers.scratch): one root per process, gone when the process exits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from peers.scratch import scratch_dir

SCRIPT = """
from peers.scratch import scratch_dir
first, second = scratch_dir("gateway-state-"), scratch_dir("desk-phone-")
(second / "phone.log").write_text("kept until exit")
print(first, second, sep="\\n")
"""


def test_scratch_dirs_share_one_root_and_are_new() -> None:
    first, second = scratch_dir("a-"), scratch_dir("a-")
    assert first != second and first.parent == second.parent
    assert first.name.startswith("a-") and not any(first.iterdir())


def test_scratch_dirs_are_removed_when_the_process_exits() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    made = [Path(line) for line in result.stdout.split()]
    assert len(made) == 2 and made[0].parent == made[1].parent
    assert not made[0].parent.exists(), f"{made[0].parent} is left behind"
