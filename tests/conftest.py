"""Paths the tests share. The peers they drive (and `free_port`, `require_binary`) are in `peers/`."""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"

pytest_plugins = ["tests.hang_dump"]

# One random seed per run, shared by every pytest-xdist worker (workers inherit the environment set
# here, in the controller, before they start): a test parametrized by a random seed must collect the
# same ids in every worker. `TEST_SEED=<n> make test` replays a run's random choices.
RUN_SEED = int(os.environ.setdefault("TEST_SEED", str(int.from_bytes(os.urandom(4), "big"))))


def pytest_report_header() -> str:
    return f"TEST_SEED={RUN_SEED}"


def _encodable(value: object) -> object:
    """`value` with every string made UTF-8 encodable (lone surrogates escaped)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {key: _encodable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_encodable(item) for item in value)
    return value


@pytest.hookimpl(wrapper=True)
def pytest_report_to_serializable(config: pytest.Config, report: object) -> Generator[None, object, object]:
    """A pytest-xdist worker sends its reports to the controller as UTF-8: a test whose captured log holds
    a lone surrogate (the fuzz tests log undecodable bytes, escaped by surrogateescape) would otherwise
    crash the worker (execnet's DumpError) instead of reporting."""
    data = yield
    return _encodable(data)
