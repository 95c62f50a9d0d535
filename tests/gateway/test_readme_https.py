"""The README's HTTPS recipe works as written (issue 39): its Linux `certutil` lines, run verbatim in a
home where Chromium never ran (no NSS database: `certutil -A` alone failed with SEC_ERROR_BAD_DATABASE),
trust the dev CA that `dev-cert` wrote; run again, they neither fail nor wait for a password."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from gateway.devcert import make_dev_certificates
from peers.binaries import require_binary
from tests.conftest import REPO


def recipe() -> str:
    blocks = re.findall(r"```sh\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    (block,) = [b for b in blocks if "certutil" in b and "-n gateway-dev-ca" in b]
    return "\n".join(line.strip() for line in block.splitlines())


def test_the_readme_certutil_lines_trust_the_dev_ca(tmp_path: Path) -> None:
    certutil = require_binary("certutil")
    make_dev_certificates(tmp_path / "dev-certs", ["localhost"])
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}
    for _ in range(2):
        run = subprocess.run(
            ["bash", "-ec", recipe()], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
    listed = subprocess.run(
        [certutil, "-L", "-d", f"sql:{home}/.pki/nssdb"], capture_output=True, text=True, check=True
    )
    assert "gateway-dev-ca" in listed.stdout and "C,," in listed.stdout, listed.stdout
