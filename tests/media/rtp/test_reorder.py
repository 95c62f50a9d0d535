"""The reorder buffer of transcoding lanes (gateway/media/rtp/reorder.py): order, waits, gaps, late packets
(a fixed wait first: `adaptive=False`; the adaptive wait the lanes use at the end)."""

from __future__ import annotations

import pytest

from gateway.media.rtp.reorder import CALM, HOLD_SECONDS, MARGIN, Released, ReorderBuffer


def _seqs(released: list[Released]) -> list[tuple[int, int]]:
    return [(r.seq, r.lost) for r in released]


def test_in_order_packets_come_straight_back_without_waiting() -> None:
    buffer = ReorderBuffer(adaptive=False)
    for i in range(5):
        assert _seqs(buffer.push(100 + i, 160 * i, b"x", i * 0.02)) == [(100 + i, 0)]
    assert not buffer.pending and buffer.late == buffer.concealed == 0


def test_a_swapped_pair_comes_out_in_order() -> None:
    buffer = ReorderBuffer(adaptive=False)
    assert _seqs(buffer.push(1, 0, b"a", 0.0)) == [(1, 0)]
    assert buffer.push(3, 320, b"c", 0.02) == []  # 2 is missing: 3 waits
    assert buffer.pending
    out = buffer.push(2, 160, b"b", 0.03)
    assert [(r.seq, r.timestamp, r.payload, r.lost) for r in out] == [(2, 160, b"b", 0), (3, 320, b"c", 0)]
    assert buffer.concealed == 0 and not buffer.pending


def test_a_lost_packet_is_given_up_after_the_hold_and_the_next_carries_the_count() -> None:
    buffer = ReorderBuffer(adaptive=False)
    buffer.push(10, 0, b"a", 0.0)
    assert buffer.push(12, 320, b"c", 0.04) == []
    assert buffer.push(13, 480, b"d", 0.06) == []
    assert buffer.pop_due(0.04 + HOLD_SECONDS - 0.001) == []  # still within the wait
    assert _seqs(buffer.pop_due(0.04 + HOLD_SECONDS)) == [(12, 1), (13, 0)]
    assert buffer.concealed == 1
    # it turns up afterwards: its slot is gone
    assert buffer.push(11, 160, b"b", 0.2) == [] and buffer.late == 1


def test_a_new_packet_after_the_hold_releases_the_gap_too() -> None:
    buffer = ReorderBuffer(adaptive=False)
    buffer.push(0, 0, b"", 0.0)
    buffer.push(3, 480, b"", 0.06)  # 1 and 2 lost
    assert _seqs(buffer.push(4, 640, b"", 0.06 + HOLD_SECONDS)) == [(3, 2), (4, 0)]


def test_a_full_buffer_gives_the_gap_up_at_once() -> None:
    buffer = ReorderBuffer(capacity=3, adaptive=False)
    buffer.push(0, 0, b"", 0.0)
    for seq in (2, 3, 4):
        assert buffer.push(seq, 160 * seq, b"", 0.0) == []
    assert _seqs(buffer.push(5, 800, b"", 0.0)) == [(2, 1), (3, 0), (4, 0), (5, 0)]


def test_sequence_numbers_wrap() -> None:
    buffer = ReorderBuffer(adaptive=False)
    buffer.push(65534, 0, b"", 0.0)
    assert buffer.push(0, 320, b"", 0.01) == []
    assert _seqs(buffer.push(65535, 160, b"", 0.02)) == [(65535, 0), (0, 0)]
    assert _seqs(buffer.push(1, 480, b"", 0.03)) == [(1, 0)]


def test_duplicates_are_dropped_and_a_jump_restarts_the_order() -> None:
    buffer = ReorderBuffer(adaptive=False)
    buffer.push(5, 0, b"", 0.0)
    buffer.push(7, 320, b"", 0.01)
    assert buffer.push(7, 320, b"", 0.02) == [] and buffer.duplicates == 1
    # RFC 3550 §A.1: 5000 ahead is a new timeline: what waits comes out, then the new one
    assert _seqs(buffer.push(5000, 9999, b"", 0.03)) == [(7, 1), (5000, 0)]
    assert _seqs(buffer.push(5001, 10159, b"", 0.04)) == [(5001, 0)]


def test_flush_gives_every_gap_up() -> None:
    buffer = ReorderBuffer(adaptive=False)
    buffer.push(1, 0, b"", 0.0)
    buffer.push(3, 0, b"", 0.0)
    buffer.push(6, 0, b"", 0.0)
    assert _seqs(buffer.flush()) == [(3, 1), (6, 2)]
    assert not buffer.pending and buffer.expected == 7


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="capacity"):
        ReorderBuffer(capacity=0)
    with pytest.raises(ValueError, match="seq"):
        Released(70000, 0, b"")


def test_a_packet_far_ahead_gives_the_gap_up_at_once() -> None:
    buffer = ReorderBuffer(adaptive=False)
    buffer.push(0, 0, b"", 0.0)
    buffer.push(2, 320, b"", 0.01)  # 1 missing: 2 waits
    assert _seqs(buffer.push(20, 3200, b"", 0.02)) == [(2, 1), (20, 17)]  # no wait for a burst's packets
    assert not buffer.pending and buffer.concealed == 18


def test_numbers_taken_by_telephone_events_are_not_gaps() -> None:
    buffer = ReorderBuffer(adaptive=False)
    assert buffer.skip(9, 0.0) == []  # before any audio: nothing to order yet
    buffer.push(10, 0, b"a", 0.0)
    assert buffer.push(13, 480, b"d", 0.01) == []  # 11 and 12 not here yet
    assert buffer.skip(11, 0.02) == []  # 11 was a digit's event
    assert _seqs(buffer.skip(12, 0.03)) == [(13, 0)]  # and 12: 13 follows with nothing lost
    assert _seqs(buffer.push(14, 640, b"e", 0.04)) == [(14, 0)] and buffer.concealed == 0


def test_the_adaptive_wait_gives_a_gap_up_at_the_next_packet_until_a_reordering_is_seen() -> None:
    """Issue 66: no wait after a loss (a browser's jitter buffer took a fixed 60 ms after each for jitter);
    a packet that comes after its gap was given up makes the wait ``hold``, and calm halves it."""
    buffer = ReorderBuffer()
    assert buffer.wait == 0.0
    buffer.push(0, 0, b"", 0.0)
    assert _seqs(buffer.push(2, 320, b"", 0.04)) == [(2, 1)]  # 1 given up at once
    assert _seqs(buffer.push(3, 480, b"", 0.06)) == [(3, 0)]
    assert buffer.push(1, 160, b"", 0.07) == [] and buffer.late == 1  # after its gap was given up
    assert buffer.wait == HOLD_SECONDS
    assert buffer.push(5, 800, b"", 0.08) == []  # 4 missing: now it is waited for
    assert _seqs(buffer.push(4, 640, b"", 0.13)) == [(4, 0), (5, 0)] and buffer.late == 1
    buffer.push(7, 1120, b"", 0.14 + CALM)  # calm: the next gap given up halves the wait
    assert _seqs(buffer.pop_due(0.14 + CALM + HOLD_SECONDS)) == [(7, 1)]
    assert buffer.wait == HOLD_SECONDS / 2
    waits = []
    for n in range(2, 5):  # and so on, down to 0 below MARGIN
        buffer.push(7 + 2 * n, 1120 + 320 * n, b"", n * (CALM + 1))
        buffer.pop_due(n * (CALM + 1) + HOLD_SECONDS)
        waits.append(buffer.wait)
    assert HOLD_SECONDS / 8 >= MARGIN > HOLD_SECONDS / 16
    assert waits == [HOLD_SECONDS / 4, HOLD_SECONDS / 8, 0.0]
