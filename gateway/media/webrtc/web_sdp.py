"""Fix-ups between a browser's descriptions and what aiortc is given or gives, with ``sdp`` (pure).

aiortc answers every audio and video m-line it can (a Chromium audio+video offer gets an active
``recvonly`` video answer even with only an audio transceiver) and opens an SCTP transport for a data
channel m-line. The gateway carries audio, video (issue 19), and chat on a data channel where the web
leg takes one, so aiortc only ever sees the first usable audio m-line and, bundled with it (RFC 8843), with
``video`` the first usable video m-line and with ``data_channel`` the first data channel m-line (RFC 8841
SCTP over the same DTLS association; gateway/media/webrtc/data_channel.py), both stripped of their own candidates
(BUNDLE drops their transports), in the browser's order:

* ``prune_offer`` keeps that m-line (with its own candidates, minus mDNS ``.local`` ones, which are resolved in the background so they never block ``setRemoteDescription``, and minus
  ``a=end-of-candidates``, passed on once those are under way);
* ``restore_answer`` puts the other m-lines back, rejected with port 0 and out of BUNDLE (RFC 3264 §6,
  RFC 8843 §7.3.3), so the answer mirrors the browser's offer line by line.

``without_empty_end`` drops ``a=end-of-candidates`` from an m-line that has no candidate: that would
tell the browser ICE cannot succeed (RFC 8838 §4.3), and aiortc writes it when gathering found nothing.
"""

from __future__ import annotations

import dataclasses
import re
from collections import OrderedDict
from dataclasses import dataclass

import sdp
from sdp import Attribute, Candidate, Connection, MediaDescription, SessionDescription

WEBRTC_PROTO = "UDP/TLS/RTP/SAVPF"


@dataclass(frozen=True, slots=True)
class PrunedOffer:
    """The browser's offer, what aiortc gets of it, and what was held back."""

    original: SessionDescription
    description: SessionDescription  # the m-lines kept for aiortc, in the offer's order
    index: int  # of that m-line in the original
    mid: str
    mdns: tuple[Candidate, ...] = ()
    end_of_candidates: bool = False
    video_index: int | None = None  # of the video m-line aiortc got too (``prune_offer(video=True)``)
    data_index: int | None = None  # of the data channel m-line kept (``prune_offer(data_channel=True)``)

    def __post_init__(self) -> None:
        kept = [i for i in (self.index, self.video_index, self.data_index) if i is not None]
        if len(set(kept)) != len(kept) or not all(0 <= i < len(self.original.media) for i in kept):
            raise sdp.SdpUnacceptable(
                f"kept m-lines {kept} do not fit an offer of {len(self.original.media)}"
            )

    @property
    def audio(self) -> MediaDescription:
        """The audio m-line aiortc gets, wherever the video and data channel m-lines kept beside it are."""
        kept = sorted(i for i in (self.index, self.video_index, self.data_index) if i is not None)
        return self.description.media[kept.index(self.index)]


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


def _usable_video(offer: SessionDescription, index: int, mid: str) -> bool:
    """A video m-line aiortc can take beside the audio: DTLS profile, bundled with the audio (one
    transport, RFC 8843: the direct RTP path reads the audio's ICE connection only)."""
    section = offer.media[index]
    bundle = offer.bundle_mids()
    return (
        section.media == "video"
        and not section.rejected
        and section.proto.upper() in DTLS_PROFILES
        and mid in bundle
        and section.mid in bundle
    )


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


def _bundled_section(section: MediaDescription, proto: str) -> MediaDescription:
    """A video or data channel m-line for aiortc: its transport is the audio's (BUNDLE), so no candidates."""
    attributes = tuple(a for a in section.attributes if a.name not in ("candidate", "end-of-candidates"))
    return dataclasses.replace(section, proto=proto, attributes=attributes)


_EXTMAP = re.compile(r"(\d{1,3})(/(?:sendrecv|sendonly|recvonly|inactive))? +(\S+)")


def for_aiortc(section: MediaDescription, direction: sdp.Direction) -> MediaDescription:
    """An RTP m-line as aiortc can read it, keeping what it means (issue 33: offers of other systems):

    * ``a=extmap:<id>[/<direction>] <uri> <extension attributes>`` (RFC 8285 §5) loses its extension
      attributes (``vad=on``, RFC 6464, and whatever an unknown extension has); aiortc reads exactly
      ``<id> <uri>`` and answers only the extensions it knows. A line we cannot read is left out: an
      attribute one does not understand is ignored (RFC 4566 §5.13);
    * a static payload type (RFC 3551 §6) without ``a=rtpmap`` gets one (aiortc knows codecs by rtpmap);
    * an m-line without a direction attribute gets ``direction`` (RFC 3264 §5.1: the session's, else
      sendrecv); aiortc cannot answer without one ("None is not in list")."""
    attributes: list[Attribute] = []
    for attribute in section.attributes:
        if attribute.name == "extmap":
            found = _EXTMAP.match(attribute.value or "")
            if found is None:
                continue
            attribute = Attribute("extmap", f"{found.group(1)}{found.group(2) or ''} {found.group(3)}")
        attributes.append(attribute)
    mapped = {(a.value or "").split(" ", 1)[0] for a in attributes if a.name == "rtpmap"}
    for fmt in section.formats:
        static = sdp.STATIC_PAYLOAD_TYPES.get(int(fmt)) if fmt.isdigit() else None
        if fmt not in mapped and static is not None:
            name, rate, channels = static
            suffix = f"/{channels}" if channels > 1 else ""
            attributes.append(Attribute("rtpmap", f"{fmt} {name}/{rate}{suffix}"))
    if section.direction is None:
        attributes.append(Attribute(direction.value))
    return dataclasses.replace(section, attributes=tuple(attributes))


_PRUNED: OrderedDict[tuple[int, bool, bool], tuple[SessionDescription, PrunedOffer]] = OrderedDict()
_PRUNED_KEPT = 64  # the offers of the calls being set up now


def prune_offer(offer: SessionDescription, *, video: bool = False, data_channel: bool = False) -> PrunedOffer:
    """Keep the first usable audio m-line (and, bundled with it, with ``video`` the first usable video
    m-line, with ``data_channel`` the first data channel m-line, in the offer's order: aiortc answers
    them in that order); ``SdpUnacceptable`` (488) when there is no audio.

    A call's setup prunes the same (immutable) offer two or three times (the API's check, the bridge,
    the web leg): the last results are remembered by the offer's identity."""
    key = (id(offer), video, data_channel)
    kept = _PRUNED.get(key)
    if kept is not None and kept[0] is offer:
        _PRUNED.move_to_end(key)
        return kept[1]
    pruned = _prune(offer, video, data_channel)
    _PRUNED[key] = (offer, pruned)
    if len(_PRUNED) > _PRUNED_KEPT:
        _PRUNED.popitem(last=False)
    return pruned


def _prune(offer: SessionDescription, video: bool, data_channel: bool) -> PrunedOffer:
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
    kept = for_aiortc(kept, offer.direction_for(index))
    video_index = (
        next((i for i in range(len(offer.media)) if _usable_video(offer, i, mid)), None) if video else None
    )
    data_index = _bundled_data(offer, mid) if data_channel and section.mid is not None else None
    kept_at = {index: kept}
    if video_index is not None:
        video_section = _bundled_section(offer.media[video_index], WEBRTC_PROTO)
        kept_at[video_index] = for_aiortc(video_section, offer.direction_for(video_index))
    if data_index is not None:
        data = offer.media[data_index]
        kept_at[data_index] = _bundled_section(data, data.proto)
    # The audio's mid first: aiortc runs every bundled m-line over the group's first transport.
    mids = [mid] + [str(offer.media[i].mid) for i in sorted(kept_at) if i != index]
    session = [a for a in offer.attributes if a.name not in ("group", "end-of-candidates")]
    session.insert(0, Attribute("group", "BUNDLE " + " ".join(mids)))
    media = tuple(kept_at[i] for i in sorted(kept_at))
    description = dataclasses.replace(offer, attributes=tuple(session), media=media)
    return PrunedOffer(
        offer, description, index, mid, tuple(mdns), end and bool(mdns), video_index, data_index
    )


def rejected(section: MediaDescription) -> MediaDescription:
    """An m-line turned down with port 0: same media, proto and formats, its mid, no transport; and
    for RTP, a=inactive, which aiortc needs to take the answer (its direction intersection has no
    default for an audio or video m-line)."""
    attributes: tuple[Attribute, ...] = (Attribute("mid", section.mid),) if section.mid is not None else ()
    if section.is_rtp:
        attributes += (Attribute("inactive"),)
    return MediaDescription(
        section.media,
        0,
        section.proto,
        section.formats,
        connection=Connection("0.0.0.0"),
        attributes=attributes,
    )


def restore_answer(pruned: PrunedOffer, answer: SessionDescription) -> SessionDescription:
    """aiortc's answer (audio, and the video and data channel when kept, in the offer's order) with the
    offer's other m-lines put back, rejected: port 0 with the audio's ICE/DTLS lines and the offered
    codecs (``refused_for_aiortc``). Browsers ignore those lines on a rejected m-line (RFC 8843 §7.3.3);
    aiortc refuses an answer with an m-line without ICE credentials, and with it the audio (issue 39: a
    browser offering video to an audio-only phone got no call)."""
    kept = sorted(i for i in (pruned.index, pruned.video_index, pruned.data_index) if i is not None)
    if len(answer.media) != len(kept):
        raise sdp.SdpUnacceptable(f"expected {len(kept)} m-line(s) from aiortc, got {len(answer.media)}")
    ours = dict(zip(kept, answer.media, strict=True))
    # aiortc answers RTP in UDP/TLS/RTP/SAVPF: the answer takes the offered profile back (RFC 8829 §5.3.1).
    for i in (pruned.index, pruned.video_index):
        if i is not None:
            ours[i] = dataclasses.replace(ours[i], proto=pruned.original.media[i].proto)
    audio = ours[pruned.index]
    media = [
        ours.get(i) or refused_for_aiortc(rejected(section), audio, section)
        for i, section in enumerate(pruned.original.media)
    ]
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


def narrowband_hint(description: SessionDescription, sip_codecs: list[sdp.Codec]) -> SessionDescription:
    """Our description for the browser with Opus's playback hints (``sdp.with_opus_playback_rate``) at
    the widest audio rate of ``sip_codecs``, when none of them is Opus: the browser's Opus is then
    transcoded to one of them, and whatever it encodes above that band is thrown away. Unchanged when
    the SIP side has Opus (passed through, or may be), or no audio codec is known."""
    rates = [sdp.audio_rate(c) for c in sip_codecs if c.name.lower() not in _NOT_AUDIO]
    if not rates or any(c.name.lower() == "opus" for c in sip_codecs) or max(rates) >= 48000:
        return description
    index, section = audio_section(description)
    hinted = sdp.with_opus_playback_rate(section, max(8000, max(rates)))
    if hinted is section:
        return description
    return description.with_media([*description.media[:index], hinted, *description.media[index + 1 :]])


_NOT_AUDIO = ("telephone-event", "cn", "red")  # no audio band of their own

_TRANSPORT = ("ice-ufrag", "ice-pwd", "ice-options", "fingerprint", "setup", "rtcp-mux")


def refused_for_aiortc(
    section: MediaDescription, bundled: MediaDescription, offered: MediaDescription
) -> MediaDescription:
    """A browser's m-line turned down (port 0) as aiortc takes it in an answer: a direction (inactive
    when none), the ICE/DTLS lines of the m-line it was bundled with and the codecs of our ``offered``
    m-line (aiortc wants all of them on each m-line, rejected or not)."""
    codec_lines = ("rtpmap", "fmtp", "rtcp-fb")
    drop = (*_TRANSPORT, *codec_lines, "candidate")
    attributes = [a for a in section.attributes if a.name not in drop]
    if section.direction is None:
        attributes.append(Attribute("inactive"))
    attributes += [a for a in bundled.attributes if a.name in _TRANSPORT]
    attributes += [a for a in offered.attributes if a.name in codec_lines]
    return dataclasses.replace(section, formats=offered.formats, attributes=tuple(attributes))


_CODEC_LINES = ("rtpmap", "fmtp", "rtcp-fb")


def keep_codecs(section: MediaDescription, previous: MediaDescription) -> MediaDescription:
    """aiortc's m-line of a subsequent offer with the formats and codec lines of ``previous`` (the same
    mid in the last negotiation): the payload types in use stay (RFC 8829 §5.2.2; aiortc renumbers them
    from its table). Other m-lines, and a rejected ``previous``, are left as they are."""
    if section.media not in ("audio", "video") or previous.rejected or not previous.formats:
        return section
    attributes = [a for a in section.attributes if a.name not in _CODEC_LINES]
    attributes += [a for a in previous.attributes if a.name in _CODEC_LINES]
    return dataclasses.replace(section, formats=previous.formats, attributes=tuple(attributes))


def reject_mid(description: SessionDescription, mid: str | None) -> SessionDescription:
    """``description`` with the m-line of ``mid`` turned down (port 0, ``rejected``) and out of the
    BUNDLE group (RFC 8843 §7.3.3: a rejected m-line leaves the group)."""
    if mid is None:
        return description
    # the transport and codec lines stay (a=inactive added): aiortc, and maybe other non-browser peers,
    # want them on every m-line, port 0 or not; browsers ignore them there
    media = [refused_for_aiortc(rejected(m), m, m) if m.mid == mid else m for m in description.media]
    groups = []
    for attribute in description.attributes:
        if attribute.name == "group" and (attribute.value or "").startswith("BUNDLE"):
            kept = [item for item in (attribute.value or "").split()[1:] if item != mid]
            attribute = Attribute("group", " ".join(["BUNDLE", *kept]))
        groups.append(attribute)
    return dataclasses.replace(description, media=tuple(media), attributes=tuple(groups))


def refused_filled(pruned: PrunedOffer, offered: SessionDescription) -> SessionDescription:
    """The browser's answer to our ``offered`` description as aiortc takes it: the m-lines ``pruned``
    kept, and each one the browser turned down (port 0) filled in (``refused_for_aiortc``; a data channel
    with our SCTP lines), so that aiortc finds every offered m-line in its place (RFC 3264 §6)."""
    answer = pruned.original
    kept = sorted(i for i in (pruned.index, pruned.video_index, pruned.data_index) if i is not None)
    ours = dict(zip(kept, pruned.description.media, strict=True))
    audio = ours[pruned.index]
    media: list[MediaDescription] = []
    bundle = list(pruned.description.bundle_mids())
    for i, section in enumerate(answer.media):
        if i in ours:
            media.append(ours[i])
        elif section.media == "application" and offered.media[i].mid is not None:
            # kept on the audio's transport for aiortc (BUNDLE): alone it would wait for an ICE of its
            # own forever, and aiortc's connection state with it; its SCTP INIT goes unanswered
            media.append(_refused_data(section, audio, offered.media[i]))
            bundle.append(str(offered.media[i].mid))
        else:
            media.append(refused_for_aiortc(section, audio, offered.media[i]))
    attributes = tuple(
        Attribute("group", "BUNDLE " + " ".join(bundle)) if a.name == "group" else a
        for a in pruned.description.attributes
    )
    return dataclasses.replace(pruned.description, attributes=attributes, media=tuple(media))


def _refused_data(
    section: MediaDescription, bundled: MediaDescription, offered: MediaDescription
) -> MediaDescription:
    """A data channel m-line the browser turned down, for aiortc: our proto, format and SCTP lines, the
    ICE/DTLS lines of the audio; no direction (a data channel m-line has none)."""
    attributes = [
        a for a in section.attributes if a.name not in (*_TRANSPORT, "candidate", "inactive", "mid")
    ]
    attributes.insert(0, Attribute("mid", str(offered.mid)))
    attributes += [a for a in bundled.attributes if a.name in _TRANSPORT]
    attributes += [a for a in offered.attributes if a.name in ("sctp-port", "max-message-size", "sctpmap")]
    return dataclasses.replace(
        section, proto=offered.proto, formats=offered.formats, attributes=tuple(attributes)
    )


def refused_with_transport(answer: SessionDescription, offer: SessionDescription) -> SessionDescription:
    """An answer to a browser's subsequent offer with each turned-down video m-line (port 0) carrying
    the audio's ICE/DTLS lines and the offer's codecs (``refused_for_aiortc``): browsers ignore them
    there, non-browser WebRTC stacks (aiortc) insist on them on every m-line."""
    bundled = audio_section(answer)[1]
    media = [
        refused_for_aiortc(m, bundled, offer.media[i]) if m.rejected and m.media == "video" else m
        for i, m in enumerate(answer.media)
    ]
    return answer.with_media(media)
