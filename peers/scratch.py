"""Scratch directories for test peers and fixtures, removed when the process exits.

``tempfile.mkdtemp`` leaves its directory behind: the e2e tests made one state directory per gateway
config and one work directory per desk phone, about 750 in /tmp per ``make test``. ``scratch_dir`` makes
them inside one directory of this process's, which ``tempfile.TemporaryDirectory`` removes at exit (each
pytest-xdist worker has its own). A directory a test must keep after its process ends is not scratch.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

_root: tempfile.TemporaryDirectory[str] | None = None


def scratch_dir(prefix: str) -> Path:
    """A new empty directory named ``prefix...``, removed with every other at the process's exit."""
    global _root
    if _root is None:
        _root = tempfile.TemporaryDirectory(prefix="sip-webrtc-scratch-")
    return Path(tempfile.mkdtemp(prefix=prefix, dir=_root.name))
