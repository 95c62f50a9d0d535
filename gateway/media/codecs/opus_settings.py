"""How the gateway encodes Opus for the browser from a G.711 source (issue 14 goal 2): one setting per process.

Every Opus encoder the gateway makes - the fast lane's (``gateway/media/fastlane/_fastlane.c``, the steady state)
and the Python path's (``gateway/media/codecs/transcode.py``, until the fast lane takes a call, or without it) -
encodes 8 kHz PCM decoded from PCMU/PCMA: a narrowband voice source. So both are set up the same way:

* **complexity** (``media.opus_complexity``, 0-10; default 5): the encoder's search effort, and most of
  the transcoding's CPU: at 8 kHz libopus codes SILK narrowband, whose complexity steps (silk_setup_complexity)
  trade the noise-shaping order, the pitch search and the delayed-decision quantizer's states for CPU.
  bench/opus_complexity.py (libopus 1.6.1, PyAV's copy, 20 ms frames at 32 kbit/s): 66 us a frame at 10
  and 8, 52 at 5, 40 at 3, 22 at 0, against 15 us to decode a browser's 20 ms at 8 kHz; libopus is ~60 %
  of the engine threads' samples at 50 transcoded calls (perf). Why 5 and not lower: in libopus's
  silk_setup_complexity (silk/control_codec.c) 4-5 is the lowest level that keeps warped (perceptual)
  noise shaping, interpolated NLSFs and two delayed-decision states; 2-3 drop all three, 8-10 are one
  level (the same cost here). 5 is what WebRTC itself uses on
  mobile (libwebrtc's AudioEncoderOpusConfig: 9 on desktop, 5 on Android/iOS); Asterisk's codec_opus,
  FreeSWITCH's mod_opus (libopus's own default) and rtpengine (lib/opus.c) encode at 10 by default -
  rtpengine at 48 kHz, after resampling. A G.711 source carries nothing above 4 kHz and is itself a
  64 kbit/s quantised copy: the narrowband SILK layer at 32 kbit/s stays well above what its input holds.
* **bandwidth** narrowband at most and **signal** voice: what the 8 kHz source is (libopus can code no
  wider from 8 kHz input; said explicitly so that its analysis never tries CELT for "music").
* **DTX** off: the browser's jitter buffer and our own timestamp mapping expect a packet every 20 ms, and
  a G.711 source's silence is rarely digital silence anyway.
* **in-band FEC** (``media.opus_inband_fec``: auto, on, off; default auto): libopus adds LBRR data only
  when told a loss rate (OPUS_SET_PACKET_LOSS_PERC), so "on" alone would cost bits and CPU for no
  protection. The browser's RTCP receiver reports of our stream say its loss (fraction lost, RFC 3550
  §6.4.1): ``for_loss`` turns each into the encoder's settings - with auto, FEC on at the reported
  percentage while it is above ``FEC_THRESHOLD`` % and off again below; with on, FEC always and the
  reported percentage. The fast lane's encoders take them at once (``FastLaneController``); the Python
  path's (PyAV) keep the settings they were made with. FreeSWITCH and Asterisk default it on
  (FreeSWITCH with a configured loss percentage, Asterisk's packet_loss defaults to 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

DEFAULT_OPUS_COMPLEXITY: Final = 5
FEC_THRESHOLD: Final = 1  # percent of packets the browser reports lost above which auto turns FEC on


@dataclass(frozen=True, slots=True)
class LossSettings:
    """What an encoder is told from one receiver report: in-band FEC on or off, the expected loss (%)."""

    inband_fec: bool
    loss_percent: int


@dataclass(frozen=True, slots=True)
class OpusEncoderSettings:
    """The Opus encoders' settings (module docstring): ``inband_fec`` from the start; ``auto_fec``: on and
    off with the browser's reported loss."""

    complexity: int = DEFAULT_OPUS_COMPLEXITY
    inband_fec: bool = False
    auto_fec: bool = True

    @classmethod
    def from_mode(cls, complexity: int, mode: str) -> OpusEncoderSettings:
        """``media.opus_inband_fec``'s auto, on or off."""
        if mode not in ("auto", "on", "off"):
            raise ValueError(f"in-band FEC is auto, on or off, got {mode!r}")
        return cls(complexity, inband_fec=mode == "on", auto_fec=mode == "auto")

    def for_loss(self, fraction_lost: int) -> LossSettings | None:
        """The encoder's settings for a receiver report's fraction lost (RFC 3550 §6.4.1: lost/expected in
        1/256ths), or None when reports change nothing (FEC off)."""
        if not 0 <= fraction_lost <= 255:
            raise ValueError(f"a fraction lost is 0-255, got {fraction_lost!r}")
        if not (self.auto_fec or self.inband_fec):
            return None
        percent = (fraction_lost * 100 + 128) // 256
        return LossSettings(self.inband_fec or percent > FEC_THRESHOLD, percent)

    def __post_init__(self) -> None:
        if isinstance(self.complexity, bool) or not isinstance(self.complexity, int):
            raise TypeError(f"complexity must be an integer, got {self.complexity!r}")
        if not 0 <= self.complexity <= 10:
            raise ValueError(f"complexity must be 0-10, got {self.complexity!r}")
        for name in ("inband_fec", "auto_fec"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a boolean, got {getattr(self, name)!r}")

    def ffmpeg_options(self) -> dict[str, str]:
        """FFmpeg's libopus encoder options for the same settings (the Python path)."""
        return {
            "compression_level": str(self.complexity),
            "fec": "1" if self.inband_fec else "0",
            "dtx": "0",
        }


_current = OpusEncoderSettings()


def current() -> OpusEncoderSettings:
    """The settings encoders created now take."""
    return _current


def configure(settings: OpusEncoderSettings) -> None:
    """Use ``settings`` for every Opus encoder created from now on (both paths; calls up keep theirs)."""
    global _current
    _current = settings
    from gateway.media.fastlane import native

    native.set_opus_encoder(settings.complexity, settings.inband_fec)
