"""Longest tests first, in chunks of equal work: the order pytest-xdist's `worksteal` hands tests out in.

`worksteal` gives its N workers contiguous chunks of the collection (the i-th of N nearly equal counts),
then moves the last half of the longest queue to a worker that ran out. In collection order the slow
end-to-end tests sat together in one or two chunks, and a run ended with minutes of one or two busy
workers beside idle cores (the last 4 % of the tests took 5 of 14 minutes). Here each chunk gets an
equal share of the expected work, and within it the longest tests come first (longest processing time
first), so what is stolen near the end is short.

Expected durations are in tests/durations.json (test id -> seconds, those of at least ``RECORDED_FROM``),
written by a run with ``--write-durations`` (`make test-durations`). A test not in it is expected to take
``UNKNOWN_PEER`` seconds when it drives a real peer (the `peer` marker, tests/conftest.py), else
``UNKNOWN``. A serial run (no xdist) keeps the collection order.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

import pytest

__all__ = ["DURATIONS", "chunked_order"]

DURATIONS: Final = Path(__file__).resolve().parent / "durations.json"
RECORDED_FROM: Final = 0.3  # seconds; shorter tests count as UNKNOWN
UNKNOWN: Final = 0.05
UNKNOWN_PEER: Final = 5.0


def chunked_order(costs: list[float], workers: int) -> list[int]:
    """Indices of ``costs`` in the order that gives each of `worksteal`'s first ``workers`` chunks an equal
    share of the total, longest first within each chunk. A chunk's size is what worksteal sends: the i-th
    worker gets ``remaining // (workers - i)`` of what is left."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers!r}")
    sizes: list[int] = []
    left = len(costs)
    for i in range(workers):
        sizes.append(left // (workers - i))
        left -= sizes[-1]
    chunks: list[list[int]] = [[] for _ in range(workers)]
    totals = [0.0] * workers
    for index in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        open_chunks = [c for c in range(workers) if len(chunks[c]) < sizes[c]]
        chunk = min(open_chunks, key=lambda c: (totals[c], c))
        chunks[chunk].append(index)  # (already longest first: indices arrive by falling cost)
        totals[chunk] += costs[index]
    return [index for chunk in chunks for index in chunk]


def _known() -> dict[str, float]:
    try:
        data = json.loads(DURATIONS.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return {str(k): float(v) for k, v in data.items()}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--write-durations",
        action="store_true",
        help=f"merge this run's test durations into {DURATIONS.name} (the order of the parallel suite)",
    )


@pytest.hookimpl(trylast=True)  # after tests/conftest.py has marked the tests that drive real peers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return
    workers = int(workerinput["workercount"])
    if workers < 2 or len(items) < workers:
        return
    known = _known()
    costs = [
        known.get(item.nodeid, UNKNOWN_PEER if item.get_closest_marker("peer") else UNKNOWN) for item in items
    ]
    items[:] = [items[i] for i in chunked_order(costs, workers)]


class _Recorder:
    """In the controller: each test's setup, call and teardown time, written at the end."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seconds[report.nodeid] = self.seconds.get(report.nodeid, 0.0) + report.duration

    def pytest_sessionfinish(self) -> None:
        merged = _known()
        for nodeid, seconds in self.seconds.items():
            if seconds >= RECORDED_FROM:
                merged[nodeid] = round(seconds, 1)
            else:
                merged.pop(nodeid, None)
        text = json.dumps(dict(sorted(merged.items())), indent=0, sort_keys=True)
        DURATIONS.write_text(text + "\n", encoding="utf-8")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--write-durations") and getattr(config, "workerinput", None) is None:
        config.pluginmanager.register(_Recorder(), "test-durations-recorder")
