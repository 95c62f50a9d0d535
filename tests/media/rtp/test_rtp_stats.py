"""Receive statistics: RFC 3550 A.1 (sequence), A.3 (loss), A.8 (jitter), driven without a network."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.media.errors import PacketError
from gateway.media.rtp.packet import ntp_from_unix, ntp_middle32
from gateway.media.rtp.rtp_stats import ReceiveStatistics

RATE = 8000


def feed(stats: ReceiveStatistics, seqs: list[int], *, start_ts: int = 0, jitter_free: bool = True) -> None:
    """Packets in the given order, each sent 20 ms after its predecessor in sequence, arriving on time."""
    for seq in seqs:
        n = seq - seqs[0] if jitter_free else 0
        stats.update(seq & 0xFFFF, (start_ts + 160 * n) & 0xFFFFFFFF, 0.02 * n)


def test_in_order_no_loss() -> None:
    stats = ReceiveStatistics(1, RATE)
    feed(stats, list(range(1000, 1100)))
    block = stats.report_block(now=2.0)
    assert (block.fraction_lost, block.cumulative_lost) == (0, 0)
    assert block.extended_highest_sequence == 1099
    assert stats.expected == stats.received == 100
    assert block.jitter == 0


def test_loss_fraction_and_cumulative() -> None:
    stats = ReceiveStatistics(1, RATE)
    seqs = [s for s in range(100) if s % 10 != 5]  # 10 of 100 lost
    feed(stats, seqs)
    block = stats.report_block(now=2.0)
    assert block.cumulative_lost == 10
    assert block.fraction_lost == (10 << 8) // 100  # 25, i.e. ~10 %
    # the next interval has no loss: fraction back to 0, cumulative unchanged
    feed(stats, list(range(100, 150)))
    block = stats.report_block(now=3.0)
    assert (block.fraction_lost, block.cumulative_lost) == (0, 10)


def test_empty_interval_reports_no_loss() -> None:
    stats = ReceiveStatistics(1, RATE)
    feed(stats, [1, 2, 3])
    stats.report_block(now=1.0)
    block = stats.report_block(now=2.0)
    assert block.fraction_lost == 0


def test_sequence_wraparound() -> None:
    stats = ReceiveStatistics(1, RATE)
    seqs = list(range(65530, 65550))  # wraps after 65535
    feed(stats, seqs, start_ts=0xFFFFFF00)  # and the timestamp wraps too
    block = stats.report_block(now=1.0)
    assert block.extended_highest_sequence == 65536 + 13
    assert block.cumulative_lost == 0
    assert block.jitter == 0  # timestamp wraparound does not look like jitter


def test_loss_across_wraparound() -> None:
    stats = ReceiveStatistics(1, RATE)
    feed(stats, [65534, 65535, 2, 3])  # 0 and 1 lost
    assert stats.cumulative_lost == 2
    assert stats.extended_highest_sequence == 65536 + 3


def test_reordering_is_not_loss() -> None:
    stats = ReceiveStatistics(1, RATE)
    feed(stats, [10, 11, 13, 12, 14, 16, 15])
    assert stats.cumulative_lost == 0
    assert stats.extended_highest_sequence == 16


def test_reordering_across_wraparound() -> None:
    stats = ReceiveStatistics(1, RATE)
    feed(stats, [65534, 0, 65535, 1])
    assert stats.cumulative_lost == 0
    assert stats.extended_highest_sequence == 65537


def test_duplicates_make_loss_negative() -> None:
    stats = ReceiveStatistics(1, RATE)
    feed(stats, [1, 2, 2, 3, 3])
    assert stats.cumulative_lost == -2
    assert stats.report_block(now=1.0).fraction_lost == 0


def test_large_jump_needs_two_sequential_packets() -> None:
    stats = ReceiveStatistics(1, RATE)
    assert all(stats.update(s, 160 * s, 0.02 * s) for s in range(100, 110))
    assert not stats.update(40000, 0, 1.0)  # set aside: might be a stray packet
    assert stats.received == 10
    assert stats.update(40001, 160, 1.02)  # a second one in sequence: the source restarted
    assert stats.received == 1
    assert stats.extended_highest_sequence == 40001
    assert stats.cumulative_lost == 0


def test_jitter_of_one_late_packet() -> None:
    stats = ReceiveStatistics(1, RATE)
    stats.update(1, 0, 0.0)
    stats.update(2, 160, 0.020)
    stats.update(3, 320, 0.050)  # 10 ms (80 units) late: J = 80 / 16
    assert stats.jitter == 5
    stats.update(4, 480, 0.060)  # back on time: D = -80, J = 5 + (80 - 5) / 16 = 9.69
    assert stats.jitter == 9


def test_jitter_converges_to_mean_deviation() -> None:
    stats = ReceiveStatistics(1, RATE)
    for n in range(2000):  # arrivals alternate 5 ms early and late: |D| is always 80 units
        stats.update(n & 0xFFFF, 160 * n, 0.02 * n + (0.005 if n % 2 else -0.005))
    assert stats.jitter == pytest.approx(80, abs=1)


def test_dlsr_and_lsr() -> None:
    stats = ReceiveStatistics(1, RATE)
    stats.update(1, 0, 10.0)
    ntp = ntp_from_unix(1_700_000_000.25)
    stats.on_sender_report(ntp, arrival=10.0)
    block = stats.report_block(now=10.5)
    assert block.last_sr == ntp_middle32(ntp)
    assert block.delay_since_last_sr == 32768  # 0.5 s in 1/65536 s


def test_fresh_statistics() -> None:
    stats = ReceiveStatistics(7, RATE)
    block = stats.report_block(now=0.0)
    assert (block.ssrc, block.extended_highest_sequence, block.cumulative_lost, block.jitter) == (7, 0, 0, 0)
    assert stats.expected == 0


@pytest.mark.parametrize(("ssrc", "rate"), [(-1, RATE), (1 << 32, RATE), (1, 0)])
def test_invalid_construction(ssrc: int, rate: int) -> None:
    with pytest.raises(PacketError):
        ReceiveStatistics(ssrc, rate)


@given(st.integers(0, 0xFFFF), st.lists(st.booleans(), min_size=1, max_size=400))
def test_loss_matches_drops(start: int, keep: list[bool]) -> None:
    """Whatever is dropped in the middle (first and last kept) is counted, across wraparound too."""
    keep = [True, *keep, True]
    stats = ReceiveStatistics(1, RATE)
    for n, kept in enumerate(keep):
        if kept:
            stats.update((start + n) & 0xFFFF, 160 * n, 0.02 * n)
    assert stats.cumulative_lost == keep.count(False)
    assert stats.extended_highest_sequence == start + len(keep) - 1
    lost = keep.count(False)
    assert stats.report_block(now=100.0).fraction_lost == min(255, (lost << 8) // len(keep))


def test_untimed_packets_count_but_leave_jitter_alone() -> None:
    stats = ReceiveStatistics(1, RATE)
    stats.update(1, 0, 0.0)
    for n in range(2, 8):  # telephone-event updates: one timestamp, 20 ms apart
        stats.update(n, 160, 0.02 * n, timing=False)
    assert stats.jitter == 0 and stats.received == 7 and stats.cumulative_lost == 0
