"""Quality while a call is up, per leg: each sample's figures, whether the web user hears of them, alarms.

Sans-I/O: `CallQuality.sample()` takes a call's cumulative media figures (`MediaBridge.quality()`: per
leg `web` and `sip`, packets received and lost, jitter, RTT, the far end's reported loss) and returns a
`QualityReport`; gateway/ops/quality_monitor.py runs it on one timer for every live call.

How it works. Per leg, a `LegTracker` keeps the counters of the last sample, so a sample's `loss` is that
of the packets expected since then (what the gateway received from the leg's peer; RFC 3550 §A.3 counts
them the same way). `remote_loss` is the fraction lost of the peer's latest RTCP report on what the
gateway sends it (RFC 3550 §6.4.1). That report counts the packets lost on the other leg as well when the
gateway forwards their gaps (a pass-through leg's sequence numbers keep them). The leg's own share is
counted by sequence numbers when its figures have it (`own_loss`: gateway/media/rtp/own_loss.py, from the
peer's reports and the gaps forwarded to it by their arrivals); else it is
1 - (1 - remote) / (1 - the other leg's loss), that loss over the last REPORT_WINDOW seconds (the span
of a report). The estimated `mos` (E-model, gateway/ops/mos.py) takes
the worse of the two directions' own losses, plus the late packets the jitter implies, and half the RTT
as one-way delay.
A leg with no packet in the interval (on hold, or its media stopped) has no sample: nothing is told,
and its alarm count neither grows nor resets.

The web user hears of a leg (`tell`) on its first sample, when its MOS moved by `min_change` since the
sample she was told last, and when it crosses `poor_mos` either way (`poor`: the page's "poor connection"
indicator). The alarm: `alarm_samples` samples in a row under `alarm_mos` raise it, once; as many in a row
at or above it clear it (a recovery), which arms it again.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.config.ops import QualitySection
from gateway.ops.mos import jitter_loss, mos_from_r, r_factor

LEGS = ("web", "sip")
REPORT_WINDOW = 5.0  # seconds: RTCP reports come every ~5 s (RFC 3550 §6.2), a browser's more often


class AlarmState(enum.StrEnum):
    RAISED = "raised"
    CLEARED = "cleared"


@dataclass(frozen=True, slots=True)
class LegSample:
    """One leg over one interval."""

    mos: float  # estimated, 1.0-4.5
    loss: float  # 0-1, of the packets the gateway expected from the leg's peer in the interval
    packets: int  # packets received in the interval
    remote_loss: float | None = None  # 0-1, the peer's latest report of what the gateway sends it
    jitter: float | None = None  # seconds, interarrival jitter of what the gateway receives
    rtt: float | None = None  # seconds, RTCP round trip
    poor: bool = False  # mos under `poor_mos`

    def __post_init__(self) -> None:
        if not 1.0 <= self.mos <= 4.5:
            raise ValueError(f"mos must be 1.0-4.5, got {self.mos!r}")
        if not 0.0 <= self.loss <= 1.0:
            raise ValueError(f"loss must be 0-1, got {self.loss!r}")

    def to_json(self) -> dict[str, object]:
        return {
            "mos": self.mos,
            "loss": self.loss,
            "remote_loss": self.remote_loss,
            "jitter": self.jitter,
            "rtt": self.rtt,
            "poor": self.poor,
        }


@dataclass(frozen=True, slots=True)
class Alarm:
    """A leg's alarm raised or cleared, with the sample that did it."""

    leg: str
    state: AlarmState
    sample: LegSample
    threshold: float
    samples: int

    def to_json(self) -> dict[str, object]:
        return {
            "leg": self.leg,
            "state": self.state.value,
            "threshold": self.threshold,
            "samples": self.samples,
            **self.sample.to_json(),
        }


@dataclass(frozen=True, slots=True)
class QualityReport:
    """One call's sample: each leg's figures (legs with no packet in the interval left out), whether to
    tell the web user, and the alarms raised or cleared by it."""

    legs: Mapping[str, LegSample] = field(default_factory=dict)
    tell: bool = False
    alarms: tuple[Alarm, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {name: sample.to_json() for name, sample in self.legs.items()}


def _number(figures: Mapping[str, object], key: str) -> float | None:
    value = figures.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class LegTracker:
    """One leg of one call across samples (module note)."""

    __slots__ = ("_below", "_counts", "_recent", "_settings", "_told", "alarmed")

    def __init__(self, settings: QualitySection) -> None:
        self._settings = settings
        self._counts: tuple[int, int] | None = None  # (received, lost) at the last sample
        # the intervals of the last REPORT_WINDOW seconds: the span an RTCP report's fraction lost covers
        self._recent: deque[tuple[int, int]] = deque(
            maxlen=max(1, math.ceil(REPORT_WINDOW / settings.interval))
        )
        self._told: LegSample | None = None
        self._below = 0  # samples in a row on the far side of alarm_mos from where the alarm stands
        self.alarmed = False

    def interval(self, figures: Mapping[str, object]) -> tuple[int, int] | None:
        """(received, lost) since the last sample from the cumulative counters; None when none came."""
        received = int(_number(figures, "packets_received") or 0)
        # a packet restored from the peer's RFC 2198 redundancy cost the listener nothing
        lost = max(
            0, int(_number(figures, "packets_lost") or 0) - int(_number(figures, "packets_recovered") or 0)
        )
        before, self._counts = self._counts, (received, lost)
        got, missed = (received, lost) if before is None else (received - before[0], lost - before[1])
        if got <= 0:  # none, or the counters started again (a new stream): the next interval counts from here
            return None
        self._recent.append((got, max(0, missed)))
        return got, max(0, missed)

    @property
    def recent_loss(self) -> float:
        """The loss over the last REPORT_WINDOW seconds of samples (0 before any)."""
        got = sum(received for received, _ in self._recent)
        missed = sum(lost for _, lost in self._recent)
        return missed / (got + missed) if got + missed else 0.0

    def sample(self, figures: Mapping[str, object], upstream: float = 0.0) -> LegSample | None:
        """This interval's figures from the cumulative ones; None when no packet came in it. `upstream`:
        the other leg's loss in the interval, which the peer's report includes (module note)."""
        counts = self.interval(figures)
        return self.figures(figures, counts, upstream) if counts is not None else None

    def figures(self, figures: Mapping[str, object], counts: tuple[int, int], upstream: float) -> LegSample:
        got, missed = counts
        loss = missed / (got + missed)
        remote, own = _number(figures, "remote_loss"), _number(figures, "own_loss")
        # what the peer misses of what we forward includes what never reached us from the other leg
        if own is None:
            own = max(0.0, 1.0 - (1.0 - remote) / max(1e-6, 1.0 - upstream)) if remote is not None else 0.0
        jitter, rtt = _number(figures, "jitter"), _number(figures, "rtt")
        codec = figures.get("codec")
        late = jitter_loss(jitter * 1000 if jitter is not None else None)
        delay = rtt * 500 if rtt is not None else 0.0
        worse = min(1.0, max(loss, own) + late)
        mos = round(mos_from_r(r_factor(codec if isinstance(codec, str) else None, worse, delay)), 2)
        return LegSample(
            mos=mos,
            loss=round(loss, 4),
            packets=got,
            remote_loss=round(remote, 4) if remote is not None else None,
            jitter=round(jitter, 6) if jitter is not None else None,
            rtt=round(rtt, 6) if rtt is not None else None,
            poor=mos < self._settings.poor_mos,
        )

    def tell(self, sample: LegSample) -> bool:
        """Whether the web user hears of this sample (module note); remembered as told when so."""
        told = self._told
        if (
            told is None
            or told.poor != sample.poor
            or abs(told.mos - sample.mos) >= self._settings.min_change
        ):
            self._told = sample
            return True
        return False

    def alarm(self, leg: str, sample: LegSample) -> Alarm | None:
        settings = self._settings
        under = sample.mos < settings.alarm_mos
        self._below = self._below + 1 if under != self.alarmed else 0
        if self._below < settings.alarm_samples:
            return None
        self._below = 0
        self.alarmed = under
        state = AlarmState.RAISED if under else AlarmState.CLEARED
        return Alarm(leg, state, sample, settings.alarm_mos, settings.alarm_samples)


class CallQuality:
    """Both legs of one call (module note)."""

    __slots__ = ("_legs",)

    def __init__(self, settings: QualitySection) -> None:
        self._legs = {leg: LegTracker(settings) for leg in LEGS}

    @property
    def alarmed(self) -> tuple[str, ...]:
        return tuple(leg for leg, tracker in self._legs.items() if tracker.alarmed)

    def sample(self, quality: Mapping[str, Mapping[str, object]]) -> QualityReport:
        counts = {}
        for leg, tracker in self._legs.items():
            figures = quality.get(leg)
            interval = tracker.interval(figures) if figures is not None else None
            if interval is not None:
                counts[leg] = interval
        loss = {leg: self._legs[leg].recent_loss for leg in counts}
        legs: dict[str, LegSample] = {}
        tell = False
        alarms: list[Alarm] = []
        for leg, interval in counts.items():
            tracker = self._legs[leg]
            other = next((value for name, value in loss.items() if name != leg), 0.0)
            sample = legs[leg] = tracker.figures(quality[leg], interval, other)
            tell = tracker.tell(sample) or tell
            alarm = tracker.alarm(leg, sample)
            if alarm is not None:
                alarms.append(alarm)
        return QualityReport(legs, tell, tuple(alarms))
