"""The layer contracts of docs/architecture.md ("Layer contracts"), checked by `make test` and CI.

The contracts are import-linter's, in pyproject.toml `[tool.importlinter]`: the layers (app, runtime,
signaling | sip | media, calls, identity : config, sdp | sipcore), no I/O in the sans-I/O layers,
aiortc/aioice/PyAV/pylibsrtp/pyOpenSSL only in gateway.media, aiohttp only in gateway.signaling, no
test peer in the gateway. This test runs `lint-imports` and fails with its report, which names each
forbidden import and the chain that makes it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def test_the_layer_contracts_hold() -> None:
    command = Path(sys.executable).with_name("lint-imports")
    assert command.exists(), f"{command} is missing: `make test-deps` installs import-linter (the test extra)"
    done = subprocess.run(
        # --no-cache: nothing written into the tree, and parallel runs do not share a cache
        [str(command), "--no-cache", "--no-logo"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "160"},  # contract names unwrapped in the report
    )
    if done.returncode != 0 or "0 broken" not in done.stdout:
        pytest.fail(
            f"lint-imports: a layer contract is broken (pyproject.toml)\n{done.stdout}{done.stderr}", False
        )
