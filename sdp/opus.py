"""Opus's receiver hints (RFC 7587 §6.1, §7.1): what the far end need not encode when we only play narrowband.

A call that transcodes a browser's Opus to G.711 (or G.722) throws away everything above the SIP
codec's band. ``maxplaybackrate`` in the description of what we receive tells the browser's encoder
so (§6.1: "an encoder SHOULD NOT encode frequencies above the audio bandwidth specified by
maxplaybackrate"; its default ``maxaveragebitrate`` follows it): libwebrtc then caps its Opus at that
band, which costs it fewer bits and us a cheaper decode. ``sprop-maxcapturerate`` says the same of what
we send (decoded from the SIP codec). §7.1: each is about one direction, in an offer or an answer alike.
Both are hints: a decoder must still take any band, and nothing else in the call changes.

``useinbandfec=1`` (§6.1, ``with_opus_fec``) says we decode in-band FEC: every description the gateway
gives a browser carries it (aiortc writes no Opus fmtp of its own), so the browser's encoder protects
its packets once our receiver reports show loss.

RFC 2198 redundancy over Opus (``red_for_opus``, ``with_opus_red``): ``a=rtpmap:63 red/48000/2`` whose
fmtp (``111/111``) names the Opus payload type each block carries, as Chrome offers it, listed on the
m-line before the Opus it carries (as in RFC 2198 §5's examples): libwebrtc sends RED only when the red
payload type comes before its send codec in the remote description ("RED codec needs to be negotiated
before the actual codec they reference", WebRtcVoiceSendChannel::SetSendCodecs); after it, Chrome
negotiates red and never sends it.

``maxaveragebitrate`` goes with the narrowband hint (``NARROWBAND_BITRATE``): without it libwebrtc
takes the bit rate from maxplaybackrate (12 kbit/s at 8 kHz), which costs a Chrome caller's voice 0.35
PESQ MOS at a G.711 phone on a clean network (bench/quality_bench.py's Chromium column) and leaves its
in-band FEC few bits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from sdp.codecs import Codec, payload_type_of
from sdp.model import Attribute, MediaDescription

OPUS_HINTS = ("maxplaybackrate", "sprop-maxcapturerate")
# The Opus bit rate (bit/s) asked of a browser with the narrowband hint (maxplaybackrate up to 16 kHz):
# SILK's narrowband and wideband modes are near transparent at this rate (libopus's own bit rate table
# puts "fullband speech" at 28-40), and in-band FEC takes its share from it.
NARROWBAND_BITRATE = 32000
RED = "red"  # RFC 2198 redundant audio (RFC 4102 registers audio/red)


def audio_rate(codec: Codec) -> int:
    """The sampling rate of ``codec``'s audio: its RTP clock rate, except G.722's (RFC 3551 §4.5.2: 16 kHz
    audio under an 8000 Hz clock)."""
    return 16000 if codec.name.upper() == "G722" else codec.clock_rate


def with_opus_playback_rate(media: MediaDescription, rate: int) -> MediaDescription:
    """``media`` with ``maxplaybackrate`` and ``sprop-maxcapturerate`` set to ``rate`` on each Opus payload
    type (replacing earlier values, keeping its other fmtp parameters), and ``maxaveragebitrate`` set to
    ``NARROWBAND_BITRATE`` when ``rate`` is at most 16 kHz (module note); unchanged when it has no Opus.
    A missing fmtp line is added after the codec's rtpmap."""
    if not 8000 <= rate <= 48000:
        raise ValueError(f"an Opus playback rate is 8000-48000 Hz (RFC 7587 §6.1), got {rate!r}")
    wanted = [f"{name}={rate}" for name in OPUS_HINTS]
    if rate > 16000:
        return _with_opus_parameters(media, OPUS_HINTS, wanted)
    return _with_opus_parameters(
        media, (*OPUS_HINTS, "maxaveragebitrate"), [*wanted, f"maxaveragebitrate={NARROWBAND_BITRATE}"]
    )


def with_opus_fec(media: MediaDescription, *, dtx: bool = False) -> MediaDescription:
    """``media`` with ``useinbandfec=1`` on each Opus payload type (RFC 7587 §6.1: we, the receiver, decode
    in-band FEC, so the browser's encoder may send it: libwebrtc adds it once our reports show loss) and
    ``usedtx=1`` when ``dtx`` (else no ``usedtx``: the default 0, a packet every frame). Its other fmtp
    parameters are kept; a missing fmtp line is added after the codec's rtpmap; unchanged without Opus."""
    wanted = ["useinbandfec=1", *(["usedtx=1"] if dtx else [])]
    return _with_opus_parameters(media, ("useinbandfec", "usedtx"), wanted)


def _with_opus_parameters(
    media: MediaDescription, replaced: tuple[str, ...], wanted: list[str]
) -> MediaDescription:
    """``media`` with each Opus payload type's fmtp parameters named in ``replaced`` (case-insensitive:
    RFC 4855 §3) dropped and ``wanted`` appended, the others kept; unchanged when it has no Opus."""
    opus = {c.payload_type: c for c in media.codecs if c.name.lower() == "opus"}
    if not opus:
        return media

    def fmtp(codec: Codec) -> Attribute:
        kept = [
            f"{k}={v}" if v is not None else k
            for k, v in codec.parameters.items()
            if k.lower() not in replaced
        ]
        return Attribute("fmtp", f"{codec.payload_type} {';'.join(kept + wanted)}")

    return _with_fmtp(media, opus, fmtp)


def _with_fmtp(
    media: MediaDescription, opus: dict[int, Codec], fmtp: Callable[[Codec], Attribute]
) -> MediaDescription:
    """``media`` with each of ``opus``'s payload types' fmtp line replaced by ``fmtp(codec)`` (added after
    its rtpmap when missing; a second fmtp line of a payload type dropped)."""
    attributes: list[Attribute] = []
    done: set[int] = set()
    for attribute in media.attributes:
        pt = _payload_type(attribute)
        if attribute.name == "fmtp" and pt in opus and pt not in done:
            attributes.append(fmtp(opus[pt]))
            done.add(pt)
        elif attribute.name != "fmtp" or pt not in opus:
            attributes.append(attribute)
    for pt, codec in opus.items():
        if pt not in done:
            at = next(
                (i + 1 for i, a in enumerate(attributes) if a.name == "rtpmap" and _payload_type(a) == pt),
                len(attributes),
            )
            attributes.insert(at, fmtp(codec))
    return dataclasses.replace(media, attributes=tuple(attributes))


def _payload_type(attribute: Attribute) -> int | None:
    """The payload type an rtpmap or fmtp line names (None for other lines, or a malformed one)."""
    if attribute.name not in ("rtpmap", "fmtp"):
        return None
    token = payload_type_of(attribute.value)
    return int(token) if token is not None and token.isascii() and token.isdigit() else None


def red_for_opus(media: MediaDescription) -> int | None:
    """The payload type of RFC 2198 redundancy over Opus in ``media`` (``a=rtpmap:63 red/48000/2`` with
    ``a=fmtp:63 111/111``: every redundancy level an Opus payload type of the m-line, RFC 2198 §5 and
    Chrome's form), else None: a ``red`` without that fmtp says nothing of what it carries."""
    opus = {str(c.payload_type) for c in media.codecs if c.name.lower() == "opus"}
    for codec in media.codecs:
        levels = (codec.fmtp or "").strip().split("/")
        if codec.name.lower() == RED and opus and all(level in opus for level in levels):
            return codec.payload_type
    return None


def with_opus_red(media: MediaDescription) -> MediaDescription:
    """``media`` with the fmtp of each ``red`` payload type naming the m-line's first Opus payload type
    twice (``111/111``: the primary and one redundant block, as Chrome writes it; aiortc writes no red
    fmtp), and the red payload types moved on the m-line to just before that Opus (module note: else
    libwebrtc never sends RED); unchanged without red or Opus."""
    opus = next((c.payload_type for c in media.codecs if c.name.lower() == "opus"), None)
    red = {c.payload_type: c for c in media.codecs if c.name.lower() == RED}
    if opus is None or not red:
        return media
    with_fmtp = _with_fmtp(media, red, lambda codec: Attribute("fmtp", f"{codec.payload_type} {opus}/{opus}"))
    moved = [f for f in media.formats if f in {str(pt) for pt in red}]
    rest = [f for f in media.formats if f not in moved]
    at = rest.index(str(opus)) if str(opus) in rest else 0
    return dataclasses.replace(with_fmtp, formats=(*rest[:at], *moved, *rest[at:]))
