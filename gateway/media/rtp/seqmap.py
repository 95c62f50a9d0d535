"""Output sequence numbers of pass-through audio: the input's, shifted by an offset (issue 35), sans-I/O.

A sender that forwards another leg's RTP without decoding it keeps the input's loss and order visible to
the far end: output = input + offset (mod 2^16), so a gap stays a gap and a late packet stays late, and
the far end's jitter buffer and concealment (and its RTCP loss figures) see what really happened, as
rtpengine's forwarding does. The offset is chosen when a source starts (its first packet goes out as the
sender's next number: no false gap at a change of source) and chosen again only on a real change:

* a new SSRC (a re-INVITE to another phone, a transfer, early media then the answer);
* a jump of the sequence number (RFC 3550 §A.1: more than MAX_DROPOUT ahead or MAX_MISORDER behind):
  the first such packet goes out as the next number, and when the one after it follows it (the source
  restarted: §A.1's "two sequential packets") the offset moves there;
* the sender's own packets (RFC 4733 events it generates, transcoded frames) took numbers the input
  would map onto: the next in-order packet continues after them (the offset closes up by as many);
* input the sender did not send (``forget``, forward.MediaPath's on_skip: a hold ended, an RFC 4733
  event told by SIP INFO): the far end would count those numbers lost (RTCP, its concealment); the next
  packet continues the output instead.

The sender's next number (``next_seq``) is the sender's: ``map`` reads it and the sender advances it to
one after what it sent when that is ahead (a late packet leaves it). The fast lane's engine does the same
(gateway/media/fastlane/_fastlane_media.c ``map_sequence``) from ``state()`` and hands it back.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_DROPOUT = 3000  # RFC 3550 §A.1
MAX_MISORDER = 100
_MOD = 0x10000


@dataclass(frozen=True, slots=True)
class SequenceState:
    """``SequenceMap``'s state, as the fast lane's engine takes and returns it: the source (-1: none yet),
    the offset, the highest input sequence number of the source, the number a restart would continue
    with (-1: none)."""

    ssrc: int = -1
    offset: int = 0
    highest: int = 0
    bad: int = -1

    def __post_init__(self) -> None:
        if not -1 <= self.ssrc <= 0xFFFFFFFF:
            raise ValueError(f"an SSRC is 32 bits or -1, got {self.ssrc!r}")
        for name, value in (("offset", self.offset), ("highest", self.highest)):
            if not 0 <= value <= 0xFFFF:
                raise ValueError(f"{name} must be 16 bits, got {value!r}")
        if not -1 <= self.bad <= 0xFFFF:
            raise ValueError(f"bad must be -1 or 16 bits, got {self.bad!r}")


class SequenceMap:
    """One output's mapping of input sequence numbers (module note)."""

    __slots__ = ("_bad", "_highest", "_offset", "_ssrc")

    def __init__(self) -> None:
        self._ssrc, self._offset, self._highest, self._bad = -1, 0, 0, -1

    def map(self, ssrc: int, seq: int, next_seq: int) -> int:
        """The output sequence number of input packet ``seq`` of ``ssrc``, the sender's next being
        ``next_seq``."""
        if ssrc != self._ssrc:  # a new source: it continues the output without a gap
            return self._resync(ssrc, seq, next_seq)
        delta = (seq - self._highest) % _MOD
        if delta == 0 or delta >= _MOD - MAX_MISORDER:  # a duplicate or a late packet: where it belongs
            return (seq + self._offset) % _MOD
        if delta < MAX_DROPOUT:  # in order, maybe after a gap (kept)
            self._highest = seq
            out = (seq + self._offset) % _MOD
            if (out - next_seq) % _MOD >= 0x8000:  # the sender's own packets took these numbers
                self._offset = (next_seq - seq) % _MOD
                out = next_seq
            return out
        if seq == self._bad:  # RFC 3550 §A.1: two sequential packets after a jump, the source restarted
            return self._resync(ssrc, seq, next_seq)
        self._bad = (seq + 1) % _MOD  # a stray packet (or the first of a restart): the next number
        return next_seq

    def _resync(self, ssrc: int, seq: int, next_seq: int) -> int:
        self._ssrc, self._offset, self._highest, self._bad = ssrc, (next_seq - seq) % _MOD, seq, -1
        return next_seq

    def forget(self) -> None:
        """Input was not sent (a hold, an event told by SIP INFO): the next packet, of any source, goes out
        as the sender's next number, so the far end does not count the skipped ones as lost."""
        self._ssrc = -1

    def state(self) -> SequenceState:
        return SequenceState(self._ssrc, self._offset, self._highest, self._bad)

    def restore(self, state: SequenceState) -> None:
        self._ssrc, self._offset, self._highest, self._bad = (
            state.ssrc,
            state.offset,
            state.highest,
            state.bad,
        )


def advance(next_seq: int, sent: int) -> int:
    """The sender's next number after it sent ``sent``: one after it when it is ahead of ``next_seq``
    (or equal), else unchanged (a late packet)."""
    return (sent + 1) % _MOD if (sent - next_seq) % _MOD < 0x8000 else next_seq
