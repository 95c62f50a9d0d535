"""The "reconnecting" fill: what the SIP side hears while the browser's audio is missing.

A browser that stops sending (killed, its network gone) or whose leg waits for a reconnect
(web_auth.reconnect_grace) would leave the phone with dead air: no RTP at all. Instead the bridge plays
this fill on the SIP leg, in its negotiated codec: low-level comfort noise (about -50 dBov) with a
soft double beep (440 Hz, about -22 dBov) every two seconds, the pattern of "please hold, reconnecting".
RFC 3389 comfort noise (payload type 13) would need CN in the SIP offer, which the gateway does not
make, so the noise is audio in the call's codec. The frames are made once as 8 kHz PCM and G.711-coded
by table; G.722 and Opus calls transcode them from PCMU (gateway/media/codecs/transcode.py).

``ComfortFill.start()`` paces one 20 ms frame at a time on the event loop until ``stop()``; its RTP
timestamps continue the SIP leg's timeline (``now_timestamp``), the first packet with the marker bit.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import functools
import logging
import math
import random
from collections.abc import Callable
from typing import Final

import av

from gateway.media.codecs.transcode import FRAME_MS, Transcoder, audio_codec, g711_tables
from gateway.media.errors import MediaError

logger = logging.getLogger(__name__)

RATE: Final = 8000
FRAME_SAMPLES: Final = RATE * FRAME_MS // 1000
CYCLE_FRAMES: Final = 100  # two seconds
BEEP_HZ: Final = 440.0
BEEP_AMPLITUDE: Final = 2600  # of 32767: about -22 dBov
NOISE_AMPLITUDE: Final = 100  # about -50 dBov: "the line is alive", not a hiss
BEEPS: Final = ((0, 8), (13, 21))  # frames [start, end) of each beep: 160 ms on, 100 ms off, 160 ms on

# (payload type, payload, RTP timestamp, marker)
SendFrame = Callable[[int, bytes, int, bool], None]


@functools.cache
def fill_pcm() -> tuple[bytes, ...]:
    """The cycle's 20 ms frames, native-endian signed 16-bit PCM at 8 kHz (the same for every call)."""
    noise = random.Random(3389)  # fixed: the fill is a recording, not a secret
    frames = []
    for index in range(CYCLE_FRAMES):
        beep = any(start <= index < end for start, end in BEEPS)
        samples = array.array("h")
        for n in range(FRAME_SAMPLES):
            value = noise.randint(-NOISE_AMPLITUDE, NOISE_AMPLITUDE)
            if beep:
                t = (index * FRAME_SAMPLES + n) / RATE
                value += int(BEEP_AMPLITUDE * math.sin(2 * math.pi * BEEP_HZ * t))
            samples.append(value)
        frames.append(samples.tobytes())
    return tuple(frames)


@functools.cache
def g711_fill(ffmpeg: str) -> tuple[bytes, ...]:
    """The cycle coded as PCMU (``pcm_mulaw``) or PCMA (``pcm_alaw``) payloads."""
    table = g711_tables(ffmpeg).encode
    return tuple(bytes(table[sample & 0xFFFF] for sample in array.array("h", frame)) for frame in fill_pcm())


class ComfortFill:
    """Plays the fill on one leg while ``active``; ``codec()`` gives (name, payload type) or None."""

    def __init__(
        self,
        send: SendFrame,
        now_timestamp: Callable[[], int],
        codec: Callable[[], tuple[str, int] | None],
        *,
        call_id: str = "",
    ) -> None:
        self._send = send
        self._now_timestamp = now_timestamp
        self._codec = codec
        self._call = call_id
        self._task: asyncio.Task[None] | None = None
        self.frames_sent = 0
        # asked before each frame: whether the leg's own audio came back meanwhile (then no more frames:
        # the fast lane's engine forwards it, gateway/media/fastlane/controller.py)
        self.heard: Callable[[], bool] | None = None

    @property
    def active(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> bool:
        """Start playing (idempotent); False when the leg has no codec the fill can be made in."""
        if self.active:
            return True
        codec = self._codec()
        if codec is None:
            return False
        name, payload_type = codec
        try:
            frames = _Frames(name)
        except (MediaError, av.FFmpegError) as exc:  # a codec the transcoder cannot make: silence
            logger.info("call=%s no reconnecting fill in %s: %s", self._call, name, exc)
            return False
        self._task = asyncio.get_running_loop().create_task(
            self._play(frames, payload_type), name=f"comfort-fill-{self._call}"
        )
        logger.info("call=%s SIP side hears the reconnecting fill (%s)", self._call, name)
        return True

    async def stop(self) -> None:
        """Stop playing (idempotent)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            logger.info("call=%s reconnecting fill stopped", self._call)

    def cancel(self) -> None:
        """``stop()`` from synchronous code (a packet from the browser came back)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            logger.info("call=%s reconnecting fill stopped: the browser's audio is back", self._call)

    async def _play(self, frames: _Frames, payload_type: int) -> None:
        loop = asyncio.get_running_loop()
        timestamp = self._now_timestamp()
        start, marker, index = loop.time(), True, 0
        while True:
            if self.heard is not None and self.heard():
                return
            for payload in frames.next():
                self._send(payload_type, payload, timestamp & 0xFFFFFFFF, marker)
                self.frames_sent += 1
                marker = False
            timestamp += frames.ticks
            index += 1
            delay = start + index * FRAME_MS / 1000 - loop.time()
            if delay < -0.2:  # the loop stalled: no burst to catch up, carry on from now
                start, index = loop.time(), 0
            await asyncio.sleep(max(0.0, delay))


class _Frames:
    """The cycle in one codec: G.711 from its table, G.722 and Opus transcoded from PCMU live."""

    def __init__(self, name: str) -> None:
        codec = audio_codec(name)
        self.ticks = codec.frame_ticks
        self._g711 = g711_fill(codec.ffmpeg) if codec.ffmpeg in ("pcm_mulaw", "pcm_alaw") else None
        self._source = g711_fill("pcm_mulaw")
        self._transcoder = None if self._g711 is not None else Transcoder("pcmu", codec.name)
        self._index = 0

    def next(self) -> list[bytes]:
        index, self._index = self._index, (self._index + 1) % CYCLE_FRAMES
        if self._g711 is not None:
            return [self._g711[index]]
        assert self._transcoder is not None
        return self._transcoder.transcode(self._source[index])
