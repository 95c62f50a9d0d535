"""`MixClock`: the 20 ms timer that ticks one `Mixer` (gateway/media/codecs/mixer.py) on the event loop.

How it works: `start()` schedules `mixer.tick()` every `TICK` seconds with `loop.call_at` on an absolute
schedule (no drift); a timer that fires more than `MAX_LATE` seconds behind (a busy loop) starts its
schedule again from now rather than catch up with a burst of ticks. A tick on a closed mixer stops the
clock; any other failure of a tick is logged and the clock goes on. `stop()` is idempotent. Its owners
are a room's conference (gateway/runtime/rooms/) and a three-way call (gateway/runtime/merge/).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from gateway.media.codecs.mixer import Mixer, MixerError

logger = logging.getLogger(__name__)

TICK: Final = 0.020  # seconds: one mixer frame
MAX_LATE: Final = 0.2  # a timer this late (a busy loop) starts its schedule again rather than catch up


class MixClock:
    """Ticks `mixer` every 20 ms from `start()` until `stop()` (see the module note)."""

    def __init__(self, mixer: Mixer, name: str) -> None:
        self.mixer = mixer
        self.name = name
        self._timer: asyncio.TimerHandle | None = None
        self._next = 0.0

    @property
    def running(self) -> bool:
        return self._timer is not None

    def start(self) -> None:
        if self._timer is not None:
            return
        loop = asyncio.get_running_loop()
        self._next = loop.time() + TICK
        self._timer = loop.call_at(self._next, self._tick)

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self.mixer.tick()
        except MixerError:
            self._timer = None  # closed meanwhile
            return
        except Exception:  # a codec's failure: logged, the mix goes on
            logger.exception("%s: the mixer's tick failed", self.name)
        self._next += TICK
        now = loop.time()
        if now - self._next > MAX_LATE:
            self._next = now + TICK
        self._timer = loop.call_at(self._next, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
