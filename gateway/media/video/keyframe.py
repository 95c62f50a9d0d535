"""Keyframe requests between the legs, sans-I/O: RTCP PLI and FIR, SIP INFO picture_fast_update.

A receiver that lost a reference frame, or a leg that (re)starts, needs a full picture. It asks:

* the browser and AVPF phones with RTCP payload-specific feedback (PSFB, packet type 206): a Picture
  Loss Indication (RFC 4585 §6.3.1, FMT 1, no FCI) or a Full Intra Request (RFC 5104 §4.3.1, FMT 4,
  FCI: SSRC of the media sender and a sequence number that changes per new request);
* SIP video phones that do no RTCP feedback (Polycom, Cisco, Tandberg/Yealink of a certain age) with
  a SIP INFO whose body is ``application/media_control+xml`` ``<picture_fast_update/>`` (RFC 5168 §3).

``KeyframeRequests`` decides how to ask the SIP side (``SipRequestKind``: what its video m-line
negotiated: ``nack pli`` -> PLI, else ``ccm fir`` -> FIR, else INFO) and limits requests to one per
``min_interval`` per side (RFC 5104 §4.3.1.2: not more often than a keyframe can come back; a lossy
browser sends a PLI burst that must not turn into an INFO storm).
"""

from __future__ import annotations

import enum
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.media.errors import PacketError
from gateway.media.rtp.packet import check_range
from gateway.media.rtp.rtcp import RtcpPacket, RtcpUnknown

__all__ = [
    "MEDIA_CONTROL",
    "RTCP_PSFB",
    "FullIntraRequest",
    "KeyframeRequests",
    "PictureLoss",
    "SipRequestKind",
    "is_picture_fast_update",
    "keyframe_requests",
    "picture_fast_update",
]

RTCP_PSFB = 206  # RFC 4585 §6.1: payload-specific feedback
FMT_PLI = 1  # RFC 4585 §6.3.1
FMT_FIR = 4  # RFC 5104 §4.3.1
MEDIA_CONTROL = "application/media_control+xml"  # RFC 5168 §3
DEFAULT_MIN_INTERVAL = 0.5


@dataclass(frozen=True, slots=True)
class PictureLoss:
    """An RTCP PLI: ``sender`` asks the sender of ``media`` for a keyframe (RFC 4585 §6.3.1)."""

    sender: int
    media: int

    def __post_init__(self) -> None:
        check_range("PLI sender SSRC", self.sender, 0, 2**32 - 1)
        check_range("PLI media SSRC", self.media, 0, 2**32 - 1)

    def to_rtcp(self) -> RtcpUnknown:
        return RtcpUnknown(RTCP_PSFB, FMT_PLI, struct.pack("!II", self.sender, self.media))


@dataclass(frozen=True, slots=True)
class FullIntraRequest:
    """An RTCP FIR with one FCI entry (RFC 5104 §4.3.1.1): the media sender's SSRC and the request's
    command sequence number (incremented per new request, the same for a repetition)."""

    sender: int
    media: int
    sequence: int

    def __post_init__(self) -> None:
        check_range("FIR sender SSRC", self.sender, 0, 2**32 - 1)
        check_range("FIR media SSRC", self.media, 0, 2**32 - 1)
        check_range("FIR sequence number", self.sequence, 0, 255)

    def to_rtcp(self) -> RtcpUnknown:
        # §4.3.1.1: the common header's "SSRC of media source" is unused and set to 0
        body = struct.pack("!IIIB3x", self.sender, 0, self.media, self.sequence)
        return RtcpUnknown(RTCP_PSFB, FMT_FIR, body)


def keyframe_requests(packets: Iterable[RtcpPacket]) -> list[PictureLoss | FullIntraRequest]:
    """The PLIs and FIRs of a compound RTCP packet (a FIR with several FCI entries gives one each);
    ``PacketError`` when one is too short for its format."""
    found: list[PictureLoss | FullIntraRequest] = []
    for packet in packets:
        if not isinstance(packet, RtcpUnknown) or packet.packet_type != RTCP_PSFB:
            continue
        body = packet.body
        if packet.count == FMT_PLI:
            if len(body) < 8:
                raise PacketError(f"RTCP PLI of {len(body)} bytes, needs 8 (RFC 4585 §6.1)")
            found.append(PictureLoss(*struct.unpack_from("!II", body)))
        elif packet.count == FMT_FIR:
            if len(body) < 16 or (len(body) - 8) % 8:
                raise PacketError(f"RTCP FIR of {len(body)} bytes: 8 and 8 per FCI entry (RFC 5104 §4.3.1)")
            sender = struct.unpack_from("!I", body)[0]
            for pos in range(8, len(body), 8):
                media, sequence = struct.unpack_from("!IB", body, pos)
                found.append(FullIntraRequest(sender, media, sequence))
    return found


def picture_fast_update() -> str:
    """The RFC 5168 §3 body of a SIP INFO asking for a keyframe."""
    return (
        '<?xml version="1.0" encoding="utf-8" ?>\r\n'
        "<media_control>\r\n  <vc_primitive>\r\n    <to_encoder>\r\n"
        "      <picture_fast_update/>\r\n    </to_encoder>\r\n  </vc_primitive>\r\n</media_control>\r\n"
    )


_FAST_UPDATE = re.compile(
    rb"<\s*media_control\b.*<\s*vc_primitive\b.*<\s*to_encoder\b.*<\s*picture_fast_update\s*/?\s*>", re.S
)


def is_picture_fast_update(content_type: str, body: str | bytes) -> bool:
    """Whether a SIP INFO asks for a keyframe (RFC 5168 §3; the Content-Type's parameters ignored).
    Read liberally: namespaces, whitespace and an XML declaration vary between phones."""
    if content_type.split(";", 1)[0].strip().lower() != MEDIA_CONTROL:
        return False
    data = body.encode("utf-8", "replace") if isinstance(body, str) else body
    return len(data) <= 8192 and _FAST_UPDATE.search(data) is not None


class SipRequestKind(enum.Enum):
    """How the SIP side is asked for a keyframe, by what its video m-line negotiated."""

    PLI = "pli"
    FIR = "fir"
    INFO = "info"

    @classmethod
    def of(cls, feedback: Iterable[str]) -> SipRequestKind:
        """``nack pli`` -> PLI, ``ccm fir`` -> FIR (RFC 5104 §7.1), anything else -> SIP INFO."""
        names = {" ".join(fb.split()).lower() for fb in feedback}
        if "nack pli" in names:
            return cls.PLI
        if "ccm fir" in names:
            return cls.FIR
        return cls.INFO


class KeyframeRequests:
    """Requests toward one side, at most one per ``min_interval`` seconds (the later ones are
    absorbed: the keyframe asked for answers them too). ``want(now)`` says whether to send one now;
    ``next_fir()`` numbers FIRs (RFC 5104 §4.3.1.1)."""

    __slots__ = ("_fir", "_last", "min_interval", "sent", "suppressed")

    def __init__(self, min_interval: float = DEFAULT_MIN_INTERVAL) -> None:
        if min_interval < 0:
            raise ValueError(f"min_interval must not be negative: {min_interval!r}")
        self.min_interval = min_interval
        self._last: float | None = None
        self._fir = 0
        self.sent = self.suppressed = 0

    def want(self, now: float) -> bool:
        if self._last is not None and now - self._last < self.min_interval:
            self.suppressed += 1
            return False
        self._last = now
        self.sent += 1
        return True

    def next_fir(self) -> int:
        self._fir = (self._fir + 1) % 256
        return self._fir
