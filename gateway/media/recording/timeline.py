"""One recording's states and its two channels on one clock, sans-I/O.

States (``RecordingState``): IDLE -> RECORDING <-> PAUSED -> STOPPED; ``Recording.apply(action)`` is the
only way between them and an illegal (state, action) raises ``RecordingError`` naming both.

``StereoTimeline`` places decoded PCM (native-endian signed 16-bit mono) of the left channel (the web
user) and the right one (the SIP party) at sample positions counted from the recording's start, and
gives back interleaved stereo frames up to a position: what no packet covered is silence, so the two
channels stay aligned whatever each leg lost or did not send. A packet's position comes from its
arrival time, kept continuous through its RTP timestamps (``LegClock``) so that jitter does not move
its audio; a jump of more than ``resync`` from the arrival time (a new source, a long gap, a clock that
drifts) re-anchors it.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from typing import Final

from gateway.media.errors import MediaError

logger = logging.getLogger(__name__)

U32: Final = 1 << 32


class RecordingError(MediaError):
    """A recording asked to do what its state does not allow (or a recording that cannot start)."""


class RecordingState(enum.StrEnum):
    IDLE = "idle"
    RECORDING = "recording"
    PAUSED = "paused"
    STOPPED = "stopped"


class RecordingAction(enum.StrEnum):
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"


TRANSITIONS: Final[dict[tuple[RecordingState, RecordingAction], RecordingState]] = {
    (RecordingState.IDLE, RecordingAction.START): RecordingState.RECORDING,
    (RecordingState.STOPPED, RecordingAction.START): RecordingState.RECORDING,  # a new file
    (RecordingState.RECORDING, RecordingAction.PAUSE): RecordingState.PAUSED,
    (RecordingState.PAUSED, RecordingAction.RESUME): RecordingState.RECORDING,
    (RecordingState.RECORDING, RecordingAction.STOP): RecordingState.STOPPED,
    (RecordingState.PAUSED, RecordingAction.STOP): RecordingState.STOPPED,
}


@dataclass(slots=True)
class Recording:
    """The state of one call's recording; ``name`` for the log lines (``call=<id>``)."""

    name: str = "-"
    state: RecordingState = RecordingState.IDLE

    def apply(self, action: RecordingAction) -> RecordingState:
        new = TRANSITIONS.get((self.state, action))
        if new is None:
            raise RecordingError(f"cannot {action.value} a recording that is {self.state.value}")
        logger.info("call=%s recording %s -> %s", self.name, self.state.value, new.value)
        self.state = new
        return new


@dataclass(slots=True)
class LegClock:
    """Where one leg's packets go on the recording's clock: anchored at a packet's arrival, followed by
    its RTP timestamps, re-anchored on a new SSRC or a jump of more than ``resync`` samples. A leg heard
    without its RTP header (``timestamp`` None: the web leg's audio filter) is placed end to end from
    one packet to the next, re-anchored the same way."""

    rate: int
    resync: int
    ssrc: int | None = None
    anchor_ts: int = 0
    anchor_pos: int = 0
    clock_rate: int = 8000
    end: int | None = None  # where the last packet's audio ended (no timestamps)

    def position(
        self, ssrc: int | None, timestamp: int | None, clock_rate: int, arrival: int, samples: int
    ) -> int:
        """The sample position of ``samples`` of audio with RTP ``timestamp`` arriving at sample ``arrival``."""
        if timestamp is None:
            pos = self.end if self.end is not None and abs(self.end - arrival) <= self.resync else arrival
            self.end = pos + samples
            return pos
        if self.ssrc == ssrc and self.clock_rate == clock_rate:
            delta = (timestamp - self.anchor_ts) % U32
            if delta >= U32 // 2:
                delta -= U32
            pos = self.anchor_pos + delta * self.rate // clock_rate
            if abs(pos - arrival) <= self.resync:
                return pos
        self.ssrc, self.anchor_ts, self.anchor_pos, self.clock_rate = ssrc, timestamp, arrival, clock_rate
        return arrival


@dataclass(slots=True)
class StereoTimeline:
    """Two channels of 16-bit PCM from sample ``flushed`` on (see the module note)."""

    rate: int
    flushed: int = 0  # samples given out already (``take``)
    left: bytearray = field(default_factory=bytearray)
    right: bytearray = field(default_factory=bytearray)
    late: int = 0  # samples dropped: their place was given out already

    def put(self, channel: int, position: int, pcm: bytes) -> None:
        """``pcm`` at sample ``position`` of channel 0 (left) or 1 (right); what overlaps is replaced."""
        skip = self.flushed - position
        if skip > 0:  # (partly) in what was given out already
            self.late += min(skip, len(pcm) // 2)
            pcm = pcm[2 * skip :]
            position = self.flushed
            if not pcm:
                return
        buffer = self.left if channel == 0 else self.right
        start = 2 * (position - self.flushed)
        end = start + len(pcm)
        if len(buffer) < end:
            buffer.extend(bytes(end - len(buffer)))
        buffer[start:end] = pcm

    def silence(self, start: int, end: int) -> None:
        """Both channels silent from sample ``start`` to ``end`` (a paused span)."""
        begin = max(0, 2 * (start - self.flushed))
        for buffer in (self.left, self.right):
            stop = min(len(buffer), 2 * (end - self.flushed))
            if stop > begin:
                buffer[begin:stop] = bytes(stop - begin)

    def take(self, upto: int) -> bytes:
        """Interleaved stereo frames (left, right) from ``flushed`` to sample ``upto``."""
        count = upto - self.flushed
        if count <= 0:
            return b""
        size = 2 * count
        left, right = self.left[:size], self.right[:size]
        left.extend(bytes(size - len(left)))
        right.extend(bytes(size - len(right)))
        del self.left[:size], self.right[:size]
        out = bytearray(2 * size)
        out[0::4], out[1::4] = left[0::2], left[1::2]
        out[2::4], out[3::4] = right[0::2], right[1::2]
        self.flushed = upto
        return bytes(out)
