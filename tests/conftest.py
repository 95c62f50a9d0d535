"""Paths the tests share. The peers they drive (and `free_port`, `require_binary`) are in `peers/`."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"

pytest_plugins = ["tests.hang_dump"]
