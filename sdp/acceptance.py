"""Can the gateway bridge the audio of an offer from the SIP side? Decided before anyone rings.

A UAS that will refuse an offer answers at once (RFC 3261 §13.3.1.3, RFC 3264 §6): ringing a web user
and failing only after she answered loses the call and her trust. The gateway bridges the first active
audio m-line (the one the media bridge takes) over plain RTP (RTP/AVP or RTP/AVPF) with one of its SIP
codecs. ``check_audio_offer`` raises ``SdpUnacceptable`` (488) naming the real cause, with the RFC 3261
§20.43 warn-code for a Warning header:

- no active audio m-line (T.38 fax only, video only): 304 Media type not available;
- the audio's transport profile cannot be used: 302 Incompatible transport protocol. With
  ``srtp="off"`` (media.sip_srtp: off) only RTP/AVP(F) is taken; otherwise also RTP/SAVP(F) with a
  usable a=crypto (SDES-SRTP, RFC 4568) and UDP/TLS/RTP/SAVP(F) with a=fingerprint (DTLS-SRTP,
  RFC 5763/5764; a=setup:holdconn is refused); ``required`` refuses plain RTP;
- none of the offered audio codecs is one the gateway allows: 305 Incompatible media format;
- the audio is on an address family the gateway's RTP does not use (c=IN IP6 to an IPv4-only
  gateway): 301 Incompatible network address formats, rather than a call with one-way audio.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sdp import _edit
from sdp.codecs import CodecSpec, codec_specs
from sdp.crypto import SUITES
from sdp.errors import SdpParseError, SdpUnacceptable
from sdp.model import MediaDescription, SessionDescription
from sdp.transport import Setup

__all__ = [
    "WARN_INCOMPATIBLE_ADDRESS",
    "WARN_INCOMPATIBLE_FORMAT",
    "WARN_INCOMPATIBLE_PROTOCOL",
    "WARN_MEDIA_TYPE",
    "check_audio_offer",
    "is_dtls_srtp",
]

WARN_INCOMPATIBLE_ADDRESS = 301
WARN_INCOMPATIBLE_PROTOCOL = 302
WARN_MEDIA_TYPE = 304
WARN_INCOMPATIBLE_FORMAT = 305
PLAIN_PROFILES = frozenset({"RTP/AVP", "RTP/AVPF"})
SDES_PROFILES = frozenset({"RTP/SAVP", "RTP/SAVPF"})
DTLS_PROFILES = frozenset({"UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF"})


def _streams(description: SessionDescription) -> str:
    active = [f"{m.media} {m.proto}" for m in description.media if not m.rejected]
    return ", ".join(active) or "no active stream"


def _profile(section: MediaDescription) -> str:
    proto = section.proto.upper()
    if proto in ("RTP/SAVP", "RTP/SAVPF") and section.get("crypto") is not None:
        return f"{section.proto} with a=crypto (SDES-SRTP)"
    if "TLS" in proto or section.get("fingerprint") is not None:
        return f"{section.proto} (DTLS-SRTP)"
    return section.proto


def is_dtls_srtp(description: SessionDescription, index: int) -> bool:
    """Whether m-line ``index`` offers DTLS-SRTP: UDP/TLS/RTP/SAVP(F) with an a=fingerprint (RFC 5764 §8,
    RFC 8122 §5: at media or session level)."""
    section = description.media[index]
    return section.proto.upper() in DTLS_PROFILES and description.dtls_for(index) is not None


def check_audio_offer(
    description: SessionDescription,
    codecs: Sequence[str | CodecSpec],
    families: Collection[str] = ("IP4", "IP6"),
    srtp: str = "off",
) -> int:
    """The index of the first active audio m-line a gateway whose RTP uses the address ``families``
    ("IP4", "IP6") can bridge (the one an answer takes: the others are rejected with port 0, RFC 3264
    §6); ``SdpUnacceptable`` with ``warning`` naming why the first audio m-line cannot be when none can."""
    audio = [(i, m) for i, m in enumerate(description.media) if m.media == "audio" and not m.rejected]
    if not audio:
        raise SdpUnacceptable(
            f"no audio stream to bridge (offered: {_streams(description)})", warning=WARN_MEDIA_TYPE
        )
    specs = codec_specs(codecs)
    problems = [_problem(description, index, section, specs, families, srtp) for index, section in audio]
    for (index, _), problem in zip(audio, problems, strict=True):
        if problem is None:
            return index
    first = problems[0]
    assert first is not None
    raise first


def _problem(
    description: SessionDescription,
    index: int,
    section: MediaDescription,
    specs: Sequence[CodecSpec],
    families: Collection[str],
    srtp: str,
) -> SdpUnacceptable | None:
    """Why the audio m-line ``index`` cannot be bridged, or None. ``srtp`` (media.sip_srtp): off (plain
    RTP only), optional (SDES-SRTP and DTLS-SRTP too) or required (SDES-SRTP or DTLS-SRTP only)."""
    problem = _profile_problem(description, index, section, srtp)
    if problem is not None:
        return problem
    connection = description.connection_for(index)
    if connection is not None and connection.address_type not in families:
        return SdpUnacceptable(
            f"audio on {connection.address_type} ({connection.address}); the gateway's RTP uses "
            f"{' and '.join(sorted(families))} only (media.public_address)",
            warning=WARN_INCOMPATIBLE_ADDRESS,
        )
    offered = [c for c in section.codecs if not c.is_telephone_event]
    if not any(_edit.allowed(c, specs) for c in offered):
        names = ", ".join(f"{c.name}/{c.clock_rate}" for c in offered) or "none the gateway can read"
        return SdpUnacceptable(
            f"no common audio codec: offered {names}; the gateway takes {', '.join(str(s.name) for s in specs)}",
            warning=WARN_INCOMPATIBLE_FORMAT,
        )
    return None


def _profile_problem(
    description: SessionDescription, index: int, section: MediaDescription, srtp: str
) -> SdpUnacceptable | None:
    """Why the transport profile of m-line ``index`` cannot be used with media.sip_srtp ``srtp``."""
    proto = section.proto.upper()
    if srtp != "off" and proto in DTLS_PROFILES:
        return _dtls_problem(description, index)
    sdes = proto in SDES_PROFILES and section.get("fingerprint") is None and not description.fingerprints
    if sdes and srtp != "off" and not section.cryptos:
        return SdpUnacceptable(
            f"SDES-SRTP offered without a usable a=crypto line; the gateway takes {' or '.join(SUITES)}",
            warning=WARN_INCOMPATIBLE_PROTOCOL,
        )
    if proto not in PLAIN_PROFILES and not (sdes and srtp != "off"):
        speaks = "RTP/AVP"
        if srtp != "off":
            speaks = "RTP/AVP, RTP/SAVP with a=crypto and UDP/TLS/RTP/SAVP with a=fingerprint"
        return SdpUnacceptable(
            f"audio offered over {_profile(section)}; the gateway's SIP side speaks {speaks}",
            warning=WARN_INCOMPATIBLE_PROTOCOL,
        )
    if srtp == "required" and not section.cryptos:
        return SdpUnacceptable(
            "plain RTP offered, but the gateway requires SRTP on the SIP side (media.sip_srtp: required)",
            warning=WARN_INCOMPATIBLE_PROTOCOL,
        )
    return None


def _dtls_problem(description: SessionDescription, index: int) -> SdpUnacceptable | None:
    """DTLS-SRTP (RFC 5763 §5) needs the peer's certificate fingerprint and a role we can answer."""
    try:
        dtls = description.dtls_for(index)
    except SdpParseError as exc:
        return SdpUnacceptable(
            f"DTLS-SRTP offered with an unreadable a=fingerprint: {exc}", warning=WARN_INCOMPATIBLE_PROTOCOL
        )
    if dtls is None:
        return SdpUnacceptable(
            f"audio offered over {description.media[index].proto} without a=fingerprint (RFC 5763 §5)",
            warning=WARN_INCOMPATIBLE_PROTOCOL,
        )
    if dtls.setup is Setup.HOLDCONN:
        return SdpUnacceptable(
            "DTLS-SRTP offered with a=setup:holdconn; the gateway answers active or passive (RFC 5763 §5)",
            warning=WARN_INCOMPATIBLE_PROTOCOL,
        )
    return None
