"""Receive statistics of one RTP source (RFC 3550 A.1, A.3, A.8), sans-I/O.

Per-source sequence bookkeeping, fraction and cumulative loss and interarrival jitter, turned into an
RTCP report block.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from gateway.media.errors import PacketError
from gateway.media.rtp.own_loss import OwnLoss, ReportPoint
from gateway.media.rtp.packet import U32_MAX, check_range, ntp_middle32
from gateway.media.rtp.rtcp import ReportBlock

# ------------------------------------------------------------------------------- receive statistics

_MAX_DROPOUT = 3000  # RFC 3550 A.1
_MAX_MISORDER = 100
_SEQ_MOD = 1 << 16


class ReceptionState(NamedTuple):
    """The receive statistics of one source as the fast lane's engine takes and gives them back (its
    ``Reception``): ``ReceiveStatistics.state()`` here, aiortc's ``StreamStatistics`` in
    ``aiortc_receive``. Sequence numbers are -1 before the first packet; ``transit`` is this module's
    last transit time, ``arrival`` and ``timestamp`` aiortc's last in-order arrival (wall clock in clock
    units) and its timestamp; ``jitter`` this module's estimate, or aiortc's ``_jitter_q4``."""

    received: int
    base_seq: int
    max_seq: int
    bad_seq: int
    cycles: int
    transit: float | None
    arrival: int | None
    timestamp: int
    jitter: float


class ReceiveStatistics:
    """Reception statistics of one source (RFC 3550 A.1, A.3, A.8). Times are seconds on any clock."""

    __slots__ = (
        "_bad_seq",
        "_base_seq",
        "_cycles",
        "_expected_prior",
        "_jitter",
        "_last_sr",
        "_last_sr_arrival",
        "_last_transit",
        "_max_seq",
        "_received_prior",
        "clock_rate",
        "received",
        "ssrc",
    )

    def __init__(self, ssrc: int, clock_rate: int) -> None:
        check_range("ssrc", ssrc, 0, U32_MAX)
        if clock_rate <= 0:
            raise PacketError(f"clock rate must be positive, got {clock_rate!r}")
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.received = 0
        self._base_seq = 0
        self._max_seq = -1  # no packet yet
        self._bad_seq = _SEQ_MOD + 1
        self._cycles = 0
        self._expected_prior = 0
        self._received_prior = 0
        self._last_transit: float | None = None
        self._jitter = 0.0
        self._last_sr = 0
        self._last_sr_arrival: float | None = None

    def _init_seq(self, seq: int) -> None:
        self._base_seq = self._max_seq = seq
        self._bad_seq = _SEQ_MOD + 1
        self._cycles = self.received = self._expected_prior = self._received_prior = 0

    def update(self, seq: int, rtp_timestamp: int, arrival: float, *, timing: bool = True) -> bool:
        """Account one packet; False when A.1 judges it a jump to set aside (not counted).

        ``timing=False`` leaves the packet out of the jitter: RFC 4733 events repeat one timestamp.
        """
        if self._max_seq < 0:
            self._init_seq(seq)
        else:
            delta = (seq - self._max_seq) % _SEQ_MOD
            if delta < _MAX_DROPOUT:  # in order, with a permissible gap
                if seq < self._max_seq:
                    self._cycles += _SEQ_MOD
                self._max_seq = seq
            elif delta <= _SEQ_MOD - _MAX_MISORDER:  # a very large jump
                if seq != self._bad_seq:
                    self._bad_seq = (seq + 1) % _SEQ_MOD
                    return False
                self._init_seq(seq)  # two sequential packets: the source restarted
                self._last_transit = None
            # else: a duplicate or reordered packet, counted but max_seq stays
        self.received += 1
        if not timing:
            return True
        # A.8: transit time in timestamp units; differences taken modulo 2^32 for wrapping timestamps
        transit = arrival * self.clock_rate - rtp_timestamp
        if self._last_transit is not None:
            d = (transit - self._last_transit + (1 << 31)) % (1 << 32) - (1 << 31)
            self._jitter += (abs(d) - self._jitter) / 16
        self._last_transit = transit
        return True

    def state(self) -> ReceptionState:
        """The sequence and jitter bookkeeping, for the fast lane's engine to continue from."""
        return ReceptionState(
            self.received, self._base_seq, self._max_seq, self._bad_seq, self._cycles, self._last_transit,
            None, 0, self._jitter,
        )  # fmt: skip

    def restore(self, state: ReceptionState, *, restarted: bool = False) -> None:
        """Continue from ``state`` (the engine's, after packets it accounted); ``restarted``: A.1 saw the
        source restart meanwhile, so the intervals of the fraction lost start again too (A.3)."""
        self.received, self._base_seq, self._max_seq = state.received, state.base_seq, state.max_seq
        self._bad_seq, self._cycles = state.bad_seq, state.cycles
        self._last_transit, self._jitter = state.transit, state.jitter
        if restarted:
            self._expected_prior = self._received_prior = 0

    def on_sender_report(self, ntp_timestamp: int, arrival: float) -> None:
        """Remember the peer's last SR for LSR/DLSR (RFC 3550 §6.4.1)."""
        self._last_sr = ntp_middle32(ntp_timestamp)
        self._last_sr_arrival = arrival

    @property
    def extended_highest_sequence(self) -> int:
        return (self._cycles + max(self._max_seq, 0)) & U32_MAX

    @property
    def expected(self) -> int:
        return 0 if self._max_seq < 0 else self._cycles + self._max_seq - self._base_seq + 1

    @property
    def cumulative_lost(self) -> int:
        """Expected minus received (A.3), negative with duplicates, clamped to signed 24 bits."""
        return max(-0x800000, min(0x7FFFFF, self.expected - self.received))

    @property
    def jitter(self) -> int:
        """Interarrival jitter in timestamp units (A.8)."""
        return int(self._jitter)

    def report_block(self, now: float) -> ReportBlock:
        """A report block for this source; starts a new interval for the fraction lost (A.3)."""
        expected_interval = self.expected - self._expected_prior
        received_interval = self.received - self._received_prior
        self._expected_prior, self._received_prior = self.expected, self.received
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        dlsr = 0
        if self._last_sr_arrival is not None:
            dlsr = min(U32_MAX, max(0, int((now - self._last_sr_arrival) * 65536)))
        return ReportBlock(
            ssrc=self.ssrc,
            fraction_lost=fraction,
            cumulative_lost=self.cumulative_lost,
            extended_highest_sequence=self.extended_highest_sequence,
            jitter=min(U32_MAX, self.jitter),
            last_sr=self._last_sr,
            delay_since_last_sr=dlsr,
        )


# --------------------------------------------------------------------- what the far end reports of us


class FarEndStats:
    """What the far end's RTCP reports say of the stream we send it (RFC 3550 §6.4.1): its loss and
    jitter, and the round-trip time from the LSR/DLSR it echoes (RTT = A - LSR - DLSR)."""

    __slots__ = ("cumulative_lost", "fraction_lost", "jitter", "own", "reports", "rtt", "upstream")

    def __init__(self) -> None:
        self.reports = 0
        self.rtt: float | None = None  # seconds, the last measured
        self.fraction_lost = self.cumulative_lost = self.jitter = 0
        # the far end's own share of its loss (own_loss.py): each report with the gaps we had forwarded
        # to it when it arrived (``upstream``: (source, count), None when not known)
        self.own = OwnLoss()
        self.upstream: Callable[[], tuple[int, int] | None] | None = None

    def update(self, blocks: tuple[ReportBlock, ...], ssrc: int, arrival_ntp: int, arrival: float) -> None:
        """The blocks of a report about ``ssrc`` (ours) that arrived at ``arrival_ntp`` (the wall clock as
        NTP, for the RTT), ``arrival`` (monotonic seconds, own_loss.py)."""
        for block in blocks:
            if block.ssrc != ssrc:
                continue
            self.reports += 1
            self.fraction_lost, self.cumulative_lost = block.fraction_lost, block.cumulative_lost
            self.jitter = block.jitter
            upstream = self.upstream() if self.upstream is not None else None
            self.own.add(
                ReportPoint(arrival, block.extended_highest_sequence, block.cumulative_lost, upstream)
            )
            if block.last_sr:
                rtt = (ntp_middle32(arrival_ntp) - block.last_sr - block.delay_since_last_sr) & U32_MAX
                if rtt < 60 * 65536:  # anything longer is a clock step or a forged report
                    self.rtt = rtt / 65536
