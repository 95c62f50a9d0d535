"""Tell what kind of peer wrote a description, from its transport protocols and security attributes.

- WebRTC: UDP/TLS/RTP/SAVPF (or UDP/DTLS/SCTP for data) with ICE credentials and a fingerprint
  (RFC 8829 §5.1.2, RFC 8839, RFC 8122).
- Plain RTP: RTP/AVP or RTP/AVPF (RFC 3551, RFC 4585) without crypto.
- SDES-SRTP: RTP/SAVP(F) with a=crypto (RFC 4568).
- DTLS-SRTP without ICE: UDP/TLS/RTP/SAVP(F) with a fingerprint but no ICE credentials (RFC 5763).
Rejected m-lines (port 0) do not count unless all are rejected. Streams of different kinds give MIXED.
"""

from __future__ import annotations

from enum import Enum

from sdp.model import SessionDescription


class SdpKind(Enum):
    WEBRTC = "webrtc"
    PLAIN_RTP = "plain-rtp"
    SDES_SRTP = "sdes-srtp"
    DTLS_SRTP = "dtls-srtp"  # DTLS-SRTP without ICE (RFC 5763 alone)
    MIXED = "mixed"  # streams of different kinds in one description
    NO_MEDIA = "no-media"  # no m-line at all
    UNKNOWN = "unknown"  # a transport this package does not translate (T.38 udptl, MSRP, ...)


_PLAIN = frozenset({"RTP/AVP", "RTP/AVPF"})
_SDES = frozenset({"RTP/SAVP", "RTP/SAVPF"})
_DTLS = frozenset({"UDP/TLS/RTP/SAVPF", "UDP/TLS/RTP/SAVP", "UDP/DTLS/SCTP", "TCP/DTLS/SCTP", "DTLS/SCTP"})


def classify_media(description: SessionDescription, index: int) -> SdpKind:
    """The kind of one m-line, with session-level ICE/DTLS attributes applied (baresip puts them there)."""
    media = description.media[index]
    proto = media.proto.upper()
    if proto in _PLAIN and not media.has("crypto"):
        return SdpKind.PLAIN_RTP
    if proto in _SDES and media.has("crypto"):
        return SdpKind.SDES_SRTP
    if proto in _DTLS and description.dtls_for(index) is not None:
        return SdpKind.WEBRTC if description.ice_for(index) is not None else SdpKind.DTLS_SRTP
    return SdpKind.UNKNOWN


def classify(description: SessionDescription) -> SdpKind:
    """The kind of the whole description: the common kind of its active m-lines."""
    if not description.media:
        return SdpKind.NO_MEDIA
    indexes = [i for i, m in enumerate(description.media) if not m.rejected] or range(len(description.media))
    kinds = {classify_media(description, i) for i in indexes}
    return kinds.pop() if len(kinds) == 1 else SdpKind.MIXED
