"""Translate a description between the web leg (WebRTC) and the SIP leg (plain RTP/AVP).

The gateway terminates both legs itself, so a translation describes the gateway's side: ``to_plain``
turns what the browser offered into the offer the gateway makes to the SIP side (its own address and
port, no ICE/DTLS/BUNDLE), ``to_webrtc`` turns a SIP offer or answer into one for the web leg (the
gateway's ICE credentials, candidates and certificate fingerprint). The number and order of m-lines
never change: unused ones are kept with port 0, so answers map back line by line (RFC 3264 §6, §8.2).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence

from sdp import _edit, video
from sdp.acceptance import PLAIN_PROFILES
from sdp.candidate import Candidate
from sdp.codecs import Codec, CodecSpec, codec_specs
from sdp.errors import SdpUnacceptable
from sdp.model import (
    DIRECTION_NAMES,
    Attribute,
    Connection,
    MediaDescription,
    Origin,
    Rtcp,
    SessionDescription,
)
from sdp.transport import DtlsParameters, IceParameters, PlainTransport

PLAIN_PROTO = "RTP/AVP"
WEBRTC_PROTO = "UDP/TLS/RTP/SAVPF"
# JSEP (RFC 8829 §5.2.1): without a usable candidate yet, m= says port 9 and c= says 0.0.0.0.
DISCARD_PORT = 9
ANY_ADDRESS = "0.0.0.0"


def to_plain(
    description: SessionDescription,
    *,
    address: str,
    port: int,
    codecs: Sequence[str | CodecSpec],
    origin: Origin | None = None,
    rtcp: bool = True,
    media: Collection[str] = ("audio",),
    telephone_event: bool = True,
    video_port: int | None = None,
    video_codecs: Sequence[str | CodecSpec] = video.DEFAULT_VIDEO_CODECS,
    video_proto: str = PLAIN_PROTO,
) -> SessionDescription:
    """The description for the SIP leg: RTP/AVP on ``address``:``port``, allowed codecs in the offerer's
    order plus one telephone-event, direction and ptime kept, and a=rtcp at port+1 (RFC 3605) when
    ``rtcp``. Only the first usable m-line of a type in ``media`` is kept (one RTP port); others get
    port 0. Raises ``SdpUnacceptable`` (488) when no m-line has an allowed codec.

    With ``video_port``, the first usable video m-line also goes to the SIP side, on its own port
    (no BUNDLE there): ``video_codecs`` in the offerer's order with their fmtp, repair formats (rtx,
    red, ulpfec) left out, the RTCP feedback a SIP phone takes (``sdp.video``), a=framerate,
    a=imageattr, b=AS/b=TIAS kept, in ``video_proto`` (RTP/AVP, as most SIP video phones offer with
    a=rtcp-fb; or RTP/AVPF, RFC 4585). A video m-line without such a codec is rejected with port 0
    and the audio goes on.
    """
    specs = codec_specs(codecs)
    PlainTransport(address, port)  # validates both
    if video_port is not None:
        PlainTransport(address, video_port)
    if video_proto.upper() not in PLAIN_PROFILES:
        raise SdpUnacceptable(
            f"the SIP side's video profile must be RTP/AVP or RTP/AVPF, not {video_proto!r}"
        )
    video_specs = codec_specs(video_codecs)
    connection = Connection.for_address(address)
    result: list[MediaDescription] = []
    problems: list[str] = []
    taken: set[str] = set()  # one RTP port for the audio (or the first stream), one for the video
    for index, section in enumerate(description.media):
        accepted = None
        slot = "video" if video_port is not None and section.media == "video" else "main"
        if slot in taken:
            pass
        elif video_port is not None and slot == "video":
            accepted = _plain_media(
                description, index, video_specs, video_port, connection, rtcp, ("video",), False, video_proto
            )
        else:
            accepted = _plain_media(description, index, specs, port, connection, rtcp, media, telephone_event)
        if accepted is None:
            problems.append(f"'m={section.m_line}'")
            proto = PLAIN_PROTO if section.is_rtp else section.proto
            result.append(_edit.rejected(section, proto))
        else:
            taken.add(slot)
            result.append(accepted)
    if all(m.rejected for m in result):
        allowed = ", ".join(s.name for s in specs)
        where = " ".join(problems) or "a description without m-lines"
        raise SdpUnacceptable(f"no {'/'.join(media)} stream with an allowed codec ({allowed}) in {where}")
    return dataclasses.replace(
        description,
        origin=origin or description.origin,
        connection=connection,
        attributes=tuple(_edit.without(description.attributes, _edit.WEBRTC_ONLY_ATTRIBUTES)),
        media=tuple(result),
    )


def _plain_media(
    description: SessionDescription,
    index: int,
    specs: Sequence[CodecSpec],
    port: int,
    connection: Connection,
    rtcp: bool,
    media: Collection[str],
    telephone_event: bool,
    video_proto: str | None = None,
) -> MediaDescription | None:
    """m-line ``index`` for the SIP side, None when it has no usable codec. With ``video_proto``, a
    video m-line in that profile, with the video codecs of ``specs`` (see ``to_plain``)."""
    section = description.media[index]
    if section.rejected or section.media not in media or not section.is_rtp:
        return None
    if video_proto is not None:
        chosen = [video.for_sip(c) for c in video.usable(video.feedback(section), specs)]
        if not chosen:
            return None
        return _plain_section(description, index, chosen, port, video_proto, connection, rtcp, feedback=True)
    offered = section.codecs
    chosen = [c for c in offered if not c.is_telephone_event and _edit.allowed(c, specs)]
    if not chosen:
        return None
    if telephone_event:
        chosen += _edit.sip_telephone_events(offered, chosen)
    return _plain_section(description, index, chosen, port, PLAIN_PROTO, connection, rtcp, feedback=False)


def _plain_section(
    description: SessionDescription,
    index: int,
    chosen: list[Codec],
    port: int,
    proto: str,
    connection: Connection,
    rtcp: bool,
    *,
    feedback: bool,
) -> MediaDescription:
    """m-line ``index`` for the SIP side with ``chosen``: WebRTC-only attributes dropped, a=rtcp at
    port+1 (RFC 3605), bandwidths and the rest kept."""
    section = description.media[index]
    attributes: list[Attribute] = []
    for attr in section.attributes:
        if attr.name == "rtcp" and rtcp:
            attributes.append(Attribute("rtcp", Rtcp(port + 1, connection.address).to_sdp()))
        elif attr.name not in _edit.WEBRTC_ONLY_ATTRIBUTES and attr.name != "rtcp":
            attributes.append(attr)
    if rtcp and section.rtcp is None:
        attributes.insert(0, Attribute("rtcp", Rtcp(port + 1, connection.address).to_sdp()))
    result = MediaDescription(
        section.media,
        port,
        proto,
        title=section.title,
        bandwidths=section.bandwidths,
        attributes=tuple(attributes),
    )
    result = _edit.set_codecs(result, chosen, feedback=feedback)
    # c=0.0.0.0 (RFC 2543 hold) is replaced by the gateway's address: say the hold with a=sendonly/inactive.
    if description.effective_direction(index) != description.direction_for(index):
        result = result.with_direction(description.effective_direction(index))
    return result


def default_candidate(candidates: Sequence[Candidate]) -> tuple[str, int]:
    """The address and port for c= and m= (RFC 8839 §4.2.1.4: the default candidate, UDP RTP preferred)."""
    rtp = [c for c in candidates if c.component == 1 and not c.is_mdns]
    best = sorted(rtp, key=lambda c: (c.protocol != "udp", -c.priority))
    return (best[0].address, best[0].port) if best else (ANY_ADDRESS, DISCARD_PORT)


def webrtc_transport_lines(
    ice: IceParameters,
    dtls: DtlsParameters,
    *,
    mid: str,
    address: str,
    port: int,
    trickle: bool,
) -> list[Attribute]:
    """a=mid, ICE credentials, fingerprints, setup, a=rtcp and rtcp-mux (RFC 8829 §5.2.1 order)."""
    options = list(ice.options)
    if trickle and "trickle" not in options:
        options.append("trickle")
    lines = [Attribute("mid", mid), Attribute("ice-ufrag", ice.ufrag), Attribute("ice-pwd", ice.pwd)]
    if options:
        lines.append(Attribute("ice-options", " ".join(options)))
    lines += [Attribute("fingerprint", f.to_sdp()) for f in dtls.fingerprints]
    lines.append(Attribute("setup", dtls.setup.value))
    # RFC 5761 §5.1.3: with rtcp-mux the a=rtcp port is the RTP port.
    lines += [Attribute("rtcp", Rtcp(port, address).to_sdp()), Attribute("rtcp-mux")]
    return lines


def candidate_lines(candidates: Sequence[Candidate], end_of_candidates: bool) -> list[Attribute]:
    lines = [Attribute("candidate", c.to_sdp().removeprefix("candidate:")) for c in candidates]
    if end_of_candidates:
        lines.append(Attribute("end-of-candidates"))
    return lines


def to_webrtc(
    description: SessionDescription,
    *,
    ice: IceParameters,
    dtls: DtlsParameters,
    candidates: Sequence[Candidate] = (),
    end_of_candidates: bool = False,
    trickle: bool = True,
    codecs: Sequence[str | CodecSpec] | None = None,
    mids: Sequence[str] | None = None,
    origin: Origin | None = None,
    media: Collection[str] = ("audio",),
    video_codecs: Sequence[str | CodecSpec] = video.DEFAULT_VIDEO_CODECS,
) -> SessionDescription:
    """The description for the web leg: UDP/TLS/RTP/SAVPF with the gateway's ICE credentials, candidates
    and DTLS fingerprints/role, a=mid per m-line (``mids`` to mirror an offer's, else 0, 1, ...),
    rtcp-mux and a BUNDLE group over the accepted m-lines. Codecs (optionally filtered by ``codecs``)
    and direction are kept; ``c=0.0.0.0`` hold becomes a=sendonly/inactive (RFC 3264 §8.4), since
    WebRTC ignores the connection address. Port-0 m-lines stay rejected and out of BUNDLE (RFC 8843
    §7.3.3). One m-line per media type is kept, the first usable one with a plain RTP profile (else the
    first usable one): the same media offered twice (RTP/SAVP and RTP/AVP, best-effort SRTP) or several
    audio streams become one stream for the browser, the others rejected with port 0 so that the answer
    still has as many m-lines as the offer. Raises ``SdpUnacceptable`` when no m-line can be used.

    A video m-line (with "video" in ``media``) keeps the codecs of ``video_codecs`` with their fmtp,
    without repair formats (rtx, red, ulpfec: the SIP side's would not be understood), with the RTCP
    feedback of ``sdp.video.for_web`` (nack pli and ccm fir always: the gateway answers keyframe
    requests); it is rejected with port 0 when none is left, and bundled with the audio otherwise.
    """
    specs = codec_specs(codecs) if codecs is not None else None
    video_specs = codec_specs(video_codecs)
    address, port = default_candidate(candidates)
    if mids is not None and len(mids) != len(description.media):
        raise SdpUnacceptable(f"{len(mids)} mids given for {len(description.media)} m-lines")
    result: list[MediaDescription] = []
    bundle: list[str] = []
    usable = {
        index: _web_codecs(section, specs, media, video_specs)
        for index, section in enumerate(description.media)
    }
    streams = _one_per_media_type(description, [index for index, chosen in usable.items() if chosen])
    for index, section in enumerate(description.media):
        mid = mids[index] if mids is not None else str(index)
        chosen = usable[index] if index in streams else []
        if not chosen:
            proto = WEBRTC_PROTO if section.is_rtp else section.proto
            rejected = _edit.rejected(section, proto, [Attribute("mid", mid)])
            result.append(dataclasses.replace(rejected, connection=Connection(ANY_ADDRESS)))
            continue
        head = webrtc_transport_lines(ice, dtls, mid=mid, address=address, port=port, trickle=trickle)
        head.append(Attribute(description.effective_direction(index).value))
        kept = _edit.without(section.attributes, _edit.ICE_DTLS_ATTRIBUTES | DIRECTION_NAMES)
        if section.media == "video":  # a=rtcp-fb:* was expanded per codec by _web_codecs
            kept = [a for a in kept if a.name != "rtcp-fb"]
        converted = MediaDescription(
            section.media,
            port,
            WEBRTC_PROTO,
            title=section.title,
            connection=Connection.for_address(address),
            bandwidths=section.bandwidths,
            attributes=tuple(head + kept + candidate_lines(candidates, end_of_candidates)),
        )
        result.append(_edit.set_codecs(converted, chosen, feedback=True))
        bundle.append(mid)
    if not bundle:
        raise SdpUnacceptable(
            f"no usable {'/'.join(media)} stream in: {[m.m_line for m in description.media]}"
        )
    attributes = [Attribute("group", "BUNDLE " + " ".join(bundle))]
    attributes += _edit.without(description.attributes, _edit.ICE_DTLS_ATTRIBUTES | DIRECTION_NAMES)
    return dataclasses.replace(
        description,
        origin=origin or description.origin,
        connection=None,
        attributes=tuple(attributes),
        media=tuple(result),
    )


def _one_per_media_type(description: SessionDescription, usable: Sequence[int]) -> set[int]:
    """Of the usable m-lines, one per media type: the first with a plain RTP profile, else the first."""
    kept: dict[str, int] = {}
    for index in usable:
        section = description.media[index]
        current = kept.get(section.media)
        if current is None or (
            description.media[current].proto.upper() not in PLAIN_PROFILES
            and section.proto.upper() in PLAIN_PROFILES
        ):
            kept[section.media] = index
    return set(kept.values())


def _web_codecs(
    section: MediaDescription,
    specs: Sequence[CodecSpec] | None,
    media: Collection[str],
    video_specs: Sequence[CodecSpec],
) -> list[Codec]:
    if section.rejected or section.media not in media or not section.is_rtp:
        return []
    if section.media == "video":
        return [video.for_web(c, c.rtcp_fb) for c in video.usable(video.feedback(section), video_specs)]
    offered = list(section.codecs)
    if specs is None:
        return offered if any(not c.is_telephone_event for c in offered) else []
    chosen = [c for c in offered if not c.is_telephone_event and _edit.allowed(c, specs)]
    return chosen + _edit.telephone_events_for(offered, chosen) if chosen else []
