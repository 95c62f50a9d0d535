"""Who conceals a G.711 phone's lost packets for the browser: the browser, or the gateway (pure).

A G.711 phone calling a browser that also has Opus can be heard two ways (issue 66 item 3, measured as
Chromium plays it, bench/RESULTS.md 2026-11-29):

* ``BROWSER``: the phone's G.711 passed through; the browser's jitter buffer (Chrome's NetEq) conceals
  its gaps. Its expansion fades a long gap well: ahead in 100 ms bursts (PESQ 2.74 against 2.43), level
  on a clean or nearly clean leg, and about a third of the CPU;
* ``GATEWAY``: the gateway decodes, conceals each gap at once (G.711 Appendix I, gateway/media/codecs/
  g711_plc.py) and encodes Opus: ahead under random loss (3.05 against 2.87 at 5 %, 2.61 against 2.28
  at 10 %), where the losses are single packets.

``ConcealChoice`` makes that choice per call from what the phone's leg shows: the loss of the packets
the gateway expected from the phone over the last ``WINDOW`` seconds, and how long its gaps are (lost
packets per loss event, a gap of consecutive sequence numbers). Random loss of 3 % or more in gaps
shorter than two packets on average is concealed by the gateway; a leg nearly clean (under 1 %) or
losing in bursts (2.5 packets or more per gap) is left to the browser; in between, the choice stands
(hysteresis). Each bound is held against the loss count less (or plus) its spread, the square root of
the count: at 2 % a short window's count strays past 3 % often, and a call would change codecs for
nothing (simulated: half of the calls within 40 s without it, 1 in 40 with it; 5 % loss is still found
in 4 s at the median, 10 % loss in 3 s). A change is worth avoiding where both paths are level: heard
by Chromium, a codec change mid-speech cost up to 0.5 PESQ over the next 20 s (its jitter buffer
starts again, and stretches time while it settles). A choice stands at least ``DWELL`` seconds: each change is a codec change at the browser,
whose jitter buffer starts again. A call starts with the browser (``BROWSER``), as G.711 passed through
has always been; ``codecs.g711_to_web`` fixes it either way instead (``forward`` / ``transcode``).

    choice = ConcealChoice()
    choice.sample(now, received, lost, gaps)   # the phone leg's running counters, about once a second
    choice.concealer                            # Concealer.BROWSER or Concealer.GATEWAY
"""

from __future__ import annotations

import enum
import math
from collections import deque

WINDOW = 20.0  # seconds of the phone leg's counters a choice reads (shorter flaps at 2 %: the count strays)
MIN_EXPECTED = 100  # packets (2 s of 20 ms frames) before anything is chosen from them
GATEWAY_LOSS = 0.03  # random loss from which our concealment is ahead (level at 2 %: 3.16 / 3.14)
BROWSER_LOSS = 0.01  # under this the leg is clean enough for the cheaper path
SHORT_GAPS = 2.0  # packets per gap under which the loss counts as random
LONG_GAPS = 2.5  # packets per gap from which NetEq's expansion is ahead (100 ms bursts: 5 on average)
DWELL = 5.0  # seconds a choice stands at least
SPREAD = 1.0  # standard deviations of the loss count a choice allows for (Poisson: its square root)


class Concealer(enum.StrEnum):
    BROWSER = "browser"  # G.711 passed through
    GATEWAY = "gateway"  # transcoded to Opus after our concealment


class ConcealChoice:
    """The choice for one call's phone -> browser direction (see the module note)."""

    def __init__(self, concealer: Concealer = Concealer.BROWSER, *, fixed: bool = False) -> None:
        self.concealer = concealer
        self.fixed = fixed  # codecs.g711_to_web forward | transcode: samples change nothing
        self._samples: deque[tuple[float, int, int, int]] = deque()  # (time, received, lost, gaps)
        self._changed: float | None = None  # when the choice last changed (None: never)

    def sample(self, now: float, received: int, lost: int, gaps: int) -> bool:
        """The phone leg's running counters at ``now``: packets received, lost (sequence gaps) and loss
        events. True when the choice changed (the path is then configured again)."""
        samples = self._samples
        samples.append((now, received, lost, gaps))
        while len(samples) > 2 and now - samples[1][0] >= WINDOW:
            samples.popleft()
        if self.fixed or (self._changed is not None and now - self._changed < DWELL):
            return False
        wanted = self._wanted()
        if wanted is None or wanted is self.concealer:
            return False
        self.concealer, self._changed = wanted, now
        return True

    def _wanted(self) -> Concealer | None:
        first, last = self._samples[0], self._samples[-1]
        received, lost, gaps = (last[i] - first[i] for i in (1, 2, 3))
        expected = received + lost
        if expected < MIN_EXPECTED or received < 0 or lost < 0 or gaps < 0:
            return None  # too little yet (or counters started again: a new SSRC, a reattach)
        spread = SPREAD * math.sqrt(lost)  # a count of rare losses strays by about its square root
        per_gap = lost / gaps if gaps else 0.0
        if (lost + spread) / expected < BROWSER_LOSS or per_gap >= LONG_GAPS:
            return Concealer.BROWSER
        if (lost - spread) / expected >= GATEWAY_LOSS and per_gap < SHORT_GAPS:
            return Concealer.GATEWAY
        return None

    def restart(self) -> None:
        """The phone leg's counters start again (a new leg, a reattach): what was sampled is forgotten."""
        self._samples.clear()
