"""peers/ports.py: under pytest-xdist a worker's ports come from its own band, and never one a browser
refuses to load a page from (net::ERR_UNSAFE_PORT failed a Chromium test on a gateway at 10080)."""

from __future__ import annotations

import pytest

from peers import ports


def test_a_workers_band_never_hands_out_a_port_browsers_refuse(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")  # the band 10000-10999, which holds 10080
    handed = {ports.free_port() for _ in range(1000)}  # once round the band
    assert 10080 in ports.BROWSER_BLOCKED and 10080 not in handed
    assert all(10000 <= port < 11000 for port in handed) and len(handed) > 900, len(handed)
