"""Every numbered tutorial example runs as a user would run it and exits 0, printing something."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

EXAMPLES = sorted((REPO / "examples").glob("[0-9][0-9]_*.py"))
# What a reader sees (issue 67 item 14: 04 printed raw event objects, 05 `Confirmed(sdp='')`, 06
# `connected=False`, 13 an expected `False`): a sentence about what happened, never an object's repr
SAYS = {
    "04": ["  the phone answered 180 Ringing\n", "BYE sent: the phone answered 200\n"],
    "05": [
        "5. answered 200 OK with our SDP; the phone's ACK confirmed the call\n",
        "6. hung up: our BYE was answered 200\n",
    ],
    "06": [
        "5. media connected (ICE and DTLS done); codecs: browser opus/48000, phone PCMU/8000: transcoding\n",
        "6. the browser heard the phone's 600 Hz tone; the phone heard the browser's 1000 Hz tone\n",
    ],
    "13": [
        "   the WHEP player hears the phone's 440 Hz, and not the WHIP client's own 1000 Hz\n",
        "6. the phone heard the WHIP client's 1000 Hz tone\n",
    ],
}
INTERNALS = re.compile(r"\b[A-Z]\w*\(\w+=|\b\w+=(True|False)\b|: (True|False)$", re.MULTILINE)


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
    number = example.name[:2]
    for sentence in SAYS.get(number, []):
        assert sentence in result.stdout, result.stdout
    if number in SAYS:
        assert INTERNALS.search(result.stdout) is None, INTERNALS.search(result.stdout)


def test_the_embedding_example_uses_the_public_api_only() -> None:
    """Example 11 imports only what docs/embedding.md lists as the public API (issue 39: examples 07-09
    reach into the test peers), beside the standard library and aiortc."""
    public = set(re.findall(r"^\| `([\w.]+)` \|", (REPO / "docs" / "embedding.md").read_text(), flags=re.M))
    (example,) = [p for p in EXAMPLES if p.name.startswith("11_")]
    imported = set()
    for node in ast.walk(ast.parse(example.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    ours = {m for m in imported if m.split(".")[0] in ("gateway", "sdp", "sipcore", "peers")}
    assert ours and ours <= public, sorted(ours - public)
