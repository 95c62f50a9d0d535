"""What a peer needs of the machine: its program (sipp, kamailio, chromium..., installed from Debian by
`make test`) or an IPv6 loopback.

Under pytest a missing one skips the test on a developer's machine and fails it under CI=true, so CI
never passes by skipping work; elsewhere (an example, a benchmark) it stops with the message.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from typing import NoReturn

__all__ = ["in_ci", "require_binary", "require_ipv6_loopback", "unavailable"]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_binary(name: str) -> str:
    """The path of executable `name`, or a skip / failure / exit that says how to install it."""
    path = shutil.which(name)
    if path is not None:
        return path
    unavailable(f"{name} is not installed (scripts/install-system-deps installs it as root)")


def require_ipv6_loopback() -> None:
    """Return when ::1 can be bound; else skip, fail (CI=true) or stop, as for a missing program."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError as exc:
        unavailable(f"no IPv6 loopback (::1): {exc}")


def unavailable(message: str) -> NoReturn:
    """Skip the test, or fail it under CI=true; outside pytest, stop with the message."""
    if "pytest" in sys.modules:
        import pytest

        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    raise SystemExit(message)
