"""Answer an offer by RFC 3264 (§6, §6.1): mirror every m-line, intersect codecs, answer directions.

- The answer has as many m-lines as the offer, in the same order, same media type and proto; a stream
  that is not accepted keeps its formats with port 0 (RFC 3264 §6, §8.2).
- Codecs are matched by encoding name (case-insensitive), clock rate and channels, and the answer
  uses the OFFER's payload type numbers (RFC 3264 §6.1), in the offerer's order by default or in the
  answerer's (``Preference``).
- telephone-event is answered only at a clock rate of a chosen codec (RFC 4733 §2.5.1.1, §7.1.1).
- G.729 is answered ``annexb=no`` whatever the offer says (RFC 4856 §2.1.9: Annex B, VAD with SID
  frames, is on when the parameter is absent): the answerer sends no SID frames.
- Direction: sendonly -> recvonly, recvonly -> sendonly, inactive -> inactive, sendrecv -> sendrecv,
  then limited by the local policy (RFC 3264 §6.1); ``c=0.0.0.0`` in the offer means hold (§8.4).
- No acceptable stream at all: ``SdpUnacceptable`` (SIP 488).
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Collection, Sequence
from enum import Enum

from sdp import _edit
from sdp.acceptance import WARN_INCOMPATIBLE_FORMAT, WARN_INCOMPATIBLE_PROTOCOL, WARN_MEDIA_TYPE
from sdp.codecs import Codec, CodecSpec, codec_specs
from sdp.errors import SdpUnacceptable
from sdp.model import Attribute, Connection, Direction, MediaDescription, Origin, Rtcp, SessionDescription
from sdp.translate import (
    ANY_ADDRESS,
    WEBRTC_PROTO,
    candidate_lines,
    default_candidate,
    webrtc_transport_lines,
)
from sdp.transport import PlainTransport, Setup, WebRtcTransport


class Preference(Enum):
    """Whose codec order the answer follows (RFC 3264 §6.1 lets the answerer choose)."""

    OFFERER = "offerer"
    ANSWERER = "answerer"


_PROTOS = {PlainTransport: frozenset({"RTP/AVP", "RTP/AVPF"}), WebRtcTransport: frozenset({WEBRTC_PROTO})}
_SDES_PROTOS = frozenset({"RTP/SAVP", "RTP/SAVPF"})
_DTLS_PROTOS = frozenset({"UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF"})


def answer(
    offer: SessionDescription,
    *,
    codecs: Sequence[str | CodecSpec],
    transport: PlainTransport | WebRtcTransport,
    preference: Preference = Preference.OFFERER,
    direction: Direction = Direction.SENDRECV,
    origin: Origin | None = None,
    media: Collection[str] = ("audio",),
    telephone_event: bool = True,
) -> SessionDescription:
    """The answer to ``offer`` from a side that allows ``codecs`` and receives on ``transport``.

    A plain transport has one RTP port, so only the first acceptable stream is accepted; a WebRTC
    transport accepts every acceptable stream of a type in ``media`` (bundled when the offer bundles).
    ``direction`` is the local policy (for example SENDONLY while the answerer holds the call).
    ``origin`` defaults to one of the answerer's own: a new random session id, version 0, the
    answerer's address (RFC 8866 §5.2: the o= line identifies the session of whoever writes it; RFC
    3264 §8 then has the answerer keep it and raise the version in later descriptions).
    """
    specs = codec_specs(codecs)
    protos = _PROTOS[type(transport)]
    if isinstance(transport, PlainTransport) and transport.crypto is not None:
        protos = protos | _SDES_PROTOS
    if isinstance(transport, PlainTransport) and transport.dtls is not None:
        protos = _DTLS_PROTOS  # RFC 5764 §8: the answer keeps the offer's UDP/TLS/RTP/SAVP(F)
    sections: list[MediaDescription] = []
    accepted_mids: list[str] = []
    for index, offered in enumerate(offer.media):
        chosen = _choose(
            offered, specs, preference, media, _protos(offer, index, transport, protos), telephone_event
        )
        single = isinstance(transport, PlainTransport) and any(not m.rejected for m in sections)
        if not chosen or single:
            sections.append(_rejected(offered, transport))
            continue
        answered = offer.effective_direction(index).reversed().limited_to(direction)
        if isinstance(transport, PlainTransport):
            section = _plain_section(offered, chosen, answered, _dtls_role(transport, offer, index))
            if transport.dtls is not None and offered.mid is not None:
                accepted_mids.append(offered.mid)
        else:
            section = _webrtc_section(offered, chosen, answered, transport, mid=offered.mid or str(index))
            accepted_mids.append(offered.mid or str(index))
        sections.append(section)
    if all(m.rejected for m in sections):
        raise _refusal(offer, specs, media, transport, protos)
    attributes: list[Attribute] = []
    address = (
        transport.address
        if isinstance(transport, PlainTransport)
        else default_candidate(transport.candidates)[0]
    )
    if isinstance(transport, PlainTransport) and transport.ice is not None and transport.ice.lite:
        attributes.append(Attribute("ice-lite"))  # RFC 8839 §5.3: session level
    if (isinstance(transport, WebRtcTransport) or transport.dtls is not None) and offer.bundle_mids():
        # RFC 8843 §7.3: a WebRTC peer on the SIP side (DTLS-SRTP, one accepted m-line) gets its group
        bundled = [mid for mid in accepted_mids if mid in offer.bundle_mids()]
        if bundled:
            attributes.append(Attribute("group", "BUNDLE " + " ".join(bundled)))
    return SessionDescription(
        origin=origin or own_origin(address, avoid=offer.origin.session_id),
        name="-",
        connection=Connection.for_address(address) if isinstance(transport, PlainTransport) else None,
        timing=(("t", "0 0"),),
        attributes=tuple(attributes),
        media=tuple(sections),
    )


def own_origin(address: str, *, avoid: str = "") -> Origin:
    """A new o= for a description of ours: a random 62-bit session id (RFC 8866 §5.2: unique; never the
    offerer's ``avoid``), version 0, ``address``."""
    session_id = str(secrets.randbelow(2**62) + 1)
    while session_id == avoid:  # pragma: no cover - one chance in 2**62
        session_id = str(secrets.randbelow(2**62) + 1)
    return Origin("-", session_id, 0, address, _ip(address))


def _protos(
    offer: SessionDescription, index: int, transport: PlainTransport | WebRtcTransport, protos: frozenset[str]
) -> frozenset[str]:
    """The profiles m-line ``index`` may use: a WebRTC answerer also takes RTP/SAVP(F) with an
    a=fingerprint (media or session level) as DTLS-SRTP, as JSEP does (RFC 8829 §5.1.3: old Firefox,
    Kurento, Asterisk 13 offer it), and answers with the profile offered (§5.3.1)."""
    if isinstance(transport, WebRtcTransport) and offer.dtls_for(index) is not None:
        return protos | _DTLS_PROTOS | _SDES_PROTOS
    return protos


def _refusal(
    offer: SessionDescription,
    specs: Sequence[CodecSpec],
    media: Collection[str],
    transport: PlainTransport | WebRtcTransport,
    protos: frozenset[str],
) -> SdpUnacceptable:
    """Why no stream of ``offer`` can be answered, naming the first cause in the order a stream is
    checked: its media type, its transport profile, then its codecs (not always "no common codec")."""
    lines = " ".join(f"'m={m.m_line}'" for m in offer.media) or "an offer without m-lines"
    active = [(i, m) for i, m in enumerate(offer.media) if not m.rejected]
    wanted = [(i, m) for i, m in active if m.media in media]
    if not wanted:
        return SdpUnacceptable(f"no active {'/'.join(media)} stream in {lines}", warning=WARN_MEDIA_TYPE)
    speaking = [(i, m) for i, m in wanted if m.proto.upper() in _protos(offer, i, transport, protos)]
    if not speaking:
        takes = " or ".join(sorted(protos))
        if isinstance(transport, WebRtcTransport):
            takes += " (or RTP/SAVP(F) with a=fingerprint)"
        return SdpUnacceptable(
            f"no stream in a transport profile the answerer takes ({takes}) in {lines}",
            warning=WARN_INCOMPATIBLE_PROTOCOL,
        )
    allowed = ", ".join(s.name for s in specs)
    return SdpUnacceptable(
        f"no common codec ({allowed}) on any stream of {lines}", warning=WARN_INCOMPATIBLE_FORMAT
    )


def _ip(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


def _choose(
    offered: MediaDescription,
    specs: Sequence[CodecSpec],
    preference: Preference,
    media: Collection[str],
    protos: frozenset[str],
    telephone_event: bool,
) -> list[Codec]:
    if offered.rejected or offered.media not in media or offered.proto.upper() not in protos:
        return []
    codecs = offered.codecs
    plain = [c for c in codecs if not c.is_telephone_event]
    if preference is Preference.OFFERER:
        chosen = [c for c in plain if _edit.allowed(c, specs)]
    else:
        chosen = []
        for spec in specs:
            chosen += [c for c in plain if spec.accepts(c) and c not in chosen]
    if not chosen:
        return []
    chosen = [_without_annex_b(c) for c in chosen]
    return chosen + (_edit.telephone_events_kept(codecs, chosen) if telephone_event else [])


def _without_annex_b(codec: Codec) -> Codec:
    """G.729 answered ``annexb=no`` (RFC 4856 §2.1.9, RFC 7261 keeps it declarative per direction)."""
    if codec.name.upper() != "G729" or codec.parameters.get("annexb") == "no":
        return codec
    return dataclasses.replace(codec, fmtp="annexb=no")


def _rejected(offered: MediaDescription, transport: PlainTransport | WebRtcTransport) -> MediaDescription:
    section = _edit.rejected(offered, offered.proto)
    if isinstance(transport, WebRtcTransport):
        # no session-level c= in a WebRTC answer, so each m-line has one (RFC 8866 §5.7)
        section = dataclasses.replace(section, connection=Connection(ANY_ADDRESS))
        if offered.mid is not None:
            section = section.with_attributes([Attribute("mid", offered.mid)])
    return section


def _plain_section(
    offered: MediaDescription, chosen: list[Codec], direction: Direction, transport: PlainTransport
) -> MediaDescription:
    attributes: list[Attribute] = []
    mux = transport.dtls is not None and offered.rtcp_mux  # RFC 5761 §5.1.1: muxed when offered with DTLS
    if transport.rtcp:
        rtcp_port = transport.port if mux else transport.port + 1  # RFC 5761 §5.1.3
        attributes.append(Attribute("rtcp", Rtcp(rtcp_port, transport.address).to_sdp()))
    if mux:
        attributes.append(Attribute("rtcp-mux"))
    if transport.dtls is not None:
        if offered.mid is not None:  # RFC 5888 §9.1: the answer's m-line keeps the offer's mid
            attributes.append(Attribute("mid", offered.mid))
        attributes += _dtls_lines(offered, transport)
    attributes.append(Attribute(direction.value))
    crypto = transport.crypto
    if crypto is not None and any(c.tag == crypto.tag and c.suite == crypto.suite for c in offered.cryptos):
        attributes.append(Attribute("crypto", crypto.to_sdp()))  # RFC 4568 §5.1.2: the tag answered
    if offered.ptime is not None:  # an unreadable one is not echoed
        attributes += [a for a in offered.attributes if a.name == "ptime"]
    section = MediaDescription(offered.media, transport.port, offered.proto, attributes=tuple(attributes))
    return _edit.set_codecs(section, chosen, feedback=False)


def _dtls_lines(offered: MediaDescription, transport: PlainTransport) -> list[Attribute]:
    """ICE credentials and candidates (ICE-lite), a=fingerprint and a=setup of a DTLS-SRTP answer."""
    dtls = transport.dtls
    assert dtls is not None
    lines: list[Attribute] = []
    if transport.ice is not None:
        lines += [Attribute("ice-ufrag", transport.ice.ufrag), Attribute("ice-pwd", transport.ice.pwd)]
        lines += candidate_lines(transport.candidates, end_of_candidates=False)
    lines += [Attribute("fingerprint", f.to_sdp()) for f in dtls.fingerprints]
    lines.append(Attribute("setup", dtls.setup.value))
    return lines


def _dtls_role(transport: PlainTransport, offer: SessionDescription, index: int) -> PlainTransport:
    """``transport`` with an actpass role chosen against the offer's a=setup of m-line ``index``
    (media or session level): RFC 5763 §5, the answerer is active or passive."""
    dtls = transport.dtls
    if dtls is None or dtls.setup is not Setup.ACTPASS:
        return transport
    offered = offer.dtls_for(index)
    setup = (offered.setup if offered is not None else Setup.ACTPASS).answer()
    return dataclasses.replace(transport, dtls=dataclasses.replace(dtls, setup=setup))


def _webrtc_section(
    offered: MediaDescription,
    chosen: list[Codec],
    direction: Direction,
    transport: WebRtcTransport,
    *,
    mid: str,
) -> MediaDescription:
    address, port = default_candidate(transport.candidates)
    setup = transport.dtls.setup
    if setup is Setup.ACTPASS:  # RFC 5763 §5: the answerer must choose active or passive
        offered_setup = offered.setup or Setup.ACTPASS
        setup = offered_setup.answer()
    dtls = dataclasses.replace(transport.dtls, setup=setup)
    attributes = webrtc_transport_lines(
        transport.ice, dtls, mid=mid, address=address, port=port, trickle=transport.trickle
    )
    if not offered.rtcp_mux:
        attributes = [a for a in attributes if a.name not in ("rtcp-mux", "rtcp")]
    attributes.append(Attribute(direction.value))
    attributes += candidate_lines(transport.candidates, transport.end_of_candidates)
    section = MediaDescription(
        offered.media,
        port,
        offered.proto,
        connection=Connection.for_address(address),
        attributes=tuple(attributes),
    )
    return _edit.set_codecs(section, chosen, feedback=False)


__all__ = ["PlainTransport", "Preference", "WebRtcTransport", "answer"]
