"""The bridge's latency meter (benchmarks turn it on): the latest samples in a fixed ring of doubles, so
that a long call's meter stays small (a deque of floats grew to 640 KiB per call)."""

from __future__ import annotations

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
