"""A short reorder buffer for one transcoded direction, sans-I/O: packets in, packets out in sequence order.

A transcoding lane decodes, so it must decode in order: a pair swapped by the network would otherwise
swap two 20 ms frames in playout. ``ReorderBuffer.push`` takes each packet with its arrival time and
returns the packets now ready, in RTP sequence order (RFC 3550 §A.1 arithmetic: 16-bit numbers that
wrap). Nothing waits while nothing is missing: an in-order packet comes straight back. When a number is
missing, the later packets are held until it comes, but at most ``wait`` seconds after the first of them
arrived (or until ``capacity`` are held; at once for a packet further ahead than ``capacity``: what lies
between is lost, not reordered); then the gap is given up: the next packet comes out with
``lost`` set to the count missing before it, for the decoder to conceal (Opus: FEC from that packet, else
PLC; G.711: ITU-T G.711 Appendix I). A packet whose slot was given up or played arrives late: dropped and
counted. A jump beyond RFC 3550's MAX_DROPOUT (or far back) is a new timeline: what is held comes out and
the buffer restarts from the new number. Time is driven by the caller (``now``); ``pop_due`` releases what
is due without a new packet, ``flush`` everything (before handing the direction to the fast lane).

The wait adapts (``adaptive``, the lanes' way): 0 at first, so a lost packet's gap is given up as soon as
the next one arrives; a packet that comes after its gap was given up (a reordering) makes it ``hold``, and
each ``CALM`` s without another halve it, down to 0 below ``MARGIN``. A fixed 60 ms wait after every loss
was seen by the browser's jitter buffer as 60 ms of jitter: at 2-5 % random loss Chromium held 102-140 ms
of audio instead of 47-59 ms, for the same PESQ (issue 66; bench/RESULTS.md). Growing the wait only to
what a reordered packet had needed lost a packet at each deeper reordering.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["HOLD_SECONDS", "Released", "ReorderBuffer"]

HOLD_SECONDS = 0.06  # the longest wait for a missing packet (the issue's ~60 ms)
MARGIN = 0.005  # s: a wait halved below this is 0
CALM = 10.0  # s without a reordering after which the wait halves
CAPACITY = 8
MAX_DROPOUT = 3000  # RFC 3550 §A.1
MAX_MISORDER = 100  # RFC 3550 §A.1


def _signed16(delta: int) -> int:
    delta &= 0xFFFF
    return delta - 0x10000 if delta >= 0x8000 else delta


@dataclass(frozen=True, slots=True)
class Released:
    """A packet out of the buffer, in order; ``lost``: how many numbers were given up just before it."""

    seq: int
    timestamp: int
    payload: bytes
    lost: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.seq <= 0xFFFF or self.lost < 0:
            raise ValueError(f"bad released packet: seq {self.seq!r}, lost {self.lost!r}")


@dataclass(slots=True)
class _Held:
    timestamp: int
    payload: bytes | None  # None: a number taken by something not decoded (``skip``)
    arrival: float


@dataclass(slots=True)
class ReorderBuffer:
    """One direction's packets by sequence number (see the module note)."""

    hold: float = HOLD_SECONDS  # the longest wait (adaptive), or the wait
    capacity: int = CAPACITY
    adaptive: bool = True
    late: int = 0  # arrived after their slot was given up or played
    duplicates: int = 0
    concealed: int = 0  # numbers given up (the decoder conceals them)
    wait: float = 0.0  # the wait now (``hold`` when not adaptive)
    _expected: int | None = None
    _held: dict[int, _Held] = field(default_factory=dict)
    _raised: float = 0.0  # when the wait last grew or halved
    _gap: tuple[int, int] | None = None  # the last gap given up: its first number, its count

    def __post_init__(self) -> None:
        if self.hold < 0 or self.capacity < 1:
            raise ValueError(f"hold must be >= 0 and capacity >= 1, got {self.hold!r}, {self.capacity!r}")
        self.wait = 0.0 if self.adaptive else self.hold

    @property
    def pending(self) -> bool:
        """Whether packets are held behind a missing one."""
        return bool(self._held)

    @property
    def expected(self) -> int | None:
        """The next sequence number to come out (None before the first packet)."""
        return self._expected

    def restart(self, next_seq: int | None = None) -> None:
        """Forget the order (nothing may be held: ``flush`` first); continue at ``next_seq``."""
        self._held.clear()
        self._expected = None if next_seq is None else next_seq & 0xFFFF

    def push(self, seq: int, timestamp: int, payload: bytes, now: float) -> list[Released]:
        """The packets ready after this one arrived at ``now``, in order."""
        return self._push(seq, timestamp, payload, now)

    def skip(self, seq: int, now: float) -> list[Released]:
        """A number of the same source taken by a packet that is not decoded (an RFC 4733 event shares the
        audio's sequence numbers, RFC 4733 §2.1): not a gap to wait for or conceal. The packets ready."""
        if self._expected is None:
            return []
        return self._push(seq, 0, None, now)

    def _push(self, seq: int, timestamp: int, payload: bytes | None, now: float) -> list[Released]:
        seq &= 0xFFFF
        if self._expected is None:
            self._expected = seq
        delta = _signed16(seq - self._expected)
        out: list[Released] = []
        if delta >= MAX_DROPOUT or delta < -MAX_MISORDER:  # RFC 3550 §A.1: a new timeline
            out = self.flush()
            self._expected = seq
        elif delta < 0:
            self.late += 1
            self._reordered(seq, now)
            return []
        elif delta > self.capacity:  # further ahead than a reordering: those between are lost, no wait
            out = self.flush()
            assert self._expected is not None
            lost = _signed16(seq - self._expected)
            self.concealed += lost
            self._expected = (seq + 1) & 0xFFFF
            return out if payload is None else [*out, Released(seq, timestamp, payload, lost)]
        if seq in self._held:
            self.duplicates += 1
            return out
        self._held[seq] = _Held(timestamp, payload, now)
        return out + self._release(now, force=len(self._held) > self.capacity)

    def _given_up(self, first: int, count: int, now: float) -> None:
        self._gap = (first, count)
        if self.adaptive and self.wait > 0 and now - self._raised >= CALM:  # calm: the wait halves
            self.wait = self.wait / 2 if self.wait / 2 >= MARGIN else 0.0
            self._raised = now

    def _reordered(self, seq: int, now: float) -> None:
        """A packet after its gap was given up: the wait becomes ``hold`` (adaptive)."""
        if not self.adaptive or self._gap is None:
            return
        first, count = self._gap
        if (seq - first) & 0xFFFF < count:
            self.wait, self._raised = self.hold, now

    def pop_due(self, now: float) -> list[Released]:
        """What is due at ``now`` without a new packet (the wait for a missing one ran out)."""
        return self._release(now, force=False)

    def flush(self) -> list[Released]:
        """Everything held, in order, the gaps given up."""
        return self._release(0.0, force=True, everything=True)

    def _release(self, now: float, *, force: bool, everything: bool = False) -> list[Released]:
        out: list[Released] = []
        lost = 0
        while self._held:
            assert self._expected is not None
            held = self._held.pop(self._expected, None)
            if held is not None:
                if held.payload is not None:
                    out.append(Released(self._expected, held.timestamp, held.payload, lost))
                self._expected = (self._expected + 1) & 0xFFFF
                lost = 0
                continue
            oldest = min(h.arrival for h in self._held.values())
            if not (everything or force or now - oldest >= self.wait):
                break
            expected = self._expected
            following = min(self._held, key=lambda s: _signed16(s - expected))
            gap = _signed16(following - expected)
            if not everything:  # (a flush's ``now`` is not a time)
                self._given_up(expected, gap, now)
            lost += gap
            self.concealed += gap
            self._expected = following
            force = False  # one gap given up per packet over capacity
        return out
