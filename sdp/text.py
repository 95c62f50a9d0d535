"""Real-time text on the SIP side: the ``m=text`` line of RFC 4103 (T.140 over RTP).

A text phone offers ``m=text <port> RTP/AVP <red> <t140>`` with ``a=rtpmap:<t140> t140/1000`` and, for
its redundancy (RFC 4103 §3, RFC 2198), ``a=rtpmap:<red> red/1000`` with ``a=fmtp:<red> <t140>/<t140>/
<t140>``: the primary block and two redundant generations, all T.140. ``TextFormat`` is what such an
m-line says; ``offer_section`` and ``answer_section`` write the gateway's own, on a port of its own
(the gateway bridges the text to an RFC 8865 T.140 data channel on the web leg: gateway/media/text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from sdp import _edit
from sdp.codecs import Codec
from sdp.errors import SdpParseError
from sdp.lines import Attribute, Connection, Direction, Rtcp
from sdp.model import MediaDescription, SessionDescription

T140: Final = "t140"
RED: Final = "red"
CLOCK_RATE: Final = 1000  # RFC 4103 §6: T.140 timestamps count milliseconds
GENERATIONS: Final = 2  # redundant generations RFC 4103 §4.1 recommends (primary + 2)
OUR_T140: Final = 98  # the payload types of our own offer (dynamic, RFC 3551 §3)
OUR_RED: Final = 100
TEXT_PROFILES: Final = ("RTP/AVP", "RTP/AVPF")  # plain RTP only: no key for the text (RFC 4103 §9)
_T140_DCMAP: Final = re.compile(r'(?:^|[;\s])\s*subprotocol\s*=\s*"?t140"?\s*(?:;|$)', re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class TextFormat:
    """What an ``m=text`` line negotiates: the T.140 payload type and, with redundancy, the RED one and
    how many redundant generations each packet carries (``a=fmtp:<red> 98/98/98``: 2)."""

    t140: int
    red: int | None = None
    generations: int = 0

    def __post_init__(self) -> None:
        for pt in (self.t140, self.red):
            if pt is not None and not 0 <= pt <= 127:
                raise SdpParseError(f"text payload type must be 0-127 (RFC 3551 §3), got {pt!r}")
        if self.red == self.t140 or (self.red is None) != (self.generations == 0):
            raise SdpParseError(f"bad T.140 redundancy: red {self.red!r}, generations {self.generations!r}")
        if not 0 <= self.generations <= 8:
            raise SdpParseError(f"T.140 redundancy must be 0-8 generations, got {self.generations!r}")

    @property
    def codecs(self) -> list[Codec]:
        """The m-line's codecs, RED first (the one to send when both are there: RFC 4103 §4)."""
        t140 = Codec(self.t140, T140, CLOCK_RATE)
        if self.red is None:
            return [t140]
        fmtp = "/".join([str(self.t140)] * (self.generations + 1))
        return [Codec(self.red, RED, CLOCK_RATE, fmtp=fmtp), t140]


def text_format(section: MediaDescription) -> TextFormat | None:
    """The T.140 format of an ``m=text`` line (RFC 4103 §6), None when it has none usable (rejected, not
    plain RTP, no ``t140/1000``). A ``red`` whose fmtp names anything but that T.140 payload type is
    ignored (the text goes on without redundancy)."""
    if section.media != "text" or section.rejected or section.proto.upper() not in TEXT_PROFILES:
        return None
    codecs = section.codecs
    t140 = next((c for c in codecs if c.name.lower() == T140 and c.clock_rate == CLOCK_RATE), None)
    if t140 is None:
        return None
    for codec in codecs:
        if codec.name.lower() != RED or codec.clock_rate != CLOCK_RATE:
            continue
        blocks = (codec.fmtp or "").strip().split("/")
        if len(blocks) >= 2 and all(b.strip() == str(t140.payload_type) for b in blocks):
            return TextFormat(t140.payload_type, codec.payload_type, min(len(blocks) - 1, 8))
    return TextFormat(t140.payload_type)


def text_index(description: SessionDescription) -> int | None:
    """The first ``m=text`` line with a usable T.140 format, None when there is none."""
    return next((i for i, m in enumerate(description.media) if text_format(m) is not None), None)


def offer_section(address: str, port: int, *, generations: int = GENERATIONS) -> MediaDescription:
    """Our ``m=text`` for an offer to the SIP side: RED (``generations`` redundant) and T.140, sendrecv,
    a=rtcp at port+1 (RFC 3605)."""
    fmt = TextFormat(OUR_T140, OUR_RED, generations) if generations else TextFormat(OUR_T140)
    return _section(fmt, address, port, Direction.SENDRECV)


def answer_section(
    offer: MediaDescription, address: str, port: int, direction: Direction = Direction.SENDRECV
) -> MediaDescription:
    """Our answer to the SIP side's ``m=text`` (RFC 3264 §6.1): its payload types, its redundancy when
    it offered some, ``direction``; rejected with port 0 when it has no usable T.140."""
    fmt = text_format(offer)
    if fmt is None:
        return _edit.rejected(offer, offer.proto)
    return _section(fmt, address, port, direction, offer.proto)


def _section(
    fmt: TextFormat, address: str, port: int, direction: Direction, proto: str = "RTP/AVP"
) -> MediaDescription:
    connection = Connection.for_address(address)
    attributes = (Attribute("rtcp", Rtcp(port + 1, address).to_sdp()), Attribute(direction.value))
    section = MediaDescription("text", port, proto, connection=connection, attributes=attributes)
    return _edit.set_codecs(section, fmt.codecs, feedback=False)


def asks_for_t140(description: SessionDescription) -> bool:
    """True when a browser's offer asks for real-time text: an ``a=dcmap`` line naming subprotocol
    ``t140`` (RFC 8865 §5.1, RFC 8864 §5.1: ``a=dcmap:<id> label="t140";subprotocol="t140"``) on a live
    ``m=application`` data channel line."""
    return any(
        m.media == "application" and not m.rejected and any(_T140_DCMAP.search(v) for v in m.values("dcmap"))
        for m in description.media
    )
