"""Fix-ups between a browser's descriptions and what aiortc is given or gives, with ``sdp`` (pure).

aiortc answers every audio and video m-line it can (a Chromium audio+video offer gets an active
``recvonly`` video answer even with only an audio transceiver) and opens an SCTP transport for a data
channel m-line. The gateway carries audio, and chat on a data channel where the web leg takes one, so
aiortc only ever sees the first usable audio m-line and, with ``data_channel``, the first data channel
m-line bundled with it (RFC 8841 SCTP over the same DTLS association, RFC 8843 BUNDLE; gateway/media/
data_channel.py), stripped of its own candidates (BUNDLE drops its transport):

* ``prune_offer`` keeps that m-line (with its own candidates, minus mDNS ``.local`` ones, which are resolved in the background so they never block ``setRemoteDescription``, and minus
  ``a=end-of-candidates``, passed on once those are under way);
* ``restore_answer`` puts the other m-lines back, rejected with port 0 and out of BUNDLE (RFC 3264 §6,
  RFC 8843 §7.3.3), so the answer mirrors the browser's offer line by line.

``without_empty_end`` drops ``a=end-of-candidates`` from an m-line that has no candidate: that would
tell the browser ICE cannot succeed (RFC 8838 §4.3), and aiortc writes it when gathering found nothing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import sdp
from sdp import Attribute, Candidate, Connection, MediaDescription, SessionDescription

WEBRTC_PROTO = "UDP/TLS/RTP/SAVPF"


@dataclass(frozen=True, slots=True)
class PrunedOffer:
    """The browser's offer, what aiortc gets of it, and what was held back."""

    original: SessionDescription
    description: SessionDescription  # one audio m-line, for aiortc
    index: int  # of that m-line in the original
    mid: str
    mdns: tuple[Candidate, ...] = ()
    end_of_candidates: bool = False
    data_index: int | None = None  # of the data channel m-line kept (second in ``description``), if any


# RFC 8829 (JSEP) §5.1.3: an answerer accepts DTLS-SRTP media in any of these profiles and answers with
# the one offered; old Firefox, Kurento, Asterisk and FreeSWITCH send RTP/SAVPF with a fingerprint.
DTLS_PROFILES = frozenset(
    {
        "UDP/TLS/RTP/SAVPF",
        "UDP/TLS/RTP/SAVP",
        "TCP/DTLS/RTP/SAVPF",
        "TCP/DTLS/RTP/SAVP",
        "RTP/SAVPF",
        "RTP/SAVP",
    }
)


def _usable_audio(section: MediaDescription, offer: SessionDescription) -> bool:
    if section.media != "audio" or section.rejected or section.proto.upper() not in DTLS_PROFILES:
        return False
    # DTLS-SRTP needs a fingerprint (RFC 8842 §5); without one RTP/SAVP(F) means SDES, which we do not do.
    # ICE needs the peer's credentials (RFC 8839 §5.4): without them no check can ever succeed.
    return bool(section.fingerprints or offer.fingerprints) and (section.ice or offer.ice) is not None


# RFC 8841 §4.1: data channel m-lines (and the pre-standard "DTLS/SCTP" with the port in the format)
SCTP_PROFILES = frozenset({"UDP/DTLS/SCTP", "DTLS/SCTP"})


def _bundled_data(offer: SessionDescription, audio_mid: str) -> int | None:
    """The first active data channel m-line in the audio's BUNDLE group (aiortc then runs SCTP over the
    audio's DTLS), with the ICE credentials aiortc insists on; None when there is none."""
    group = offer.bundle_mids()
    for i, section in enumerate(offer.media):
        if (
            section.media == "application"
            and not section.rejected
            and section.proto.upper() in SCTP_PROFILES
            and section.mid is not None
            and audio_mid in group
            and section.mid in group
            and (section.ice or offer.ice) is not None
        ):
            return i
    return None


def _data_section(section: MediaDescription) -> MediaDescription:
    """A data channel m-line for aiortc: its transport is the audio's (BUNDLE), so no candidates."""
    attributes = tuple(a for a in section.attributes if a.name not in ("candidate", "end-of-candidates"))
    return dataclasses.replace(section, attributes=attributes)


def prune_offer(offer: SessionDescription, *, data_channel: bool = False) -> PrunedOffer:
    """Keep the first usable audio m-line (and, with ``data_channel``, the first data channel m-line
    bundled with it); ``SdpUnacceptable`` (488) when there is no audio."""
    index = next((i for i, m in enumerate(offer.media) if _usable_audio(m, offer)), None)
    if index is None:
        lines = ", ".join(f"'m={m.m_line}'" for m in offer.media) or "no m-line"
        raise sdp.SdpUnacceptable(
            f"no WebRTC audio stream in the offer (audio in a DTLS profile with a fingerprint and ICE "
            f"credentials): {lines}"
        )
    section = offer.media[index]
    mid = section.mid or str(index)
    seen: set[tuple[str, str, int]] = set()
    plain: list[Candidate] = []
    mdns: list[Candidate] = []
    for candidate in section.candidates:  # other m-lines' candidates belong to transports BUNDLE drops
        key = (candidate.protocol, candidate.address, candidate.port)
        if candidate.component != 1 or key in seen:
            continue
        seen.add(key)
        (mdns if candidate.is_mdns else plain).append(candidate)
    end = section.end_of_candidates or offer.has("end-of-candidates")
    attributes = [a for a in section.attributes if a.name not in ("candidate", "end-of-candidates")]
    attributes += [Attribute("candidate", c.to_sdp().removeprefix("candidate:")) for c in plain]
    if end and not mdns and plain:
        attributes.append(Attribute("end-of-candidates"))
    # aiortc knows UDP/TLS/RTP/SAVPF only: it is handed that, and the answer gets the offered one back.
    kept = dataclasses.replace(section, proto=WEBRTC_PROTO, attributes=tuple(attributes))
    data_index = _bundled_data(offer, mid) if data_channel and section.mid is not None else None
    media = [kept]
    bundle = f"BUNDLE {mid}"
    if data_index is not None:
        data = offer.media[data_index]
        media.append(_data_section(data))
        bundle += f" {data.mid}"
    session = [a for a in offer.attributes if a.name not in ("group", "end-of-candidates")]
    session.insert(0, Attribute("group", bundle))
    description = dataclasses.replace(offer, attributes=tuple(session), media=tuple(media))
    return PrunedOffer(offer, description, index, mid, tuple(mdns), end and bool(mdns), data_index)


def rejected(section: MediaDescription) -> MediaDescription:
    """An m-line turned down with port 0: same media, proto and formats, its mid, no transport."""
    attributes = (Attribute("mid", section.mid),) if section.mid is not None else ()
    return MediaDescription(
        section.media,
        0,
        section.proto,
        section.formats,
        connection=Connection("0.0.0.0"),
        attributes=attributes,
    )


def restore_answer(pruned: PrunedOffer, answer: SessionDescription) -> SessionDescription:
    """aiortc's answer (audio, and the data channel when kept) with the offer's other m-lines put back,
    rejected."""
    expected = len(pruned.description.media)
    if len(answer.media) != expected:
        raise sdp.SdpUnacceptable(f"expected {expected} m-line(s) from aiortc, got {len(answer.media)}")
    ours = {
        pruned.index: dataclasses.replace(answer.media[0], proto=pruned.original.media[pruned.index].proto)
    }
    if pruned.data_index is not None:
        ours[pruned.data_index] = answer.media[1]
    media = [ours.get(i) or rejected(section) for i, section in enumerate(pruned.original.media)]
    return without_empty_end(dataclasses.replace(answer, media=tuple(media)))


def without_empty_end(description: SessionDescription) -> SessionDescription:
    """No ``a=end-of-candidates`` on an m-line without candidates."""
    media = []
    for section in description.media:
        if section.end_of_candidates and not section.candidates:
            section = section.without("end-of-candidates")
        media.append(section)
    return dataclasses.replace(description, media=tuple(media))


def audio_section(description: SessionDescription) -> tuple[int, MediaDescription]:
    """The first active audio m-line and its index; ``SdpUnacceptable`` when there is none."""
    for index, section in enumerate(description.media):
        if section.media == "audio" and not section.rejected:
            return index, section
    raise sdp.SdpUnacceptable("no active audio stream in the description")
