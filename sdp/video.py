"""Video m-lines between the web leg and the SIP leg: codecs by name and fmtp, RTCP feedback, repair.

The gateway passes video through without decoding it, so both legs must agree on one encoding with
compatible parameters; the gateway only rewrites SSRC, sequence numbers and timestamps.

- **Compatibility** (``compatible``): same encoding name and clock rate, and
  - H.264 (RFC 6184 §8.2.2): the same profile (``profile-level-id``'s profile_idc and profile-iop,
    read as libwebrtc does: 42e0xx, 4de0xx and 58c0xx are all Constrained Baseline) and the same
    ``packetization-mode`` (0 when absent). The level may differ: it is a receiver's limit, and
    ``level-asymmetry-allowed`` lets each direction use its own (RFC 6184 §8.1);
  - VP9 (RFC 9628 §6): the same ``profile-id`` (0 when absent);
  - VP8 (RFC 7741 §6): any (``max-fr``/``max-fs`` are receiver limits).
- **Repair** formats (``rtx`` RFC 4588, ``red`` RFC 2198, ``ulpfec`` RFC 5109, ``flexfec``
  RFC 8627) are offered to the browser by nobody and taken from it by nobody: a plain SIP side that
  did not negotiate them would see a second stream of garbage, so they are stripped both ways.
- **RTCP feedback** (RFC 4585 §4.2): toward SIP only ``nack``, ``nack pli``, ``ccm fir`` (RFC 5104
  §7.1) and ``ccm tmmbr`` are kept (``goog-remb`` and ``transport-cc`` belong to the browser's
  congestion control, which the gateway terminates); toward the browser ``nack pli`` and ``ccm fir``
  are always offered, since the gateway answers keyframe requests itself (RTCP or SIP INFO, RFC 5168).
- ``a=rtcp-fb:*`` (RFC 4585 §4.2: for every payload type) is expanded per codec by ``feedback``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sdp import _edit
from sdp.codecs import Codec, CodecSpec
from sdp.model import Attribute, Direction, MediaDescription, Rtcp

__all__ = [
    "DEFAULT_VIDEO_CODECS",
    "REPAIR_FORMATS",
    "SIP_FEEDBACK",
    "WEB_FEEDBACK",
    "H264Profile",
    "answer_section",
    "answered",
    "compatible",
    "feedback",
    "for_sip",
    "for_web",
    "intersect",
    "is_repair",
    "only",
    "usable",
    "with_feedback",
]

DEFAULT_VIDEO_CODECS = ("H264", "VP8", "VP9")
REPAIR_FORMATS = frozenset({"rtx", "red", "ulpfec", "flexfec", "flexfec-03"})
SIP_FEEDBACK = ("nack", "nack pli", "ccm fir", "ccm tmmbr")
WEB_FEEDBACK = ("nack pli", "ccm fir")
# Without profile-level-id RFC 6184 §8.1 means Baseline at level 1; libwebrtc and aiortc (which answers
# the browser) read Constrained Baseline 3.1, and so does the gateway: a Baseline decoder takes
# Constrained Baseline, and the phones that omit it send nothing else.
DEFAULT_PROFILE_LEVEL_ID = "42e01f"


@dataclass(frozen=True, slots=True)
class H264Profile:
    """The profile part of an H.264 ``profile-level-id`` (RFC 6184 §8.1), named as libwebrtc names it."""

    name: str
    level_idc: int

    @classmethod
    def parse(cls, value: str | None) -> H264Profile | None:
        """The profile of ``profile-level-id`` (six hex digits); None when unreadable or unknown."""
        text = (DEFAULT_PROFILE_LEVEL_ID if value is None else value).strip().lower()
        if len(text) != 6:
            return None
        try:
            profile_idc, iop, level = int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)
        except ValueError:
            return None
        name = _profile_name(profile_idc, iop)
        return None if name is None else cls(name, level)


def _profile_name(profile_idc: int, iop: int) -> str | None:
    """H.264 Annex A.2 profiles from profile_idc and the constraint_set flags (constraint_set0 = 0x80,
    constraint_set1 = 0x40, constraint_set3 = 0x10): Constrained Baseline is any stream decodable by
    both Baseline and Main decoders (A.2.1.1)."""
    cs0, cs1, cs3 = bool(iop & 0x80), bool(iop & 0x40), bool(iop & 0x10)
    if profile_idc == 0x42:
        return "constrained-baseline" if cs1 else "baseline"
    if profile_idc == 0x4D:
        return "constrained-baseline" if cs0 else "main"
    if profile_idc == 0x58:
        if cs0 and cs1:
            return "constrained-baseline"
        return "baseline" if cs0 else "extended"
    if profile_idc == 0x64:
        return "constrained-high" if (iop & 0x0C) == 0x0C else "high"  # constraint_set4 and 5
    if profile_idc == 0xF4:
        return "predictive-high-444" if not cs3 else "high-444-intra"
    return {0x6E: "high-10", 0x7A: "high-422"}.get(profile_idc)


def _mode(codec: Codec) -> str:
    return (codec.parameters.get("packetization-mode") or "0").strip()


def compatible(a: Codec, b: Codec) -> bool:
    """Whether a stream of ``a`` can be passed to a receiver of ``b`` untouched (see the module doc)."""
    if a.name.lower() != b.name.lower() or a.clock_rate != b.clock_rate:
        return False
    name = a.name.lower()
    if name == "h264":
        mine = H264Profile.parse(a.parameters.get("profile-level-id"))
        theirs = H264Profile.parse(b.parameters.get("profile-level-id"))
        if mine is None or theirs is None or mine.name != theirs.name:
            return False
        return _mode(a) == _mode(b)
    if name == "vp9":
        return (a.parameters.get("profile-id") or "0") == (b.parameters.get("profile-id") or "0")
    return True


def is_repair(codec: Codec) -> bool:
    return codec.name.lower() in REPAIR_FORMATS


def usable(codecs: Iterable[Codec], specs: Sequence[CodecSpec]) -> list[Codec]:
    """The codecs one of ``specs`` allows, repair formats left out, in the given order."""
    return [c for c in codecs if not is_repair(c) and any(s.accepts(c) for s in specs)]


def intersect(offered: Sequence[Codec], available: Sequence[Codec]) -> list[Codec]:
    """The offered codecs compatible with one of ``available`` (RFC 3264 §6.1: the offer's payload
    types and fmtp, in the offer's order); repair formats never match."""
    return [c for c in offered if not is_repair(c) and any(compatible(c, a) for a in available)]


def feedback(section: MediaDescription) -> list[Codec]:
    """The m-line's codecs with ``a=rtcp-fb:*`` lines (RFC 4585 §4.2) added to each one's feedback."""
    wildcard = [
        (a.value or "")[1:].strip()
        for a in section.attributes
        if a.name == "rtcp-fb" and (a.value or "").startswith("*")
    ]
    result = []
    for codec in section.codecs:
        extra = tuple(w for w in wildcard if w and w not in codec.rtcp_fb)
        result.append(dataclasses.replace(codec, rtcp_fb=codec.rtcp_fb + extra) if extra else codec)
    return result


def for_sip(codec: Codec) -> Codec:
    """The codec as offered or answered to a SIP phone: only the feedback of ``SIP_FEEDBACK``."""
    kept = tuple(fb for fb in codec.rtcp_fb if " ".join(fb.split()).lower() in SIP_FEEDBACK)
    return dataclasses.replace(codec, rtcp_fb=kept)


def for_web(codec: Codec, sip_feedback: Iterable[str] = ()) -> Codec:
    """The codec for the browser: ``WEB_FEEDBACK`` (the gateway answers keyframe requests), plus
    ``nack`` and ``ccm tmmbr`` where the SIP side takes them (the gateway passes those on)."""
    passed = [fb for fb in sip_feedback if " ".join(fb.split()).lower() in ("nack", "ccm tmmbr")]
    wanted = [*(fb for fb in passed if fb not in WEB_FEEDBACK), *WEB_FEEDBACK]
    return dataclasses.replace(codec, rtcp_fb=tuple(dict.fromkeys(wanted)))


def answered(offer: MediaDescription, answer: MediaDescription) -> list[Codec]:
    """The codecs of a video ``answer`` that fit ``offer`` (RFC 3264 §6.1: the offer's payload type
    and a compatible fmtp), repair formats left out, with the answer's parameters and feedback."""
    offered = {c.payload_type: c for c in feedback(offer)}
    return [
        c
        for c in feedback(answer)
        if not is_repair(c) and c.payload_type in offered and compatible(c, offered[c.payload_type])
    ]


def answer_section(
    offer: MediaDescription,
    accepted: Sequence[Codec],
    *,
    port: int,
    address: str,
    direction: Direction,
    rtcp: bool = True,
    own_feedback: Iterable[str] = WEB_FEEDBACK,
) -> MediaDescription:
    """A plain (SIP side) answer to the video m-line ``offer``: the offered codecs compatible with one
    of ``accepted`` (what the browser took), in the offer's order with the offer's payload types, the
    offered feedback that ``accepted`` names or the answerer does itself (``own_feedback``: the gateway
    answers keyframe requests); rejected with port 0 when none is (RFC 3264 §6)."""
    offered = feedback(offer)
    own = set(own_feedback)
    chosen = []
    for codec in intersect(offered, accepted):
        theirs = next(a for a in accepted if compatible(codec, a))
        both = tuple(fb for fb in codec.rtcp_fb if fb in theirs.rtcp_fb or fb in own)
        chosen.append(for_sip(dataclasses.replace(codec, rtcp_fb=both)))
    if offer.rejected or not chosen:
        return MediaDescription(offer.media, 0, offer.proto, offer.formats)
    attributes = [Attribute("rtcp", Rtcp(port + 1, address).to_sdp())] if rtcp else []
    attributes.append(Attribute(direction.value))
    attributes += [a for a in offer.attributes if a.name in ("framerate", "imageattr", "content", "label")]
    section = MediaDescription(
        "video", port, offer.proto, bandwidths=offer.bandwidths, attributes=tuple(attributes)
    )
    return _edit.set_codecs(section, chosen, feedback=True)


def only(section: MediaDescription, payload_types: Iterable[int]) -> MediaDescription:
    """``section`` with only the codecs of ``payload_types`` (their rtpmap, fmtp and rtcp-fb lines)."""
    wanted = set(payload_types)
    return _edit.set_codecs(section, [c for c in section.codecs if c.payload_type in wanted], feedback=True)


def with_feedback(section: MediaDescription, extra: Iterable[str]) -> MediaDescription:
    """``section`` with ``extra`` (e.g. ``ccm tmmbr``, which the gateway answers itself) added to each
    media codec's RTCP feedback (RFC 4585 §4.2), written per codec."""
    wanted = tuple(extra)
    codecs = [
        c if is_repair(c) else dataclasses.replace(c, rtcp_fb=tuple(dict.fromkeys((*c.rtcp_fb, *wanted))))
        for c in feedback(section)
    ]
    return _edit.set_codecs(section, codecs, feedback=True)
