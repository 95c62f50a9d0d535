"""The share of a peer's reported loss that is its own leg's, counted by sequence numbers.

A peer's receiver reports on the stream the gateway sends it (RFC 3550 §6.4.1) count every sequence
number it did not get. A pass-through call forwards the other side's packets with their numbering
(gateway/media/rtp/seqmap.py), so a packet lost on the other leg's path is missing in what the peer gets
too, and its report counts it. Between two reports the peer expected ``span`` packets (the difference of
their extended highest sequence numbers) and lost ``reported`` of them (of their cumulative numbers
lost); the gateway never sent ``gaps`` of them: the growth between the two reports' arrivals of the gaps
it had forwarded, read at each arrival. For the browser's reports that is the SIP side's stream's
cumulative loss (RFC 3550 A.3: sip_leg.SipLeg.cumulative_lost; the fast lane's engine reads it when it
keeps a report, `_fastlane_thread.c` web_rtcp); for the phone's, the web -> SIP path's count of the gaps
it forwarded less those restored from RFC 2198 redundancy (rtp_stats.FarEndStats.upstream). So the
peer's leg lost ``reported - gaps`` of the ``span - gaps`` packets it was sent. A direction that
transcodes or repacketizes forwards no gaps (its packets are numbered one after another, concealment
fills in): there ``gaps`` is 0; so does a mixed call.

Not counted (each reads the peer's own loss low): packets a pass-through call restores from the SIP
side's RFC 2198 redundancy go out under the lost ones' numbers but count as lost in the SIP side's
statistics; a stream restarted under the same SSRC (RFC 3550 A.1) between two reports; the fill the
gateway plays to the SIP side while the browser's audio is missing. (Packets dropped while a direction is
held, and RFC 4733 events told by SIP INFO instead, leave no gap: the sender's numbering forgets them,
seqmap.py.)

Netting a report's fraction lost against the other leg's loss over a fixed window instead (ops/quality.py
before) misreads when the two spans differ: aiortc reports every 0.5-1.5 s, and a second lossier than
the window's average left the web leg a share of loss that was not its own.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

U32 = 1 << 32


class ReportPoint(NamedTuple):
    arrival: float  # seconds, time.monotonic()
    highest: int  # the report's extended highest sequence number received (32 bits)
    lost: int  # its cumulative number of packets lost (signed)
    upstream: tuple[int, int] | None  # (source, the gaps forwarded to the peer so far) then; None: unknown


class OwnLoss:
    """The reports of one stream the gateway sends (module note); `loss()` over the last ``window`` s."""

    __slots__ = ("_points", "window")

    def __init__(self, window: float = 5.0) -> None:
        self.window = window
        self._points: deque[ReportPoint] = deque(maxlen=64)

    def add(self, point: ReportPoint) -> None:
        """A report, in the order of arrival (the fast lane hands over the reports it kept after others)."""
        points = self._points
        at = len(points)
        while at > 0 and points[at - 1].arrival > point.arrival:
            at -= 1
        if at == len(points):
            points.append(point)
        elif len(points) < (points.maxlen or 0):
            points.insert(at, point)
        latest = points[-1].arrival
        while points[0].arrival < latest - self.window and len(points) > 2:
            points.popleft()

    def loss(self, *, gaps: bool) -> float | None:
        """The fraction of the packets sent to the browser that its leg lost, between the latest report and
        the oldest one within ``window`` s before it; ``gaps``: the call forwards the SIP side's gaps
        (pass-through, not mixed). None when it cannot be told: fewer than two reports, no packet between
        them, or counts that do not fit together (a new stream on either side)."""
        points = self._points
        if len(points) < 2:
            return None
        last = points[-1]
        first = next(
            (p for p in points if p.arrival >= last.arrival - self.window and p is not last), points[-2]
        )
        span = (last.highest - first.highest) % U32
        if span == 0 or span >= U32 // 2:
            return None
        forwarded = 0
        if gaps:  # the same SIP-side stream at both ends, or its counts started again between them
            if first.upstream is None or last.upstream is None or first.upstream[0] != last.upstream[0]:
                return None
            forwarded = last.upstream[1] - first.upstream[1]
        reported = last.lost - first.lost
        if not 0 <= forwarded < span or reported < 0:
            return None
        return min(1.0, max(0.0, (reported - forwarded) / (span - forwarded)))
