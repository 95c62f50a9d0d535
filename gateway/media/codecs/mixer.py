"""The audio mixer of one room (sans-I/O): decode each participant, sum minus own, encode per participant.

How it works: every participant has a ``PcmCodec`` (its RTP codec against the mixer's PCM format) and a
short queue of decoded 20 ms frames. ``push(participant, payload)`` decodes a payload into that queue as
packets arrive (at most ``max_queued`` frames are kept: older ones are dropped, so a sender whose clock
runs fast adds no delay). ``tick()`` is called every 20 ms by one timer for the whole room (the owner's,
gateway/runtime/rooms/): it takes one frame per participant (silence for one that has none),
sums them, and hands each participant the sum minus what it should not hear, encoded in its own codec,
with its own RTP timestamp. There is no thread and no task per participant.

What a participant does not hear: itself, and the participants of its own ``group``. Browsers in a room
hear one another peer to peer already (rooms.py relays their own connections), so they share the group
"browsers": a browser hears the SIP parties only, a SIP party hears everyone but itself.

Participants: ``add`` (up to ``max_participants``) -> pushes and ticks -> ``remove``. The mixer itself has
no states beyond its participants; it is closed once (``close``: the codecs are freed, later calls fail).
"""

from __future__ import annotations

import array
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from gateway.media.codecs.pcm_codec import PcmCodec, PcmFormat
from gateway.media.errors import MediaError

logger = logging.getLogger(__name__)

MAX_SAMPLE: Final = 32767
MIN_SAMPLE: Final = -32768
SendPayload = Callable[[bytes, int], None]  # (payload, RTP timestamp) to the participant


class MixerError(MediaError):
    """A participant the mixer does not have, one too many, or a closed mixer."""


@dataclass(slots=True)
class _Participant:
    id: str
    codec: PcmCodec
    send: SendPayload
    group: str | None
    queue: deque[array.array[int]] = field(default_factory=deque)
    partial: bytearray = field(default_factory=bytearray)  # decoded PCM short of a whole frame
    timestamp: int = 0
    frames_in: int = 0
    frames_out: int = 0


class Mixer:
    """See the module note. ``rate`` is the PCM rate mixed at (8000: every SIP party is G.711 anyway)."""

    def __init__(self, rate: int = 8000, max_participants: int = 8, max_queued: int = 5) -> None:
        if not 2 <= max_participants <= 64:
            raise ValueError(f"max_participants must be 2-64, got {max_participants!r}")
        if not 1 <= max_queued <= 50:
            raise ValueError(f"max_queued must be 1-50 frames, got {max_queued!r}")
        self.pcm = PcmFormat(rate)
        self.max_participants = max_participants
        self.max_queued = max_queued
        self._silence = array.array("h", bytes(self.pcm.frame_bytes))
        self._participants: dict[str, _Participant] = {}
        self._closed = False
        self.ticks = 0

    def __contains__(self, participant_id: object) -> bool:
        return participant_id in self._participants

    def __len__(self) -> int:
        return len(self._participants)

    @property
    def participants(self) -> tuple[str, ...]:
        return tuple(self._participants)

    def frames_in(self, participant_id: str) -> int:
        """The 20 ms frames ``participant_id`` has given the mix since it joined (0: not in it)."""
        participant = self._participants.get(participant_id)
        return participant.frames_in if participant is not None else 0

    def add(self, participant_id: str, codec: str, send: SendPayload, *, group: str | None = None) -> None:
        """A participant sending and hearing ``codec`` (pcmu, pcma, opus); ``send(payload, timestamp)``
        gets its mix every tick. Its ``group``'s other members are left out of its mix."""
        self._check_open()
        if participant_id in self._participants:
            raise MixerError(f"participant {participant_id!r} is in the mix already")
        if len(self._participants) >= self.max_participants:
            raise MixerError(f"the mix is full ({self.max_participants} participants)")
        self._participants[participant_id] = _Participant(
            participant_id, PcmCodec(codec, self.pcm), send, group
        )
        logger.info("mixer: %s joined (%s, %d in the mix)", participant_id, codec, len(self._participants))

    def remove(self, participant_id: str) -> None:
        """Idempotent."""
        participant = self._participants.pop(participant_id, None)
        if participant is not None:
            participant.codec.close()
            logger.info(
                "mixer: %s left (%d frames in, %d out)",
                participant_id, participant.frames_in, participant.frames_out,
            )  # fmt: skip

    def push(self, participant_id: str, payload: bytes) -> None:
        """One RTP payload from the participant (unknown participants' packets are dropped: a late one)."""
        participant = self._participants.get(participant_id)
        if participant is None or self._closed:
            return
        pcm = participant.codec.decode(payload)
        if not pcm:
            return
        size = self.pcm.frame_bytes
        if participant.partial or len(pcm) != size:
            participant.partial += pcm
            pcm = b""
        while len(participant.partial) >= size:
            self._queue(participant, bytes(participant.partial[:size]))
            del participant.partial[:size]
        if pcm:
            self._queue(participant, pcm)

    def _queue(self, participant: _Participant, pcm: bytes) -> None:
        queue = participant.queue
        if len(queue) >= self.max_queued:
            queue.popleft()  # a fast clock or a burst: keep the delay bounded
        queue.append(array.array("h", pcm))
        participant.frames_in += 1

    def tick(self) -> None:
        """One 20 ms step: every participant gets its mix (see the module note)."""
        self._check_open()
        self.ticks += 1
        participants = list(self._participants.values())
        if not participants:
            return
        frames: dict[str, array.array[int]] = {}
        for participant in participants:
            if participant.queue:
                frames[participant.id] = participant.queue.popleft()
        total = _sum(list(frames.values()), len(self._silence))
        groups: dict[str, list[int]] = {}
        for participant in participants:
            if participant.group is not None and participant.group not in groups:
                members = [
                    frames[p.id] for p in participants if p.group == participant.group and p.id in frames
                ]
                groups[participant.group] = _sum(members, len(self._silence))
        for participant in participants:
            if participant.group is not None:
                heard = _minus(total, groups[participant.group])
            elif participant.id in frames:
                heard = _minus(total, frames[participant.id])
            else:
                heard = _minus(total, None)
            for payload in participant.codec.encode(heard):
                participant.send(payload, participant.timestamp)
                participant.frames_out += 1
            participant.timestamp = (participant.timestamp + participant.codec.frame_ticks) & 0xFFFFFFFF

    def _check_open(self) -> None:
        if self._closed:
            raise MixerError("the mixer is closed")

    def close(self) -> None:
        """Remove everyone; idempotent."""
        for participant_id in list(self._participants):
            self.remove(participant_id)
        self._closed = True


def _sum(frames: list[array.array[int]], samples: int) -> list[int]:
    if not frames:
        return [0] * samples
    if len(frames) == 1:
        return frames[0].tolist()
    return [sum(values) for values in zip(*frames, strict=True)]


def _minus(total: list[int], own: array.array[int] | list[int] | None) -> bytes:
    """``total - own``, clipped to 16 bits, as PCM bytes."""
    if own is None:
        mixed = total
    else:
        mixed = [t - o for t, o in zip(total, own, strict=True)]
    return array.array(
        "h", [MAX_SAMPLE if s > MAX_SAMPLE else MIN_SAMPLE if s < MIN_SAMPLE else s for s in mixed]
    ).tobytes()
