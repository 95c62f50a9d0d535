"""One Asterisk per test module (tests/e2e/asterisk/pbx.py): it boots in about a second, and the tests of
a module use extensions and users that do not get in each other's way."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from peers.asterisk import Asterisk
from tests.e2e.asterisk.pbx import asterisk_pbx


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Asterisk]:
    yield from asterisk_pbx(Path(tmp_path_factory.mktemp("asterisk")))
