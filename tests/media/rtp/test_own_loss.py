"""own_loss.py: the browser's own share of the loss it reports, by sequence numbers - exact however the
reports and the SIP leg's losses fall in time, none in a transcoding call's numbering, and no figure
where the counts do not fit together."""

from __future__ import annotations

import pytest

from gateway.media.rtp.own_loss import OwnLoss, ReportPoint
from gateway.media.rtp.rtcp import ReportBlock
from gateway.media.rtp.rtp_stats import FarEndStats


def test_the_gaps_forwarded_are_taken_out_exactly() -> None:
    loss = OwnLoss(window=5.0)
    assert loss.loss(gaps=True) is None  # no report yet
    loss.add(ReportPoint(10.0, highest=1000, lost=30, upstream=(7, 20)))
    assert loss.loss(gaps=True) is None  # one report: no span
    # 50 sequence numbers later the browser lost 12 more; 10 of them never left: the phone's path lost them
    loss.add(ReportPoint(11.0, highest=1050, lost=42, upstream=(7, 30)))
    assert loss.loss(gaps=True) == pytest.approx(2 / 40)
    # a second in which the phone lost 35 % and the browser's leg nothing: 0, whatever any average says
    loss.add(ReportPoint(12.0, highest=1100, lost=60, upstream=(7, 48)))
    assert loss.loss(gaps=True) == pytest.approx((30 - 28) / (100 - 28))  # over the window: 1000 -> 1100


def test_the_span_is_the_window_before_the_latest_report() -> None:
    loss = OwnLoss(window=2.0)
    loss.add(ReportPoint(0.0, 0, 0, (7, 0)))
    loss.add(ReportPoint(1.0, 50, 25, (7, 0)))  # a bad second, long ago
    loss.add(ReportPoint(4.0, 200, 25, (7, 0)))
    loss.add(ReportPoint(5.0, 250, 26, (7, 0)))
    assert loss.loss(gaps=True) == pytest.approx(1 / 50)  # 4.0 -> 5.0: the second before the latest


def test_a_transcoding_call_forwards_no_gaps() -> None:
    """The encoder numbers its packets one after another and concealment fills in: what the browser
    misses is its own leg's, whatever the SIP side lost."""
    loss = OwnLoss()
    loss.add(ReportPoint(1.0, 100, 0, None))
    loss.add(ReportPoint(2.0, 150, 5, None))
    assert loss.loss(gaps=False) == pytest.approx(0.1)
    assert loss.loss(gaps=True) is None  # a pass-through call without the SIP side's counts: not known


@pytest.mark.parametrize(
    ("second", "why"),
    [
        (ReportPoint(2.0, 100, 10, (7, 5)), "no packet between the reports"),
        (ReportPoint(2.0, 150, 10, (7, 2)), "the SIP side's stream started again (its loss went back)"),
        (ReportPoint(2.0, 150, 4, (7, 5)), "the browser's count went back (a new report stream)"),
        (ReportPoint(2.0, 150, 60, (7, 55)), "more gaps than sequence numbers"),
        (ReportPoint(2.0, 100 + 2**31, 10, (7, 5)), "a jump backwards"),
    ],
)
def test_counts_that_do_not_fit_together_give_no_figure(second: ReportPoint, why: str) -> None:
    loss = OwnLoss()
    loss.add(ReportPoint(1.0, 100, 5, (7, 5)))
    loss.add(second)
    assert loss.loss(gaps=True) is None, why


def test_a_new_stream_on_the_sip_side_gives_no_figure() -> None:
    """Its counts start again: a loss read of another SSRC cannot be netted against the first one's."""
    loss = OwnLoss()
    loss.add(ReportPoint(1.0, 100, 5, (7, 3)))
    loss.add(ReportPoint(2.0, 150, 10, (8, 5)))
    assert loss.loss(gaps=True) is None
    assert loss.loss(gaps=False) == pytest.approx(0.1)


def test_a_report_handed_over_late_takes_its_place_by_arrival() -> None:
    """The fast lane hands over the reports it kept at its next sync, after ones Python read at once."""
    loss = OwnLoss()
    loss.add(ReportPoint(1.0, 100, 0, (7, 0)))
    loss.add(ReportPoint(3.0, 200, 10, (7, 10)))
    loss.add(ReportPoint(2.0, 150, 5, (7, 2)))  # arrived between them
    assert loss.loss(gaps=True) == 0.0  # 1.0 -> 3.0: 10 lost, all of them the phone's
    loss.add(ReportPoint(4.0, 250, 12, (7, 10)))
    assert loss.loss(gaps=True) == pytest.approx(2 / 140)  # 1.0 -> 4.0: 150 numbers, 10 never sent


def test_the_sequence_numbers_wrap() -> None:
    loss = OwnLoss()
    loss.add(ReportPoint(1.0, 2**32 - 10, 0, (7, 0)))
    loss.add(ReportPoint(2.0, 40, 1, (7, 0)))
    assert loss.loss(gaps=True) == pytest.approx(1 / 50)


def test_the_sip_sides_reports_are_netted_by_the_gaps_forwarded_when_each_arrived() -> None:
    """FarEndStats (the phone's reports of our stream): each block with ``upstream`` read at its arrival,
    the web leg's gaps forwarded so far (SipLeg._forwarded, from the bridge's web -> SIP path)."""
    far, forwarded = FarEndStats(), [0]
    far.upstream = lambda: (0, forwarded[0])
    ssrc, second = 0x5151, 1 << 32  # NTP: seconds in the upper 32 bits
    first = ReportBlock(ssrc, fraction_lost=0, cumulative_lost=0, extended_highest_sequence=100)
    far.update((first,), ssrc, second, 1.0)
    forwarded[0] = 20  # the browser's path lost 20 of the next 250 before us
    block = ReportBlock(ssrc, fraction_lost=64, cumulative_lost=23, extended_highest_sequence=350)
    other = ReportBlock(0x9999, cumulative_lost=99)  # another source's: not ours
    far.update((block, other), ssrc, 6 * second, 6.0)
    assert far.fraction_lost == 64 and far.own.loss(gaps=True) == pytest.approx(3 / 230)
    assert far.own.loss(gaps=False) == pytest.approx(23 / 250)  # transcoding: all of it the phone's own
