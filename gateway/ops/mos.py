"""An estimated MOS of one direction of a call: the E-model of ITU-T G.107, simplified.

R = 93.2 - Id - Ie_eff (G.107 §7.1 with the default Ro - Is = 93.2 and no advantage factor), where

* Id, the delay impairment, uses the one-way delay Ta (half the RTCP round trip, when known, plus the
  codec's own delay): Id = 0.024 Ta + 0.11 (Ta - 177.3) H(Ta - 177.3) (the usual simplification of
  G.107 §7.3 for echo-free connections, Cole and Rosenbluth 2001);
* Ie_eff, the equipment impairment with packet loss (G.107 §7.4, eq. 7-29):
  Ie_eff = Ie + (95 - Ie) Ppl / (Ppl / BurstR + Bpl), random loss (BurstR = 1), Ie and Bpl per codec
  from ITU-T G.113 Appendix I (Opus: values measured for wideband speech at ~32 kbit/s, mapped onto
  the narrowband scale as operators commonly do);

and R becomes a MOS by G.107 Annex B: MOS = 1 + 0.035 R + R (R - 60) (100 - R) 7e-6 for 0 < R < 100.
Jitter counts as loss where it exceeds what a jitter buffer absorbs (`jitter_loss`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from gateway.config.errors import InvalidValue


@dataclass(frozen=True, slots=True)
class CodecImpairment:
    ie: float  # equipment impairment without loss (G.113 Appendix I)
    bpl: float  # packet-loss robustness factor
    delay_ms: float  # frame and look-ahead delay of the codec

    def __post_init__(self) -> None:
        if not 0 <= self.ie <= 95 or self.bpl <= 0 or self.delay_ms < 0:
            raise InvalidValue("codec impairment", f"out of range: {self!r}")


CODECS: Final = {
    "pcmu": CodecImpairment(0.0, 25.1, 0.125),  # G.711 with packet loss concealment
    "pcma": CodecImpairment(0.0, 25.1, 0.125),
    "g722": CodecImpairment(0.0, 23.0, 1.5),  # scored as narrowband's best (its wideband edge is lost on R)
    # ITU-T G.113 Appendix I: Ie 10, Bpl 19; its delay is the 10 ms frame and 5 ms of look-ahead
    "g729": CodecImpairment(10.0, 19.0, 15.0),
    "opus": CodecImpairment(0.0, 30.0, 26.5),
}
UNKNOWN: Final = CodecImpairment(10.0, 20.0, 20.0)
JITTER_BUFFER_MS: Final = 40.0  # jitter beyond this is taken as late packets, i.e. loss


def r_factor(codec: str | None, loss_ratio: float, one_way_delay_ms: float = 0.0) -> float:
    """The E-model's R (0-100) for `codec` ("PCMU", "opus/48000"...), packet loss 0-1 and one-way delay."""
    if not 0.0 <= loss_ratio <= 1.0:
        raise InvalidValue("loss_ratio", f"must be 0-1, got {loss_ratio!r}")
    impairment = CODECS.get((codec or "").split("/")[0].lower(), UNKNOWN)
    ta = max(0.0, one_way_delay_ms) + impairment.delay_ms
    delay = 0.024 * ta + (0.11 * (ta - 177.3) if ta > 177.3 else 0.0)
    ppl = 100.0 * loss_ratio
    ie_eff = impairment.ie + (95.0 - impairment.ie) * ppl / (ppl + impairment.bpl)
    return max(0.0, min(100.0, 93.2 - delay - ie_eff))


def mos_from_r(r: float) -> float:
    """G.107 Annex B: R to an estimated MOS (1.0-4.5)."""
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6


def jitter_loss(jitter_ms: float | None) -> float:
    """The share of packets a 40 ms jitter buffer would drop as late, roughly (0 below the buffer)."""
    if jitter_ms is None or jitter_ms <= JITTER_BUFFER_MS / 2:
        return 0.0
    return min(0.5, (jitter_ms - JITTER_BUFFER_MS / 2) / (4 * JITTER_BUFFER_MS))


def estimate_mos(
    codec: str | None,
    *,
    received: int,
    lost: int,
    jitter_ms: float | None = None,
    rtt_ms: float | None = None,
) -> float | None:
    """The estimated MOS of one direction, None when no packet was expected."""
    expected = received + max(0, lost)
    if expected <= 0:
        return None
    loss = min(1.0, max(0, lost) / expected + jitter_loss(jitter_ms))
    delay = (rtt_ms / 2) if rtt_ms is not None else 0.0
    return round(mos_from_r(r_factor(codec, loss, delay)), 2)
