"""The bridge's latency meter (benchmarks turn it on): the latest samples in a fixed ring of doubles, so
that a long call's meter stays small (a deque of floats grew to 640 KiB per call)."""

from __future__ import annotations

import array
import random
import sys

import pytest

from gateway.media.bridge_settings import LatencyMeter


def test_the_meter_keeps_the_latest_samples_and_summarizes_them() -> None:
    meter = LatencyMeter(enabled=True, clock=lambda: 10.0, size=100)
    meter.extend(0.050 for _ in range(1000))  # old and slow: pushed out by what follows
    for index in range(100):
        meter.record(0.001 * (index + 1))  # 1..100 ms
    summary = meter.summary()
    assert summary is not None
    assert (summary.samples, summary.p50_ms, summary.p99_ms, summary.max_ms) == pytest.approx(
        (100, 51, 100, 100)
    )
    meter.measure(9.9)  # arrived 100 ms before the clock's 10.0: the oldest (1 ms) goes
    summary = meter.summary()
    assert summary is not None and summary.samples == 100 and summary.max_ms == pytest.approx(100)


def test_a_full_meter_takes_eight_octets_a_sample() -> None:
    meter = LatencyMeter(enabled=True, size=4096)
    meter.extend(float(i) for i in range(20000))
    samples = meter._samples
    assert len(samples) == 4096 and samples.itemsize == 8
    assert sys.getsizeof(samples) < 40 * 1024  # the deque of floats it replaces: 640 KiB at 20 000


def test_a_disabled_meter_keeps_nothing_and_a_nonsense_size_is_refused() -> None:
    meter = LatencyMeter(enabled=False)
    meter.record(0.01)
    meter.extend([0.01, 0.02])
    meter.measure(0.0)
    assert meter.summary() is None
    with pytest.raises(ValueError, match="size"):
        LatencyMeter(enabled=True, size=0)


def test_extending_by_slices_keeps_what_one_sample_at_a_time_keeps() -> None:
    """`extend` copies whole slices into the ring (the fast lane's syncs bring up to 128 samples); it keeps
    the samples adding them one by one keeps, and the next sample pushes out the same oldest one (the
    values only grow, so sorted is oldest first)."""
    rng = random.Random(7)
    by_slices, one_by_one = LatencyMeter(enabled=True, size=50), LatencyMeter(enabled=True, size=50)
    value = 0.0
    for _ in range(300):
        batch = [value + i for i in range(rng.choice([0, 1, 7, 49, 50, 51, 128]))]
        value += len(batch)
        by_slices.extend(array.array("d", batch) if rng.random() < 0.5 else iter(batch))
        for sample in batch:
            one_by_one.record(sample)
        assert sorted(by_slices._samples) == sorted(one_by_one._samples)
        by_slices.record(value)  # then a single sample lands where the ring's next one goes
        one_by_one.record(value)
        value += 1
        assert sorted(by_slices._samples) == sorted(one_by_one._samples)
