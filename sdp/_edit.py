"""Edits shared by the translations and the answerer: codec lists, attribute tables, rejected m-lines."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from sdp.codecs import DEFAULT_TELEPHONE_EVENT_FMTP, Codec, CodecSpec, payload_type_of
from sdp.model import Attribute, MediaDescription

# Attributes that only mean something on the web leg; the SIP (plain RTP/AVP) side never gets them.
WEBRTC_ONLY_ATTRIBUTES = frozenset(
    {
        # ICE, RFC 8839 §5 and RFC 8840 §8 (end-of-candidates)
        "ice-ufrag", "ice-pwd", "ice-options", "ice-lite", "ice-pacing", "ice-mismatch",
        "candidate", "remote-candidates", "end-of-candidates",
        # DTLS-SRTP, RFC 8122 §5, RFC 4145 §4-5, RFC 8842 §5; SDES, RFC 4568 §9
        "fingerprint", "setup", "connection", "tls-id", "crypto",
        # RTP/RTCP multiplexing and reduced-size RTCP, RFC 5761 §5.1.1, RFC 8858, RFC 5506 §5
        "rtcp-mux", "rtcp-mux-only", "rtcp-rsize",
        # grouping and BUNDLE, RFC 5888 §4-5, RFC 8843 §6
        "group", "mid", "bundle-only",
        # media stream identification, RFC 8830 §2-3; SSRC attributes, RFC 5576 §4
        "msid", "msid-semantic", "ssrc", "ssrc-group",
        # RTP header extensions, RFC 8285 §8 and §6; RTCP feedback, RFC 4585 §4.2
        "extmap", "extmap-allow-mixed", "rtcp-fb",
        # simulcast and RID, RFC 8853, RFC 8851; SCTP data channels, RFC 8841
        "rid", "simulcast", "sctp-port", "max-message-size", "sctpmap",
    }
)  # fmt: skip

CODEC_ATTRIBUTES = frozenset({"rtpmap", "fmtp", "rtcp-fb"})
# What to_webrtc replaces or drops from its source: the transport of the other leg (its ICE, DTLS,
# SDES keys, RTCP port, BUNDLE, SSRCs and header extensions). RTCP feedback and reduced-size RTCP stay.
ICE_DTLS_ATTRIBUTES = (WEBRTC_ONLY_ATTRIBUTES | {"rtcp"}) - {"rtcp-fb", "rtcp-rsize"}


def allowed(codec: Codec, specs: Sequence[CodecSpec]) -> bool:
    return any(spec.accepts(codec) for spec in specs)


def is_pt_attribute(attr: Attribute) -> bool:
    """An rtpmap/fmtp/rtcp-fb line naming one payload type (``a=rtcp-fb:*`` applies to all, RFC 4585 §4.2)."""
    pt = payload_type_of(attr.value)
    return attr.name in CODEC_ATTRIBUTES and pt is not None and pt.isdigit()


def codec_lines(codec: Codec, *, feedback: bool) -> list[Attribute]:
    lines = [Attribute("rtpmap", codec.rtpmap)]
    if codec.fmtp is not None:
        lines.append(Attribute("fmtp", f"{codec.payload_type} {codec.fmtp}"))
    if feedback:
        lines += [Attribute("rtcp-fb", f"{codec.payload_type} {fb}") for fb in codec.rtcp_fb]
    return lines


def set_codecs(media: MediaDescription, codecs: Sequence[Codec], *, feedback: bool) -> MediaDescription:
    """The m-line with exactly these codecs in this order; their rtpmap/fmtp(/rtcp-fb) lines are written
    where the first codec line was (an rtpmap is written for static payload types too: RFC 8866 §6.6)."""
    attributes = list(media.attributes)
    at = next((i for i, a in enumerate(attributes) if is_pt_attribute(a)), len(attributes))
    kept = [a for a in attributes[:at]] + [a for a in attributes[at:] if not is_pt_attribute(a)]
    block = [line for codec in codecs for line in codec_lines(codec, feedback=feedback)]
    return dataclasses.replace(
        media,
        formats=tuple(str(c.payload_type) for c in codecs),
        attributes=tuple(kept[:at] + block + kept[at:]),
    )


def telephone_events_for(offered: Iterable[Codec], chosen: Sequence[Codec]) -> list[Codec]:
    """The offered telephone-events whose clock rate matches a chosen codec (RFC 4733 §2.5.1.1), one per rate."""
    rates = {c.clock_rate for c in chosen if not c.is_telephone_event}
    result: dict[int, Codec] = {}
    for codec in offered:
        if codec.is_telephone_event and codec.clock_rate in rates:
            result.setdefault(codec.clock_rate, codec)
    return list(result.values())


def telephone_events_kept(offered: Iterable[Codec], chosen: Sequence[Codec]) -> list[Codec]:
    """The telephone-events of an answer: the offered ones at a chosen codec's clock rate (RFC 4733
    §2.1), one per rate; when none matches, one offered event anyway (8000 Hz first). A phone that
    offers opus with telephone-event/8000 only (Cisco CUCM, snom) keeps its DTMF instead of losing it."""
    offered = list(offered)
    matching = telephone_events_for(offered, chosen)
    if matching:
        return matching
    events = [c for c in offered if c.is_telephone_event]
    return [next((e for e in events if e.clock_rate == 8000), events[0])] if events else []


def sip_telephone_events(offered: Sequence[Codec], chosen: Sequence[Codec]) -> list[Codec]:
    """The telephone-events to offer the SIP side: the 8000 Hz one if offered (what every SIP phone
    takes) and one at each chosen codec's rate (telephone-event/48000 beside opus), so that whichever
    codec the far end picks has its DTMF; an fmtp ``0-16`` (RFC 4733 §7.1.1 events) where none was given."""
    events = [c for c in offered if c.is_telephone_event]
    kept: dict[int, Codec] = {}
    for event in [*(e for e in events if e.clock_rate == 8000), *telephone_events_for(events, chosen)]:
        kept.setdefault(event.clock_rate, event)
    return [
        e if e.fmtp is not None else dataclasses.replace(e, fmtp=DEFAULT_TELEPHONE_EVENT_FMTP)
        for e in kept.values()
    ]


def without(attributes: Iterable[Attribute], names: frozenset[str]) -> list[Attribute]:
    return [a for a in attributes if a.name not in names]


def rejected(media: MediaDescription, proto: str, attributes: Sequence[Attribute] = ()) -> MediaDescription:
    """An m-line rejected or disabled with port 0: same media type and formats, no transport attributes
    (RFC 3264 §6: the answer keeps every offered m-line, in order; RFC 8843 §7.3.3: not in BUNDLE)."""
    return MediaDescription(media.media, 0, proto, media.formats, attributes=tuple(attributes))
