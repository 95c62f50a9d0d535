"""Pass-through output sequence numbers (gateway/media/rtp/seqmap.py), pure: input + offset, gaps and order
kept, a new offset only on a new SSRC, an RFC 3550 §A.1 restart, or after the sender's own packets."""

from __future__ import annotations

import pytest

from gateway.media.rtp.seqmap import SequenceMap, SequenceState, advance


def run(mapping: SequenceMap, packets: list[tuple[int, int]], next_seq: int) -> tuple[list[int], int]:
    """Forward (ssrc, seq) packets as a sender would: the output numbers and the sender's next after."""
    out = []
    for ssrc, seq in packets:
        sent = mapping.map(ssrc, seq, next_seq)
        next_seq = advance(next_seq, sent)
        out.append(sent)
    return out, next_seq


def test_gaps_and_reordering_pass_through_with_an_offset() -> None:
    out, after = run(SequenceMap(), [(7, s) for s in (1, 2, 4, 3, 6)], 500)
    assert out == [500, 501, 503, 502, 505]  # the gap at 5 and the swap of 3 and 4 are the far end's to see
    assert after == 506


def test_a_new_ssrc_continues_without_a_gap() -> None:
    mapping = SequenceMap()
    out, _ = run(mapping, [(7, 10), (7, 11), (9, 40000), (9, 40001), (9, 40003)], 100)
    assert out == [100, 101, 102, 103, 105]


def test_after_a_hold_the_numbering_goes_on_without_the_held_packets_gap() -> None:
    """The input went on while the direction was held (its packets dropped): forget() makes the next
    packet the sender's next number, and the ones after follow it with their gaps as before."""
    mapping = SequenceMap()
    out, after = run(mapping, [(7, s) for s in (10, 11, 12)], 100)
    assert out == [100, 101, 102]
    mapping.forget()  # 13..62 were dropped on hold
    out, _ = run(mapping, [(7, s) for s in (63, 64, 66)], after)
    assert out == [103, 104, 106]
    held, _ = run(SequenceMap(), [(7, s) for s in (10, 11, 12, 63)], 100)
    assert held[-1] == 153  # not forgotten: a gap of 50 the far end counts lost


def test_the_wrap_at_65535_is_no_jump() -> None:
    out, _ = run(SequenceMap(), [(7, s) for s in (65534, 65535, 1, 0, 2)], 65000)
    assert out == [65000, 65001, 65003, 65002, 65004]
    out, after = run(SequenceMap(), [(7, s) for s in (10, 11, 13)], 65534)
    assert out == [65534, 65535, 1] and after == 2


def test_a_restart_of_the_same_ssrc_continues_after_two_sequential_packets() -> None:
    mapping = SequenceMap()
    out, _ = run(mapping, [(7, 100), (7, 101), (7, 30000), (7, 30001), (7, 30002), (7, 30004)], 10)
    assert out == [10, 11, 12, 13, 14, 16]


def test_a_stray_packet_far_off_does_not_move_the_offset() -> None:
    mapping = SequenceMap()
    out, _ = run(mapping, [(7, 100), (7, 101), (7, 9000), (7, 102), (7, 103)], 10)
    assert out == [10, 11, 12, 13, 14]  # the stray took a number; the stream closes up after it
    assert len(set(out)) == len(out)


def test_the_senders_own_packets_are_not_overwritten() -> None:
    mapping = SequenceMap()
    out, next_seq = run(mapping, [(7, 1), (7, 2)], 50)
    own = next_seq  # e.g. a telephone-event the sender generates
    next_seq = advance(next_seq, own)
    more, _ = run(mapping, [(7, 3), (7, 5)], next_seq)
    assert out + [own] + more == [50, 51, 52, 53, 55]  # no duplicate; the later gap kept


def test_state_round_trips_and_rejects_bad_values() -> None:
    mapping = SequenceMap()
    run(mapping, [(7, 1), (7, 2)], 50)
    state = mapping.state()
    other = SequenceMap()
    other.restore(state)
    assert other.map(7, 4, 52) == 53
    with pytest.raises(ValueError, match="offset must be 16 bits, got 70000"):
        SequenceState(7, 70000, 0, -1)
    with pytest.raises(ValueError, match="an SSRC is 32 bits or -1"):
        SequenceState(-2)
