"""The web leg's codec preferences for aiortc (set before ``setRemoteDescription``), RFC 2198 included.

``capabilities`` turns the gateway's codecs into aiortc's capabilities, in order. RFC 2198 redundancy
(``audio/red`` over Opus, registered with aiortc by ``aiortc_hooks.register_red``) goes right after Opus,
as Chrome orders it (aiortc's own order, so that aiortc never takes red for its send codec; the
description the browser gets lists it before Opus, ``sdp.with_opus_red``), when ``media.opus_red`` allows it
(``RED_MODES``) and, answering, when the browser
offers red over Opus (its fmtp names Opus payload types: ``sdp.red_for_opus``). An aiortc peer offers a
bare ``red`` (no fmtp) it cannot decode: it never gets red in our answer, and our offer's red in its
answer (without fmtp) never makes us send RED (``negotiated_red``).
"""

from __future__ import annotations

from collections.abc import Sequence

from aiortc import RTCRtpSender
from aiortc.rtcrtpparameters import RTCRtpCodecCapability

import sdp
from gateway.media.webrtc.aiortc_hooks import RED_MIME

__all__ = ["RED_MODES", "capabilities", "negotiated_red", "preferences"]

# media.opus_red: negotiated and sent while the browser reports loss (auto), sent always (on), neither
RED_MODES = ("auto", "on", "off")


def capabilities(names: Sequence[sdp.Codec]) -> list[RTCRtpCodecCapability]:
    """aiortc codec capabilities for these codecs (by name and clock rate), in order, unknown ones left out."""
    available = RTCRtpSender.getCapabilities("audio").codecs
    chosen: list[RTCRtpCodecCapability] = []
    for codec in names:
        for capability in available:
            if (
                capability.name.lower() == codec.name.lower()
                and capability.clockRate == codec.clock_rate
                and capability not in chosen
            ):
                chosen.append(capability)
    return chosen


def preferences(names: Sequence[sdp.Codec], *, red: bool) -> list[RTCRtpCodecCapability]:
    """``capabilities(names)`` with ``audio/red`` right after Opus when ``red`` (and Opus is there)."""
    chosen = capabilities(names)
    opus = next((i for i, c in enumerate(chosen) if c.mimeType.lower() == "audio/opus"), None)
    found = [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType.lower() == RED_MIME]
    if red and opus is not None and found:
        chosen.insert(opus + 1, found[0])
    return chosen


def negotiated_red(browser: sdp.SessionDescription | None, mode: str) -> int | None:
    """The payload type to send RED with towards the browser whose description (offer or answer) this
    is: its red over Opus (``sdp.red_for_opus``) on the first active audio m-line; None when it has none
    or ``mode`` is off."""
    if mode == "off" or browser is None:
        return None
    audio = next((m for m in browser.media if m.media == "audio" and not m.rejected), None)
    return sdp.red_for_opus(audio) if audio is not None else None
