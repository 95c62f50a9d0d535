"""The fast lane engine's receive statistics against the Python reference (``rtp_stats.ReceiveStatistics``,
RFC 3550 A.1, A.3, A.8) on the same packet sequences: loss, reordering, duplicates, sequence wrap-around,
timestamp wrap-around, jitter, a source restart (two sequential packets after a jump) and a lone jump set
aside. Each sequence is also split in two, the engine continuing from the reference's state (what ``arm``
imports) and the reference from the engine's (what a snapshot restores): the hand-overs lose nothing.
The aiortc flavour is compared with aiortc's own ``StreamStatistics`` in ``test_aiortc_hooks.py``."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.media.fastlane.native import STATS_RFC3550, replay
from gateway.media.rtp.rtp_stats import ReceiveStatistics, ReceptionState
from tests.conftest import examples
from tests.media.fastlane.test_fastpath import require_fast_lane

Packet = tuple[int, int, float]  # seq, RTP timestamp, arrival (monotonic seconds)
RATE = 8000
FRESH = ReceptionState(0, -1, -1, 65537, 0, None, None, 0, 0.0)  # what arm() gets before any packet


@pytest.fixture(autouse=True)
def fast_lane_built() -> None:
    require_fast_lane()


def stream(seqs: list[int], *, start_ts: int = 1000, jitter: float = 0.0, seed: int = 1) -> list[Packet]:
    """Packets 20 ms apart in media time; arrivals shaken by up to ``jitter`` seconds."""
    rng = random.Random(seed)
    first = seqs[0]
    packets = []
    for seq in seqs:
        index = (seq - first) & 0xFFFF
        ts = (start_ts + 160 * index) & 0xFFFF_FFFF
        packets.append((seq, ts, 5000.0 + 0.02 * index + rng.uniform(0, jitter)))
    return packets


def reference(packets: list[Packet], start: ReceiveStatistics | None = None) -> ReceiveStatistics:
    stats = start or ReceiveStatistics(0x1234, RATE)
    for seq, ts, arrival in packets:
        stats.update(seq, ts, arrival)
    return stats


def engine(packets: list[Packet], state: ReceptionState = FRESH) -> tuple[ReceptionState, bool]:
    return replay(STATS_RFC3550, RATE, state, packets)


def assert_same(packets: list[Packet]) -> ReceiveStatistics:
    expected = reference(packets)
    got, _ = engine(packets)
    assert got == expected.state()
    restored = ReceiveStatistics(0x1234, RATE)
    restored.restore(got)
    assert restored.report_block(6000.0) == expected.report_block(6000.0)
    for cut in (1, len(packets) // 2, len(packets) - 1):  # hand-overs both ways mid-stream
        first = reference(packets[:cut])
        continued, _ = engine(packets[cut:], first.state())
        assert continued == expected.state(), cut
        back = ReceiveStatistics(0x1234, RATE)
        back.restore(engine(packets[:cut])[0])
        assert reference(packets[cut:], back).state() == expected.state(), cut
    return expected


def test_in_order_with_jitter() -> None:
    stats = assert_same(stream(list(range(100, 200)), jitter=0.015))
    assert stats.jitter > 0 and stats.cumulative_lost == 0 and stats.received == 100


def test_loss() -> None:
    seqs = [s for s in range(0, 100) if s % 7 != 3]
    stats = assert_same(stream(seqs, jitter=0.002))
    assert stats.cumulative_lost == 100 - len(seqs)


def test_reordering_and_duplicates() -> None:
    seqs = [1, 2, 4, 3, 5, 5, 7, 6, 8, 9, 9, 12, 10, 11]
    stats = assert_same(stream(seqs, jitter=0.004))
    assert stats.cumulative_lost == -2  # two duplicates


def test_sequence_and_timestamp_wrap_around() -> None:
    seqs = [(65500 + i) & 0xFFFF for i in range(80)]
    stats = assert_same(stream(seqs, start_ts=0xFFFF_FF00, jitter=0.003))
    assert stats.extended_highest_sequence == (1 << 16) + 43 and stats.cumulative_lost == 0


def test_a_source_restart_and_a_lone_jump() -> None:
    seqs = [10, 11, 12, 30000, 13, 14, 40000, 40001, 40002]  # a stray jump set aside, then a restart
    packets = stream(seqs[:6]) + [(s, 777 + 160 * i, 5001.0 + 0.02 * i) for i, s in enumerate(seqs[6:])]
    expected = assert_same(packets)
    state, restarted = engine(packets)
    assert restarted and state.base_seq == 40001 and expected.received == 2  # A.1: from the second


@settings(max_examples=examples(200), deadline=None)
@given(
    st.lists(st.integers(min_value=-3, max_value=40), min_size=2, max_size=60),
    st.integers(min_value=0, max_value=0xFFFF),
    st.integers(min_value=0, max_value=0xFFFF_FFFF),
    st.lists(st.floats(min_value=0.0, max_value=0.2), min_size=60, max_size=60),
)
def test_any_sequence_gives_the_same_statistics(
    steps: list[int], first: int, start_ts: int, shakes: list[float]
) -> None:
    packets, seq, ts, now = [], first, start_ts, 1000.0
    for step, shake in zip(steps, shakes, strict=False):
        seq, ts, now = (seq + step) & 0xFFFF, (ts + 160 * step) & 0xFFFF_FFFF, now + 0.02 * max(step, 0)
        packets.append((seq, ts, now + shake))
    assert_same(packets)


def test_bad_states_are_refused() -> None:
    for bad in (
        FRESH._replace(max_seq=70000),
        FRESH._replace(jitter=float("nan")),
        FRESH._replace(received=-1),
    ):
        with pytest.raises(ValueError, match="bad receive statistics"):
            engine([], bad)
    with pytest.raises(ValueError, match="16 bits"):
        engine([(70000, 0, 0.0)])
    with pytest.raises(TypeError):
        replay(STATS_RFC3550, RATE, (1, 2), [])  # type: ignore[arg-type]
