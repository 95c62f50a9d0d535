"""Finding a peer's program (sipp, kamailio, chromium...), installed from Debian by `make test`.

Under pytest a missing program skips the test on a developer's machine and fails it under CI=true, so
CI never passes by skipping work; elsewhere (an example, a benchmark) it stops with the message.
"""

from __future__ import annotations

import os
import shutil
import sys

__all__ = ["in_ci", "require_binary"]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_binary(name: str) -> str:
    """The path of executable `name`, or a skip / failure / exit that says how to install it."""
    path = shutil.which(name)
    if path is not None:
        return path
    message = f"{name} is not installed (scripts/install-system-deps installs it as root)"
    if "pytest" in sys.modules:
        import pytest

        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    raise SystemExit(message)
