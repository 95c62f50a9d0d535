"""The sans-I/O layers load no I/O: importing them in a fresh interpreter pulls in no event loop,
no socket and no foreign network stack (docs/architecture.md, "Layer contracts").

The `sans-io` import-linter contract (tests/test_contracts.py) checks the project's own import
statements; this checks what is loaded at run time, so it also sees a third-party package or a
package's `__init__` pulling in asyncio."""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

FORBIDDEN = ("asyncio", "socket", "ssl", "selectors", "aiortc", "aioice", "aiohttp", "yaml", "av")

PURE = ("sdp", "sipcore", "gateway.calls", "gateway.identity", "gateway.config")


def loaded_after_import(module: str) -> list[str]:
    """The forbidden modules present in ``sys.modules`` after ``import module`` in a new process."""
    code = (
        "import json, sys\n"
        f"import {module}\n"
        f"print(json.dumps(sorted(m for m in {FORBIDDEN!r} if m in sys.modules)))\n"
    )
    done = subprocess.run(  # from the repository root: `python -c` puts it first on the path
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    loaded: list[str] = json.loads(done.stdout)
    return loaded


@pytest.mark.parametrize("module", PURE)
def test_pure_layer_loads_no_io(module: str) -> None:
    assert loaded_after_import(module) == [], f"import {module} loaded I/O modules"


def test_the_check_sees_io() -> None:
    """The shell does load asyncio: the check above can fail."""
    assert "asyncio" in loaded_after_import("gateway.sip")
