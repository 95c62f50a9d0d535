"""SDES-SRTP (RFC 4568) on the SIP side's video m-line: which key of an offer or an answer to use, and our
own a=crypto on the m-lines we write. Pure.

Each m-line has its own ``a=crypto`` (RFC 4568 §5.1: the attribute is media level) and its own keys:
the video's are never the audio's (two streams under one key and salt would share a keystream when
their SSRCs collide, RFC 3711 §9.1). ``media.sip_srtp`` applies to the video as to the audio:

* ``off``: plain RTP/AVP(F) only; an RTP/SAVP(F) video m-line is rejected (port 0), the audio goes on;
* ``optional``: RTP/SAVP(F) with a usable a=crypto, or RTP/AVP(F) with one (best effort, as the audio
  takes it), or plain RTP/AVP(F);
* ``required``: a usable a=crypto, whatever the RTP profile says.

An m-line whose a=crypto lines are all unusable (another suite, an MKI, a bad key: ``sdp.crypto``) where
SRTP is needed is rejected the same way: the video goes, never the call.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sdp.crypto import Crypto
from sdp.model import Attribute, MediaDescription

__all__ = ["SECURE_PROFILES", "VideoKeys", "answered_keys", "offered_keys", "secure_proto", "with_crypto"]

PLAIN_VIDEO_PROFILES = frozenset({"RTP/AVP", "RTP/AVPF"})
SECURE_PROFILES = frozenset({"RTP/SAVP", "RTP/SAVPF"})
SRTP_MODES = ("off", "optional", "required")


@dataclass(frozen=True, slots=True)
class VideoKeys:
    """What a video m-line allows: ``usable`` (False: reject the video), and the peer's key (None: plain
    RTP)."""

    usable: bool
    theirs: Crypto | None = None

    def __post_init__(self) -> None:
        if self.theirs is not None and not self.usable:
            raise ValueError(f"a key for an unusable video m-line: {self.theirs!r}")


def _check_mode(srtp: str) -> None:
    if srtp not in SRTP_MODES:
        raise ValueError(f"media.sip_srtp must be one of {', '.join(SRTP_MODES)}, not {srtp!r}")


def offered_keys(section: MediaDescription, srtp: str) -> VideoKeys:
    """A SIP offer's video m-line under ``media.sip_srtp`` ``srtp`` (see the module note): the first
    usable a=crypto (RFC 4568 §7.1.1: the answerer takes one of the offered lines)."""
    _check_mode(srtp)
    proto = section.proto.upper()
    theirs = next(iter(section.cryptos), None) if srtp != "off" else None
    if proto in PLAIN_VIDEO_PROFILES:
        if srtp == "required" and theirs is None:
            return VideoKeys(False)
        return VideoKeys(True, theirs)
    if proto in SECURE_PROFILES and theirs is not None:
        return VideoKeys(True, theirs)
    return VideoKeys(False)


def answered_keys(section: MediaDescription, ours: Crypto | None, srtp: str) -> VideoKeys:
    """The SIP side's answer to our video m-line, which carried ``ours`` (None: plain RTP offered): its
    a=crypto of our tag and suite (RFC 4568 §7.1.2); without one, plain RTP unless SRTP is required or the
    answer's profile says SRTP (then the video is rejected)."""
    _check_mode(srtp)
    if ours is None:
        return VideoKeys(section.proto.upper() in PLAIN_VIDEO_PROFILES)
    theirs = next((c for c in section.cryptos if (c.tag, c.suite) == (ours.tag, ours.suite)), None)
    if theirs is not None:
        return VideoKeys(True, theirs)
    return VideoKeys(srtp != "required" and section.proto.upper() in PLAIN_VIDEO_PROFILES)


def secure_proto(proto: str) -> str:
    """RTP/AVP -> RTP/SAVP, RTP/AVPF -> RTP/SAVPF (RFC 3711 §12, RFC 5124); others unchanged."""
    return {"RTP/AVP": "RTP/SAVP", "RTP/AVPF": "RTP/SAVPF"}.get(proto.upper(), proto)


def with_crypto(section: MediaDescription, crypto: Crypto, *, secure: bool) -> MediaDescription:
    """``section`` with our ``a=crypto`` (after a=rtcp, replacing any other) and, when ``secure``, the
    SRTP profile of its RTP profile (RTP/SAVP or RTP/SAVPF); else the profile is kept (best effort)."""
    kept = [a for a in section.attributes if a.name != "crypto"]
    at = next((i + 1 for i, a in enumerate(kept) if a.name == "rtcp"), 0)
    attributes = [*kept[:at], Attribute("crypto", crypto.to_sdp()), *kept[at:]]
    proto = secure_proto(section.proto) if secure else section.proto
    return dataclasses.replace(section, proto=proto, attributes=tuple(attributes))
