"""RTP timestamp continuity across a leg's source changes, sans-I/O.

Each leg sends with its own SSRC and sequence numbers (the RTP endpoint's and aiortc's sender own those),
so only timestamps need mapping: ``out = anchor_out + (in - anchor_in) * out_rate / in_rate``. The
anchor moves when the input SSRC changes (early media from one source, then the answer from another;
RFC 3550 §8.2) or when the input timestamps jump away from the wall clock (a PBX switching to music on
hold on the same SSRC). The new anchor continues from the last output timestamp plus the time elapsed,
so the receiver of the other leg sees one continuous stream: no SRTP replay drop, no jitter-buffer reset.
"""

from __future__ import annotations

import logging
import random

logger = logging.getLogger(__name__)

U32 = 1 << 32
JUMP_SECONDS = 1.0  # timestamp advance and wall clock disagreeing by more than this: a new timeline


def signed_delta(delta: int) -> int:
    """A 32-bit timestamp difference as a signed value (RFC 3550 §5.1: timestamps wrap)."""
    delta %= U32
    return delta - U32 if delta >= U32 // 2 else delta


class TimestampMapper:
    """Maps input RTP timestamps (``in_rate`` Hz) to a continuous output timeline (``out_rate`` Hz)."""

    __slots__ = (
        "_anchor_in",
        "_anchor_out",
        "_idle_since",
        "_last_in",
        "_last_now",
        "_last_out",
        "_ssrc",
        "in_rate",
        "name",
        "out_rate",
        "reanchors",
    )  # fmt: skip

    def __init__(self, in_rate: int, out_rate: int, *, name: str = "", start: int | None = None) -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f"clock rates must be positive, got {in_rate!r} -> {out_rate!r}")
        self.name = name
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._ssrc: int | None = None
        self._anchor_in = 0
        self._anchor_out = random.getrandbits(32) if start is None else start
        self._last_in = 0
        self._last_out: int | None = None
        self._last_now = 0.0
        self._idle_since: float | None = None  # before the first packet: when the timeline was first used
        self.reanchors = 0

    @property
    def ssrc(self) -> int | None:
        """The input SSRC the timeline is anchored to (None before the first packet)."""
        return self._ssrc

    def set_rates(self, in_rate: int, out_rate: int) -> None:
        """New codec on either side: the next packet starts a new anchor."""
        if (in_rate, out_rate) != (self.in_rate, self.out_rate):
            self.in_rate, self.out_rate = in_rate, out_rate
            self._ssrc = None

    def map(self, ssrc: int, timestamp: int, now: float) -> int:
        """The output timestamp of an audio packet; moves the anchor when the source changed or jumped."""
        if ssrc != self._ssrc or self._jumped(timestamp, now):
            self._reanchor(ssrc, timestamp, now)
        out = self._convert(timestamp)
        self._last_in, self._last_now, self._last_out = timestamp, now, out
        return out

    def peek(self, ssrc: int, timestamp: int, now: float) -> int:
        """Map a timestamp without moving the timeline forward (RFC 4733 events repeat their start time)."""
        if ssrc != self._ssrc:
            self._reanchor(ssrc, timestamp, now)
            self._last_in, self._last_now = timestamp, now
        return self._convert(timestamp)

    def anchor_state(self) -> tuple[int, int, int, float] | None:
        """(anchor input, anchor output, last input timestamp, its arrival) once a packet was mapped: with
        the rates, what ``map`` does to the current source's next packets unless it jumps."""
        if self._last_out is None or self._ssrc is None:
            return None
        return self._anchor_in, self._anchor_out, self._last_in, self._last_now

    @property
    def anchor_out(self) -> int:
        """Where the output timeline starts (before the first packet) or was last anchored."""
        return self._anchor_out

    def adopt(self, ssrc: int, anchor_in: int, anchor_out: int, now: float) -> None:
        """Before the first packet only (else nothing): the fast lane's engine mapped the first ones of
        ``ssrc`` from these anchors (``MediaPath.first_lane``); ``advance`` then moves to its last."""
        if self._last_out is None:
            self._ssrc, self._anchor_in, self._anchor_out = ssrc, anchor_in % U32, anchor_out % U32
            self._last_in, self._last_out, self._last_now = self._anchor_in, self._anchor_out, now

    def advance(self, ssrc: int, timestamp: int, now: float, out: int) -> bool:
        """Move the timeline to a packet the fast lane mapped to ``out``; False, changing nothing, when
        ``map`` would not have mapped it so (the anchor moved since: then ``map`` each packet)."""
        if self._last_out is None or ssrc != self._ssrc or self._convert(timestamp) != out:
            return False
        self._last_in, self._last_now, self._last_out = timestamp, now, out
        return True

    def now_out(self, now: float) -> int:
        """The output timestamp that corresponds to ``now`` (for events generated locally). Before the first
        packet the timeline runs on the clock from its first use (the reconnecting fill's frames, a DTMF
        digit): the first packet then maps to where the clock has brought it, not back to its start."""
        if self._last_out is None:
            if self._idle_since is None:
                self._idle_since = now
            elapsed = max(0.0, now - self._idle_since)
            return (self._anchor_out + round(elapsed * self.out_rate)) % U32
        return (self._last_out + round((now - self._last_now) * self.out_rate)) % U32

    def _convert(self, timestamp: int) -> int:
        delta = signed_delta(timestamp - self._anchor_in)
        return (self._anchor_out + delta * self.out_rate // self.in_rate) % U32

    def _jumped(self, timestamp: int, now: float) -> bool:
        if self._last_out is None:
            return False
        media = signed_delta(timestamp - self._last_in) / self.in_rate
        return abs(media - (now - self._last_now)) > JUMP_SECONDS

    def _reanchor(self, ssrc: int, timestamp: int, now: float) -> None:
        first = self._last_out is None
        self._anchor_out = self.now_out(now)  # (the first packet: where the clock brought the timeline)
        if first:  # (an event's, peek: the timeline stands there now, until a packet is mapped)
            self._idle_since = now
        else:
            self.reanchors += 1
            if ssrc != self._ssrc:
                logger.info(
                    "%s new source SSRC %08x (was %08x): timeline kept", self.name, ssrc, self._ssrc or 0
                )
            else:
                logger.debug(
                    "%s timestamps re-anchored for SSRC %08x at %d", self.name, ssrc, self._anchor_out
                )
        self._ssrc = ssrc
        self._anchor_in = timestamp


class FrameClock:
    """Output timestamps of re-encoded frames: consecutive, re-synced to the mapped input on a gap."""

    __slots__ = ("next", "tolerance")

    def __init__(self, tolerance: int) -> None:
        self.next: int | None = None  # the next frame's timestamp (the fast lane reads and sets it)
        self.tolerance = tolerance

    def stamp(self, mapped: int, samples: int) -> int:
        """The timestamp of the next output frame of ``samples`` RTP clock ticks, given the mapped input."""
        if self.next is None or abs(signed_delta(mapped - self.next)) > self.tolerance:
            self.next = mapped
        timestamp = self.next
        self.next = (self.next + samples) % U32
        return timestamp
