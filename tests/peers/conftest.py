"""Fixtures for tests that use real SIP peers (other test packages may import them the same way)."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from peers.kamailio import Kamailio, running_kamailio


@pytest.fixture
def kamailio(tmp_path: Path) -> Iterator[Kamailio]:
    """A running Kamailio registrar/proxy with the test `USERS`; fails under CI=true if not installed."""
    with running_kamailio(tmp_path) as server:
        yield server
