"""Plays DTMF digits as RFC 4733 telephone-events on one leg: paced packets (§2.5.1), digits in order.

Each ``play()`` is a background task that waits for the previous ones, so digits from several calls
(an INFO, then another) keep their order; ``close()`` cancels whatever is still playing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import sdp
from gateway.media.codecs.dtmf import DtmfSender, event_code

INTER_DIGIT_GAP = 0.05  # seconds of silence between two digits

# (payload type, payload, RTP timestamp, marker)
SendEvent = Callable[[int, bytes, int, bool], None]


class DtmfPlayer:
    def __init__(self, send: SendEvent, now_timestamp: Callable[[int], int]) -> None:
        """``now_timestamp(rate)``: the leg's RTP timestamp now, in the clock of the event's ``rate``."""
        self._send = send
        self._now_timestamp = now_timestamp
        self._tasks: set[asyncio.Task[None]] = set()

    def play(self, digits: str, event: sdp.Codec, duration_ms: int = 100) -> asyncio.Task[None]:
        """Queue ``digits`` (checked now: ``DtmfError`` for an unknown one) with ``event``'s payload type."""
        for digit in digits:
            event_code(digit)
        DtmfSender(event.clock_rate).packets(digits[:1] or "0", 0, duration_ms)  # checks the duration
        task = asyncio.ensure_future(self._run(digits, event, duration_ms, list(self._tasks)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run(
        self, digits: str, event: sdp.Codec, duration_ms: int, previous: list[asyncio.Task[None]]
    ) -> None:
        await asyncio.gather(*previous, return_exceptions=True)
        sender = DtmfSender(event.clock_rate)
        loop = asyncio.get_running_loop()
        for digit in digits:
            start = loop.time()
            for packet in sender.packets(digit, self._now_timestamp(event.clock_rate), duration_ms):
                delay = start + packet.offset - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                self._send(event.payload_type, packet.payload, packet.timestamp, packet.marker)
            await asyncio.sleep(INTER_DIGIT_GAP)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
