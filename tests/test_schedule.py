"""The parallel suite's order (tests/schedule.py): worksteal's chunks get equal work, longest first."""

from __future__ import annotations

import random

import pytest

from tests.schedule import chunked_order


def _chunks(order: list[int], workers: int) -> list[list[int]]:
    """What worksteal's first distribution sends each idle worker: len(pending) // workers left."""
    pending, chunks = list(order), []
    for i in range(workers):
        size = len(pending) // (workers - i)
        chunks.append(pending[:size])
        del pending[:size]
    return chunks


@pytest.mark.parametrize("workers", [2, 3, 4, 8])
def test_each_chunk_gets_an_equal_share_longest_first(workers: int) -> None:
    rng = random.Random(workers)
    costs = [rng.choice([0.05, 0.05, 0.05, 0.4, 2.0, 8.0, 20.0, 60.0]) for _ in range(997)]
    order = chunked_order(costs, workers)
    assert sorted(order) == list(range(len(costs)))  # every test once
    totals = []
    for chunk in _chunks(order, workers):
        spent = [costs[i] for i in chunk]
        assert spent == sorted(spent, reverse=True)  # what is stolen from a chunk's end is short
        totals.append(sum(spent))
    assert max(totals) - min(totals) <= max(costs)


def test_collection_order_bunched_the_long_tests_into_one_chunk() -> None:
    # what the order replaces: 40 long tests together, as the end-to-end folder is, land in one chunk
    costs = [0.05] * 420 + [10.0] * 40 + [0.05] * 380
    in_collection_order = [sum(costs[i] for i in c) for c in _chunks(list(range(len(costs))), 4)]
    assert max(in_collection_order) > 300
    balanced = [sum(costs[i] for i in c) for c in _chunks(chunked_order(costs, 4), 4)]
    assert max(balanced) - min(balanced) <= 10.0


def test_equal_costs_keep_the_collection_order_within_a_chunk() -> None:
    order = chunked_order([1.0] * 8, 2)
    assert _chunks(order, 2) == [[0, 2, 4, 6], [1, 3, 5, 7]]


def test_no_workers_is_refused() -> None:
    with pytest.raises(ValueError, match="workers"):
        chunked_order([1.0], 0)
