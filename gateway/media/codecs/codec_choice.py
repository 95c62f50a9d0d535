"""Which codec each leg uses, and the plain RTP offer the gateway sends to the SIP side (pure).

The rule everywhere: forward without transcoding whenever a codec is allowed on both legs and offered by
the remote side; otherwise transcode between the best codec of each leg. Names are compared
case-insensitively with their clock rate (``opus/48000``, ``PCMU/8000``, G.722 as 8000: RFC 3551 §4.5.2).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import sdp
from sdp import Attribute, Codec, Connection, MediaDescription, Origin, Rtcp, SessionDescription

# The gateway's own payload formats, RFC 3551 §6 static types; opus and telephone-event dynamic.
KNOWN: dict[str, Codec] = {
    "pcmu": Codec(0, "PCMU", 8000),
    "pcma": Codec(8, "PCMA", 8000),
    "g722": Codec(9, "G722", 8000),
    # G.729 without Annex B (RFC 4856 §2.1.9: no VAD/SID), through libbcg729 (gateway/media/codecs/g729.py)
    "g729": Codec(18, "G729", 8000, 1, "annexb=no"),
    "opus": Codec(111, "opus", 48000, 2, "minptime=10;useinbandfec=1"),
}
SIP_EVENT = Codec(101, "telephone-event", 8000, 1, "0-16")
SIP_EVENT_48K = Codec(102, "telephone-event", 48000, 1, "0-16")  # beside opus (RFC 4733 §2.1: same clock)
WEB_EVENTS = (Codec(126, "telephone-event", 8000, 1, "0-16"), Codec(110, "telephone-event", 48000, 1, "0-15"))


def known(name: str) -> Codec:
    codec = KNOWN.get(name.lower())
    if codec is None:
        raise sdp.SdpUnacceptable(f"unknown codec {name!r}; the gateway knows {sorted(KNOWN)}")
    return codec


def matches(codec: Codec, name: str) -> bool:
    return codec.name.lower() == name.lower() and codec.clock_rate == known(name).clock_rate


def offered(section: MediaDescription, allowed: Sequence[str]) -> list[Codec]:
    """The section's audio codecs that ``allowed`` names, in the section's order (its preference)."""
    return [c for c in section.codecs if not c.is_telephone_event and any(matches(c, n) for n in allowed)]


def events(section: MediaDescription) -> list[Codec]:
    return [c for c in section.codecs if c.is_telephone_event]


def offered_by_sip(section: MediaDescription, allowed: Sequence[str]) -> list[Codec]:
    """A SIP offer's usable codecs (``offered``), those whose clock its telephone-events share first
    (issue 67 item 5): CUCM and snom offer opus with telephone-event/8000 only, beside G.722 and PCMU;
    picking opus put 8 kHz event timestamps in a 48 kHz stream (RFC 4733 §2.1 wants one clock). The
    offer's order stands among each group, and without events."""
    codecs = offered(section, allowed)
    clocks = {c.clock_rate for c in events(section)}
    if not clocks:
        return codecs
    return sorted(codecs, key=lambda codec: codec.clock_rate not in clocks)


def first_common(preferred: Iterable[Codec], available: Sequence[Codec]) -> Codec | None:
    """The first of ``preferred`` that ``available`` has too, as written in ``available`` (its payload type)."""
    for codec in preferred:
        for other in available:
            if (
                not other.is_telephone_event
                and other.name.lower() == codec.name.lower()
                and (other.clock_rate == codec.clock_rate)
            ):
                return other
    return None


def sip_offer_codecs(sip_allowed: Sequence[str], first: Sequence[Codec] = ()) -> list[Codec]:
    """Codecs for an offer to the SIP side: ``codecs.sip`` in its own order, the operator's priority
    (issue 67 item 4: `[G729, PCMU]` offered PCMU first, the browser's codecs having been put ahead), with
    ``first`` (the codec in use: a re-offer, RFC 6337 §5.3; the browser's, in the 200 to a late offer)
    ahead of the rest where ``codecs.sip`` has it."""
    ahead = [n for n in sip_allowed if any(matches(c, n) for c in first)]
    return [known(n) for n in ahead + [n for n in sip_allowed if n not in ahead]]


def web_preferences(sip_side: Sequence[Codec], web_allowed: Sequence[str]) -> list[Codec]:
    """Codec preferences for the web leg: the SIP side's codecs the web leg allows (no transcoding), in
    the SIP side's order, then the web leg's own order; telephone-events last."""
    chosen: list[Codec] = []
    for codec in sip_side:
        if any(matches(codec, n) for n in web_allowed):
            chosen.append(known(codec.name))
    for name in web_allowed:
        if not any(matches(c, name) for c in chosen):
            chosen.append(known(name))
    return chosen + list(WEB_EVENTS)


def _lower(names: Iterable[str]) -> set[str]:
    return {n.lower() for n in names}


def plain_offer(
    codecs: Sequence[Codec],
    *,
    address: str,
    port: int,
    telephone_event: bool,
    session_id: str | None = None,
    version: int = 1,
    direction: sdp.Direction = sdp.Direction.SENDRECV,
    crypto: sdp.Crypto | None = None,
    secure: bool = False,
) -> SessionDescription:
    """An RTP/AVP offer (RFC 3264 §5) with one audio m-line, RTCP on port + 1 (RFC 3605), ptime 20.
    telephone-event at 8000 Hz, and at 48000 Hz too when opus is offered, so that whichever codec the
    far end picks has DTMF at its own clock rate."""
    events = [SIP_EVENT] if telephone_event else []
    if telephone_event and any(c.clock_rate == 48000 for c in codecs):
        events.append(SIP_EVENT_48K)
    formats = list(codecs) + events
    attributes = [Attribute("rtcp", Rtcp(port + 1, address).to_sdp())]
    if crypto is not None:  # SDES (RFC 4568): RTP/SAVP when SRTP is required, else best effort (RFC 8643)
        attributes.append(Attribute("crypto", crypto.to_sdp()))
    for codec in formats:
        attributes.append(Attribute("rtpmap", codec.rtpmap))
        if codec.fmtp is not None:
            attributes.append(Attribute("fmtp", f"{codec.payload_type} {codec.fmtp}"))
    attributes += [Attribute("ptime", "20"), Attribute(direction.value)]
    proto = "RTP/SAVP" if secure and crypto is not None else "RTP/AVP"
    media = MediaDescription(
        "audio", port, proto, tuple(str(c.payload_type) for c in formats), attributes=tuple(attributes)
    )
    connection = Connection.for_address(address)
    origin = Origin("-", session_id or str(int(time.time())), version, address, connection.address_type)
    return SessionDescription(origin=origin, name="-", connection=connection, media=(media,))


def webrtc_offer(
    codecs: Sequence[Codec],
    *,
    address: str,
    port: int,
    telephone_event: bool,
    dtls: sdp.DtlsParameters,
    ice: sdp.IceParameters,
    candidate: sdp.Candidate,
    direction: sdp.Direction = sdp.Direction.SENDRECV,
) -> SessionDescription:
    """An offer for a SIP side that speaks WebRTC media only (a WebRTC SBC or extension, route
    ``sip_offer: webrtc``): ``plain_offer``'s codecs over UDP/TLS/RTP/SAVPF (RFC 5764 §8) with our
    fingerprint and a=setup:actpass (RFC 5763 §5), ICE-lite credentials and one host candidate (RFC 8839;
    the gateway never gathers), rtcp-mux (RFC 5761) and the m-line in a BUNDLE group (RFC 8843), which
    WebRTC stacks require."""
    plain = plain_offer(
        codecs, address=address, port=port, telephone_event=telephone_event, direction=direction
    )
    (section,) = plain.media
    kept = tuple(a for a in section.attributes if a.name != "rtcp")
    transport = [
        Attribute("mid", "0"),
        Attribute("rtcp-mux"),
        Attribute("ice-ufrag", ice.ufrag),
        Attribute("ice-pwd", ice.pwd),
        Attribute("candidate", candidate.to_sdp().removeprefix("candidate:")),
        Attribute("end-of-candidates"),
        *(Attribute("fingerprint", f.to_sdp()) for f in dtls.fingerprints),
        Attribute("setup", sdp.Setup.ACTPASS.value),
    ]
    media = MediaDescription(
        "audio", port, "UDP/TLS/RTP/SAVPF", section.formats, attributes=(*transport, *kept)
    )
    session = (Attribute("ice-lite"), Attribute("group", "BUNDLE 0"))
    return SessionDescription(
        origin=plain.origin, name="-", connection=plain.connection, attributes=session, media=(media,)
    )


def remote_rtp(description: SessionDescription, index: int) -> tuple[tuple[str, int], tuple[str, int]]:
    """The peer's RTP and RTCP addresses of m-line ``index`` (RFC 3605 a=rtcp, else port + 1)."""
    section = description.media[index]
    connection = description.connection_for(index)
    if connection is None:
        raise sdp.SdpUnacceptable(f"no c= line for 'm={section.m_line}'")
    address = connection.address.split("/")[0]
    rtcp = section.rtcp
    rtcp_address = (rtcp.address or address, rtcp.port) if rtcp is not None else (address, section.port + 1)
    if section.rtcp_mux:
        rtcp_address = (address, section.port)
    return (address, section.port), rtcp_address


@dataclass(frozen=True, slots=True)
class LegCodecs:
    """What one leg negotiated: the codec the gateway sends, what the peer may send (payload type ->
    codec, telephone-events included), the telephone-event to send DTMF with, and our direction."""

    codec: Codec
    incoming: Mapping[int, Codec]
    event: Codec | None
    direction: sdp.Direction
    packet_ms: int = 20  # the packet time the peer wants (gateway/media/codecs/packetize.py)

    @classmethod
    def of(
        cls,
        codecs: Sequence[Codec],
        events: Sequence[Codec],
        direction: sdp.Direction,
        packet_ms: int = 20,
        *,
        redundancy: Sequence[Codec] = (),
    ) -> LegCodecs:
        """The first of ``codecs`` is the one sent; the event at its clock rate is preferred (RFC 4733 §2.1);
        ``redundancy``: RFC 2198 ``red`` the peer may send (received, never the codec sent)."""
        if not codecs:
            raise sdp.SdpUnacceptable("no common audio codec")
        same_rate = [e for e in events if e.clock_rate == codecs[0].clock_rate]
        event = (same_rate or list(events))[0] if events else None
        incoming = {c.payload_type: c for c in [*codecs, *events, *redundancy]}
        return cls(codecs[0], MappingProxyType(incoming), event, direction, packet_ms)

    def event_for(self, codec: Codec) -> Codec | None:
        """The telephone-event to send beside ``codec`` (the leg's own, or another it negotiated: the one
        at ``codec``'s clock rate, RFC 4733 §2.1, else the leg's)."""
        if codec == self.codec:
            return self.event
        same = (
            c for c in self.incoming.values() if c.is_telephone_event and c.clock_rate == codec.clock_rate
        )
        return next(same, self.event)
