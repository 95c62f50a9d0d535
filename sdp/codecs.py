"""Codecs (RTP payload formats) of an m-line: rtpmap/fmtp/rtcp-fb grammar and the static table.

RFC 4566 §6 (a=rtpmap, a=fmtp), RFC 4585 §4.2 (a=rtcp-fb), RFC 3551 §6 (static payload types, which
may be used without an a=rtpmap line), RFC 4733 §7 (telephone-event).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sdp import _grammar
from sdp.errors import SdpParseError

# RFC 3551 §6, tables 4 and 5: payload type -> (encoding name, clock rate, channels).
# G722 is listed with 8000 Hz although it samples at 16 kHz (RFC 3551 §4.5.2: an historical error kept).
STATIC_PAYLOAD_TYPES: Mapping[int, tuple[str, int, int]] = {
    0: ("PCMU", 8000, 1),
    3: ("GSM", 8000, 1),
    4: ("G723", 8000, 1),
    5: ("DVI4", 8000, 1),
    6: ("DVI4", 16000, 1),
    7: ("LPC", 8000, 1),
    8: ("PCMA", 8000, 1),
    9: ("G722", 8000, 1),
    10: ("L16", 44100, 2),
    11: ("L16", 44100, 1),
    12: ("QCELP", 8000, 1),
    13: ("CN", 8000, 1),
    14: ("MPA", 90000, 1),
    15: ("G728", 8000, 1),
    16: ("DVI4", 11025, 1),
    17: ("DVI4", 22050, 1),
    18: ("G729", 8000, 1),
    25: ("CelB", 90000, 1),
    26: ("JPEG", 90000, 1),
    28: ("nv", 90000, 1),
    31: ("H261", 90000, 1),
    32: ("MPV", 90000, 1),
    33: ("MP2T", 90000, 1),
    34: ("H263", 90000, 1),
}

TELEPHONE_EVENT = "telephone-event"
# RFC 4733 §3.2: events 0-15 are the DTMF digits, 16 is flash; what SIP phones expect by default.
DEFAULT_TELEPHONE_EVENT_FMTP = "0-16"

_NAME = re.compile(r"[A-Za-z0-9][\w\-.+]*\Z")


@dataclass(frozen=True, slots=True)
class Codec:
    """One payload format of an m-line: ``a=rtpmap:<payload_type> <name>/<clock_rate>[/<channels>]``.

    ``fmtp`` is the raw text of the ``a=fmtp`` line's parameters, ``rtcp_fb`` the values of the
    ``a=rtcp-fb`` lines naming this payload type (without the payload type).
    """

    payload_type: int
    name: str
    clock_rate: int
    channels: int = 1
    fmtp: str | None = None
    rtcp_fb: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.payload_type <= 127:
            raise SdpParseError(f"payload type must be 0-127 (RFC 3550 §5.1): {self.payload_type!r}")
        if not _NAME.match(self.name):
            raise SdpParseError(f"invalid encoding name: {self.name!r}")
        if self.clock_rate <= 0:
            raise SdpParseError(f"clock rate must be positive: {self.clock_rate!r}")
        if self.channels <= 0:
            raise SdpParseError(f"channel count must be positive: {self.channels!r}")
        for text in (self.fmtp or "", *self.rtcp_fb):
            if "\r" in text or "\n" in text:
                raise SdpParseError(f"line break inside a codec parameter: {text!r}")

    @property
    def is_telephone_event(self) -> bool:
        return self.name.lower() == TELEPHONE_EVENT

    @property
    def rtpmap(self) -> str:
        """The value of this codec's a=rtpmap line (``111 opus/48000/2``), written by sdp-transform."""
        values: dict[str, object] = {
            "payload": self.payload_type,
            "codec": self.name,
            "rate": self.clock_rate,
        }
        if self.channels != 1:
            values["encoding"] = self.channels
        return _grammar.format_line("a", "rtp", values).removeprefix("rtpmap:")

    @property
    def parameters(self) -> dict[str, str | None]:
        """The fmtp parameters as a mapping (``minptime=10;useinbandfec=1``; ``0-16`` maps to None)."""
        result: dict[str, str | None] = {}
        for item in (self.fmtp or "").split(";"):
            item = item.strip()
            if item:
                key, sep, value = item.partition("=")
                result[key.strip()] = value.strip() if sep else None
        return result

    def same_format(self, other: Codec) -> bool:
        """Same encoding by name (case-insensitive), clock rate and channels (RFC 3264 §6.1)."""
        return (
            self.name.lower() == other.name.lower()
            and self.clock_rate == other.clock_rate
            and self.channels == other.channels
        )

    def __str__(self) -> str:
        return self.rtpmap


@dataclass(frozen=True, slots=True)
class CodecSpec:
    """A codec a side allows, written ``NAME``, ``NAME/rate`` or ``NAME/rate/channels`` (``opus/48000/2``)."""

    name: str
    clock_rate: int | None = None
    channels: int | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise SdpParseError(f"invalid codec name: {self.name!r}")

    @classmethod
    def parse(cls, text: str) -> CodecSpec:
        parts = text.strip().split("/")
        try:
            rate = int(parts[1]) if len(parts) > 1 else None
            channels = int(parts[2]) if len(parts) > 2 else None
        except ValueError:
            raise SdpParseError(f"invalid codec (want NAME[/rate[/channels]]): {text!r}") from None
        if len(parts) > 3:
            raise SdpParseError(f"invalid codec (want NAME[/rate[/channels]]): {text!r}")
        return cls(parts[0], rate, channels)

    def accepts(self, codec: Codec) -> bool:
        return (
            self.name.lower() == codec.name.lower()
            and self.clock_rate in (None, codec.clock_rate)
            and self.channels in (None, codec.channels)
        )


def codec_specs(codecs: Iterable[str | CodecSpec]) -> tuple[CodecSpec, ...]:
    return tuple(c if isinstance(c, CodecSpec) else CodecSpec.parse(c) for c in codecs)


def payload_type_of(value: str | None) -> str | None:
    """The payload type token of an rtpmap/fmtp/rtcp-fb value (``"111"`` of ``"111 opus/48000/2"``)."""
    if value is None:
        return None
    return value.split(" ", 1)[0]


def parse_rtpmap(value: str) -> tuple[int, str, int, int]:
    """``111 opus/48000/2`` -> (111, "opus", 48000, 2), by sdp-transform's rtpmap rule (RFC 4566 §6)."""
    found = _grammar.match("a", "rtp", "rtpmap:" + value)
    if (
        found is None
        or not found["payload"]
        or not found["rate"]
        or not (found["payload"] + found["rate"]).isascii()
    ):
        raise SdpParseError(f"invalid rtpmap line: 'a=rtpmap:{value}'")
    channels = found["encoding"]
    if channels is not None and not channels.isdigit():
        raise SdpParseError(f"invalid rtpmap channel count: 'a=rtpmap:{value}'")
    result = int(found["payload"]), found["codec"] or "", int(found["rate"]), int(channels or 1)
    if not found["codec"] or result[2] == 0 or result[3] == 0:
        raise SdpParseError(f"invalid rtpmap line: 'a=rtpmap:{value}'")
    return result


def build_codecs(formats: Sequence[str], attributes: Iterable[tuple[str, str | None]]) -> tuple[Codec, ...]:
    """Codecs of an RTP m-line in the m-line's order; formats with neither rtpmap nor static entry are skipped.

    Only the first rtpmap/fmtp per payload type counts (RFC 4566 §6 allows one of each). Liberal in what
    it accepts (RFC 3264 §5.1, RFC 8866 §5): an rtpmap, fmtp or rtcp-fb line that does not parse
    (``a=rtpmap:98 iLBC`` without a clock rate, ``H224/0``, RFC 4475's ``31 LPC``) makes its payload
    format unusable, or loses that parameter, instead of failing the whole description: a format the
    gateway would never pick must not fail a call. A static payload type falls back to RFC 3551's entry.
    """
    rtpmaps: dict[int, tuple[str, int, int] | None] = {}  # None: an rtpmap that names nothing usable
    fmtps: dict[int, str] = {}
    feedback: dict[int, list[str]] = {}
    for attr_name, value in attributes:
        if value is None or attr_name not in ("rtpmap", "fmtp", "rtcp-fb"):
            continue
        token, _, rest = value.partition(" ")
        if not (token.isdigit() and token.isascii()):
            continue  # a=rtcp-fb:* or a malformed payload type: names no format of ours
        if attr_name == "rtpmap":
            rtpmaps.setdefault(int(token), _usable_rtpmap(value))
        elif attr_name == "fmtp":
            # sdp-transform's fmtp rule: "fmtp:(\d*) ([\S| ]*)"
            if _grammar.match("a", "fmtp", "fmtp:" + value) is not None:
                fmtps.setdefault(int(token), rest)
        elif rest.strip():  # RFC 4585 §4.2: rtcp-fb-val is required
            feedback.setdefault(int(token), []).append(rest)
    codecs: list[Codec] = []
    for fmt in formats:
        pt = int(fmt)
        known = rtpmaps.get(pt) or STATIC_PAYLOAD_TYPES.get(pt)
        if known is None:
            continue
        name, rate, channels = known
        try:
            codecs.append(Codec(pt, name, rate, channels, fmtps.get(pt), tuple(feedback.get(pt, ()))))
        except SdpParseError:
            continue  # e.g. an encoding name of characters RFC 4566 does not allow
    return tuple(codecs)


def _usable_rtpmap(value: str) -> tuple[str, int, int] | None:
    try:
        _, name, rate, channels = parse_rtpmap(value)
    except SdpParseError:
        return None
    return name, rate, channels
