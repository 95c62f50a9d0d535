"""Paths the tests share. The peers they drive (and `free_port`, `require_binary`) are in `peers/`."""

from __future__ import annotations

import os
import types
from collections.abc import Generator
from pathlib import Path
from typing import Final

import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"

pytest_plugins = ["tests.hang_dump", "tests.schedule"]

# One random seed per run, shared by every pytest-xdist worker (workers inherit the environment set
# here, in the controller, before they start): a test parametrized by a random seed must collect the
# same ids in every worker. `TEST_SEED=<n> make test` replays a run's random choices.
RUN_SEED = int(os.environ.setdefault("TEST_SEED", str(int.from_bytes(os.urandom(4), "big"))))


def pytest_report_header() -> str:
    return f"TEST_SEED={RUN_SEED}"


# Property tests (Hypothesis): 150 examples where a test does not ask for a number of its own
# (SIP_HYPOTHESIS_EXAMPLES), `examples(n)` where it asks for n. `make test-fast` (TEST_FAST=1), the inner
# loop, runs a fifth of them; `make test` runs them all.
FAST: Final = os.environ.get("TEST_FAST") == "1"
_EXAMPLES: Final = int(os.environ.get("SIP_HYPOTHESIS_EXAMPLES", "150"))
settings.register_profile("suite", max_examples=_EXAMPLES, suppress_health_check=[HealthCheck.too_slow])


def _fifth(count: int) -> int:
    return max(10, count // 5)


settings.register_profile("fast", settings.get_profile("suite"), max_examples=_fifth(_EXAMPLES))
settings.load_profile("fast" if FAST else "suite")


def examples(count: int) -> int:
    """A property test's ``max_examples``: ``count``, a fifth of it in `make test-fast` (at least 10)."""
    return _fifth(count) if FAST else count


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


# Whole programs the tests drive as peers (a browser, desk phones, a proxy, a registrar, the CLI or an
# example in a subprocess...). A test module that imports one gets the `peer` marker, so `make test-fast`
# (-m "not peer", and no tests/e2e) is the inner loop of unit and in-process component tests.
REAL_PEERS: Final = (
    "peers.asterisk", "peers.baresip", "peers.demo", "peers.dnsmasq", "peers.firefox", "peers.haproxy", "peers.kamailio", "peers.phone",
    "peers.redis", "peers.rtpengine", "peers.sip_webrtc", "peers.sipp", "peers.softphones",
    "peers.video_phone", "peers.web_user", "playwright", "subprocess",
)  # fmt: skip


def _drives_real_peers(module: types.ModuleType) -> bool:
    for value in vars(module).values():
        name = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
        if isinstance(name, str) and name.startswith(REAL_PEERS):
            return True
    return False


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "peer: drives a real peer program (tests/conftest.py REAL_PEERS)")
    config.addinivalue_line(
        "markers", "static: reads the whole tree or the installed libraries, as lint does (not in test-fast)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    seen: dict[str, bool] = {}
    for item in items:
        module = getattr(item, "module", None)
        if module is None:
            continue
        if module.__name__ not in seen:
            seen[module.__name__] = _drives_real_peers(module)
        if seen[module.__name__]:
            item.add_marker(pytest.mark.peer)
