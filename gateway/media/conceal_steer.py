"""A G.711 phone's codec towards the browser, per call (``codecs.g711_to_web``): the bridge's side of
gateway/media/codecs/conceal_choice.py.

A browser that offers Opus beside the phone's G.711 is answered with both (G.711 first, so that it sends
G.711 and its audio is passed through to the phone as before); what the browser is sent is then ours to
choose without another offer/answer: the phone's G.711 passed through, or transcoded to Opus after our
concealment. ``ConcealSteer`` samples the phone leg's counters every ``TICK`` seconds (the fast lane's
accounted first), lets ``ConcealChoice`` decide, and has the bridge configure its paths again when the
choice changes; ``out_codec`` is what the path to the browser sends, and arms or stops the sampling.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import sdp
from gateway.media.coarse_timers import Cancellable, coarse_timers
from gateway.media.codecs import codec_choice as choice
from gateway.media.codecs.codec_choice import LegCodecs
from gateway.media.codecs.conceal_choice import ConcealChoice, Concealer
from gateway.media.forward import same_codec

logger = logging.getLogger("gateway.media.bridge")

TICK = 1.0  # seconds between samples of the phone leg's counters
G711 = ("pcmu", "pcma")
MODES = ("auto", "forward", "transcode")


def with_opus(web: sdp.Codec, usable: Sequence[sdp.Codec], mode: str) -> list[sdp.Codec]:
    """The audio codecs of our answer to a browser whose codec is ``web`` (of ``usable``, what it offered
    that we take): ``web``, and Opus after it when ``web`` is G.711, the browser offered Opus and the
    phone's losses may be concealed by us (``mode`` not ``forward``)."""
    codecs = [choice.known(web.name)]
    if mode != "forward" and web.name.lower() in G711 and any(c.name.lower() == "opus" for c in usable):
        codecs.append(choice.known("opus"))
    return codecs


class ConcealSteer:
    """One call's choice of who conceals the phone's losses, and its sampling timer."""

    def __init__(
        self,
        mode: str,
        *,
        call_id: str,
        clock: Callable[[], float],
        counters: Callable[[], tuple[int, int, int]],
        changed: Callable[[], None],
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"g711_to_web must be one of {', '.join(MODES)}: {mode!r}")
        self.mode = mode
        start = Concealer.GATEWAY if mode == "transcode" else Concealer.BROWSER
        self._choice = ConcealChoice(start, fixed=mode != "auto")
        self._call, self._clock = call_id, clock
        self._counters, self._changed = counters, changed  # (received, lost, gaps) of the phone leg
        self._timer: Cancellable | None = None

    @property
    def concealer(self) -> Concealer:
        return self._choice.concealer

    def out_codec(self, web: LegCodecs, sip: LegCodecs, *, steerable: bool = True) -> sdp.Codec:
        """What the path to the browser sends: ``web.codec``, or the browser's Opus while the gateway
        conceals a G.711 phone's losses. Sampling runs while there is a choice to make."""
        opus = _opus(web, sip) if steerable and self.mode != "forward" else None
        if opus is None:
            self.stop()
            return web.codec
        if self._timer is None and not self._choice.fixed:
            self._timer = coarse_timers().call_later(TICK, self._tick)
        return opus if self._choice.concealer is Concealer.GATEWAY else web.codec

    def restart(self) -> None:
        """The phone leg's counters start again (a new web leg): what was sampled is forgotten."""
        self._choice.restart()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        self._timer = None
        received, lost, gaps = self._counters()
        if self._choice.sample(self._clock(), received, lost, gaps):
            logger.info(
                "call=%s the phone's losses concealed by the %s (%d lost of %d, %d gaps)",
                self._call, self._choice.concealer, lost, received + lost, gaps,
            )  # fmt: skip
            self._changed()  # the bridge configures its paths: out_codec arms the next tick, or stops
            return
        if self._timer is None:
            self._timer = coarse_timers().call_later(TICK, self._tick)


def _opus(web: LegCodecs, sip: LegCodecs) -> sdp.Codec | None:
    """The browser's Opus when the phone's G.711 reaches it passed through (both legs the same G.711)."""
    if sip.codec.name.lower() not in G711 or not same_codec(web.codec, sip.codec):
        return None
    return next((c for c in web.incoming.values() if c.name.lower() == "opus"), None)
