"""The typed model of a session description (RFC 8866, formerly RFC 4566).

The source of truth of each level (session, media) is its ordered tuple of ``Attribute`` values, so
unknown attributes and their order survive ``write(parse(text))``. Typed views (``codecs``,
``candidates``, ``direction``...) are computed from those attributes with sdp-transform's per-line
grammar; edits produce new frozen values (``with_attributes``, ``without``, ``dataclasses.replace``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass

from sdp import _grammar
from sdp.candidate import Candidate
from sdp.codecs import Codec, build_codecs
from sdp.crypto import Crypto
from sdp.errors import SdpParseError
from sdp.lines import (
    _NO_BREAK,
    _PROTO,
    DIRECTION_NAMES,
    RTP_PROTOS,
    TOKEN,
    Attribute,
    Bandwidth,
    Connection,
    Direction,
    Origin,
    Rtcp,
)
from sdp.transport import DtlsParameters, Fingerprint, IceParameters, Setup

__all__ = [
    "DIRECTION_NAMES",
    "RTP_PROTOS",
    "TOKEN",
    "Attribute",
    "Bandwidth",
    "Connection",
    "Direction",
    "MediaDescription",
    "Origin",
    "Rtcp",
    "SessionDescription",
]


class _Attributes:
    """Typed views shared by both levels; subclasses are frozen dataclasses with ``attributes``."""

    __slots__ = ()
    attributes: tuple[Attribute, ...]
    _views: dict[str, tuple[object, ...]]  # typed views once computed (the subclasses' note)

    def get(self, name: str) -> str | None:
        """The value of the first ``a=<name>`` ("" for a property attribute), or None when absent."""
        for attr in self.attributes:
            if attr.name == name:
                return "" if attr.value is None else attr.value
        return None

    def values(self, name: str) -> tuple[str, ...]:
        return tuple("" if a.value is None else a.value for a in self.attributes if a.name == name)

    def has(self, name: str) -> bool:
        return any(a.name == name for a in self.attributes)

    @property
    def direction(self) -> Direction | None:
        """The direction attribute given at this level (the last one wins), None when absent."""
        found = [a.name for a in self.attributes if a.name in DIRECTION_NAMES]
        return Direction(found[-1]) if found else None

    @property
    def ice(self) -> IceParameters | None:
        """ICE credentials given at this level, None unless both ufrag and pwd are present."""
        found = self._views.get("ice")
        if found is None:
            found = self._views["ice"] = (self._ice(),)
        return found[0]  # type: ignore[return-value]

    def _ice(self) -> IceParameters | None:
        ufrag, pwd = self.get("ice-ufrag"), self.get("ice-pwd")
        if ufrag is None or pwd is None:
            return None
        options = tuple(o for v in self.values("ice-options") for o in v.split())
        return IceParameters(ufrag.strip(), pwd.strip(), options, self.has("ice-lite"))

    @property
    def fingerprints(self) -> tuple[Fingerprint, ...]:
        found = self._views.get("fingerprints")
        if found is None:
            found = self._views["fingerprints"] = tuple(
                Fingerprint.parse(v) for v in self.values("fingerprint")
            )
        return found  # type: ignore[return-value]

    @property
    def setup(self) -> Setup | None:
        value = self.get("setup")
        return None if value is None else Setup.parse(value)

    @property
    def groups(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """``a=group:BUNDLE 0 1`` -> (("BUNDLE", ("0", "1")),) (RFC 5888 §5)."""
        result = []
        for value in self.values("group"):
            semantics, *mids = value.split()
            result.append((semantics, tuple(mids)))
        return tuple(result)


_MID = re.compile(r"[^\s\x00-\x1f\x7f]+")  # RFC 5888 §4 identification-tag, read liberally


@dataclass(frozen=True, slots=True)
class MediaDescription(_Attributes):
    """One media section: ``m=<media> <port>[/<count>] <proto> <fmt> ...`` and its lines (RFC 8866 §5.14)."""

    media: str
    port: int
    proto: str
    formats: tuple[str, ...] = ()
    port_count: int | None = None
    title: str | None = None
    connection: Connection | None = None
    bandwidths: tuple[Bandwidth, ...] = ()
    key: str | None = None
    attributes: tuple[Attribute, ...] = ()
    # ``codecs``, ``candidates``, ``fingerprints`` and ``ice`` once computed (the value is immutable; an
    # edit makes a new one): a call's setup reads an offer's codecs a dozen times (issue 38: ~0.5 ms of
    # each HTTP offer), its fingerprints and ICE credentials four times (issue 64)
    _views: dict[str, tuple[object, ...]] = dataclasses.field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not TOKEN.match(self.media) or not _PROTO.match(self.proto):
            raise SdpParseError(f"invalid media type or proto: 'm={self.m_line}'")
        if not 0 <= self.port <= 65535 or (self.port_count is not None and not 0 < self.port_count < 65536):
            raise SdpParseError(f"media port must be 0-65535: {self.port!r} in 'm={self.m_line}'")
        for fmt in self.formats:
            if not TOKEN.match(fmt):
                raise SdpParseError(f"invalid media format: {fmt!r} in 'm={self.m_line}'")
            if self.is_rtp and not (fmt.isdigit() and fmt.isascii() and int(fmt) <= 127):
                raise SdpParseError(
                    f"RTP payload type must be 0-127 (RFC 3551 §3): {fmt!r} in 'm={self.m_line}'"
                )
        for text in (self.title, self.key):
            if text is not None and not _NO_BREAK.match(text):
                raise SdpParseError(f"line break inside a media line: {text!r}")

    @property
    def m_line(self) -> str:
        """The text after ``m=``: ``audio 49344 UDP/TLS/RTP/SAVPF 111 0``."""
        port = f"{self.port}/{self.port_count}" if self.port_count is not None else str(self.port)
        return " ".join((self.media, port, self.proto, *self.formats))

    @property
    def is_rtp(self) -> bool:
        return self.proto.upper() in RTP_PROTOS

    @property
    def rejected(self) -> bool:
        """Port zero: the stream is rejected or disabled (RFC 3264 §6, §8.2)."""
        return self.port == 0

    @property
    def payload_types(self) -> tuple[int, ...]:
        return tuple(int(f) for f in self.formats) if self.is_rtp else ()

    @property
    def codecs(self) -> tuple[Codec, ...]:
        """The codecs in the m-line's order (static payload types known without rtpmap, RFC 3551 §6)."""
        found = self._views.get("codecs")
        if found is None:
            found = self._views["codecs"] = (
                build_codecs(self.formats, ((a.name, a.value) for a in self.attributes))
                if self.is_rtp
                else ()
            )
        return found  # type: ignore[return-value]

    @property
    def mid(self) -> str | None:
        """The media section's identification tag: never empty nor spaced (RFC 5888 §4 asks a token; a
        peer's other characters are taken, liberal in what is accepted)."""
        value = self.get("mid")
        if value is None:
            return None
        value = value.strip()
        if not _MID.fullmatch(value):
            raise SdpParseError(f"a=mid must be a tag (RFC 5888 §4), got {value!r} in 'm={self.m_line}'")
        return value

    @property
    def candidates(self) -> tuple[Candidate, ...]:
        found = self._views.get("candidates")
        if found is None:
            found = self._views["candidates"] = tuple(
                Candidate.parse("candidate:" + v) for v in self.values("candidate")
            )
        return found  # type: ignore[return-value]

    @property
    def end_of_candidates(self) -> bool:
        return self.has("end-of-candidates")

    @property
    def rtcp(self) -> Rtcp | None:
        value = self.get("rtcp")
        if value is None:
            return None
        found = _grammar.match("a", "rtcp", "rtcp:" + value)
        if found is None or not found["port"] or int(found["port"]) > 65535:
            raise SdpParseError(f"invalid rtcp line (RFC 3605 §2.1): 'a=rtcp:{value}'")
        return Rtcp(int(found["port"]), found["address"])

    @property
    def rtcp_mux(self) -> bool:
        return self.has("rtcp-mux")

    @property
    def ptime(self) -> float | None:
        """``a=ptime`` (RFC 8866 §6.4), the packet time the sender wants to receive; None when absent or
        unreadable (liberal, RFC 3264 §5.1: a bad ptime costs the preference, not the SDP)."""
        value = self.get("ptime")
        try:
            ptime = float(value) if value is not None else None
        except ValueError:
            return None
        return ptime if ptime is not None and 0 < ptime < 10000 else None

    @property
    def cryptos(self) -> tuple[Crypto, ...]:
        """The ``a=crypto`` lines the gateway can use (RFC 4568; sdp/crypto.py), in the offer's order. Two
        lines with one tag make the description invalid (RFC 4568 §9.1: a tag is unique in its media
        section), whichever of them the gateway could use."""
        lines = [a.value or "" for a in self.attributes if a.name == "crypto"]
        tags = [line.split(maxsplit=1)[0] for line in lines if line.strip()]
        twice = next((tag for index, tag in enumerate(tags) if tag in tags[:index]), None)
        if twice is not None:
            raise SdpParseError(f"a=crypto tag {twice} given twice in 'm={self.m_line}' (RFC 4568 §9.1)")
        found = (Crypto.parse(line) for line in lines)
        return tuple(c for c in found if c is not None)

    @property
    def maxptime(self) -> float | None:
        """``a=maxptime`` (RFC 8866 §6.5): the longest packet the sender accepts; None when absent or
        unreadable (liberal: a bad maxptime costs the limit, not the SDP)."""
        value = self.get("maxptime")
        try:
            maxptime = float(value) if value is not None else None
        except ValueError:
            return None
        return maxptime if maxptime is not None and 0 < maxptime < 10000 else None

    def without(self, *names: str) -> MediaDescription:
        """This section without any attribute of the given names."""
        return dataclasses.replace(self, attributes=tuple(a for a in self.attributes if a.name not in names))

    def with_attributes(self, attributes: Iterable[Attribute]) -> MediaDescription:
        return dataclasses.replace(self, attributes=tuple(attributes))

    def with_direction(self, direction: Direction) -> MediaDescription:
        """Replace the direction attribute in place (or append one)."""
        return dataclasses.replace(self, attributes=_set_direction(self.attributes, direction))


@dataclass(frozen=True, slots=True)
class SessionDescription(_Attributes):
    """A whole description. ``info`` holds i=/u=/e=/p= lines, ``timing`` the t=/r=/z= lines, in order."""

    origin: Origin
    name: str = "-"
    info: tuple[tuple[str, str], ...] = ()
    connection: Connection | None = None
    bandwidths: tuple[Bandwidth, ...] = ()
    timing: tuple[tuple[str, str], ...] = (("t", "0 0"),)
    key: str | None = None
    attributes: tuple[Attribute, ...] = ()
    media: tuple[MediaDescription, ...] = ()
    # its session-level ``fingerprints`` and ``ice`` once computed (as MediaDescription's)
    _views: dict[str, tuple[object, ...]] = dataclasses.field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        for letter, text in (("s", self.name), *self.info, *self.timing, ("k", self.key or "")):
            if letter not in "siuepktrz" or not _NO_BREAK.match(text):
                raise SdpParseError(f"invalid session line: {letter}={text!r}")

    def connection_for(self, index: int) -> Connection | None:
        """The connection that applies to m-line ``index`` (media level, else session level)."""
        return self.media[index].connection or self.connection

    def direction_for(self, index: int) -> Direction:
        """The declared direction of m-line ``index`` (media, else session, else sendrecv: RFC 3264 §5.1)."""
        return self.media[index].direction or self.direction or Direction.SENDRECV

    def effective_direction(self, index: int) -> Direction:
        """The direction meant, reading ``c=0.0.0.0`` as RFC 2543 hold (RFC 3264 §8.4).

        Not with ICE: there 0.0.0.0 (with port 9) only says no candidate is known yet (RFC 8838 §5.1,
        RFC 8829 §5.2.1), as in every trickling browser's offer.
        """
        direction = self.direction_for(index)
        connection = self.connection_for(index)
        if connection is None or not connection.is_hold or self.ice_for(index) is not None:
            return direction
        return direction.on_hold()

    def ice_for(self, index: int) -> IceParameters | None:
        """ICE credentials of m-line ``index`` (media level overrides session level, RFC 8839 §5.4)."""
        return self.media[index].ice or self.ice

    def dtls_for(self, index: int) -> DtlsParameters | None:
        """Fingerprints and setup role of m-line ``index`` (media level overrides session level, RFC 8122 §5)."""
        media = self.media[index]
        fingerprints = media.fingerprints or self.fingerprints
        if not fingerprints:
            return None
        return DtlsParameters(fingerprints, media.setup or self.setup or Setup.ACTPASS)

    def bundle_mids(self) -> tuple[str, ...]:
        """The mids of the first BUNDLE group (RFC 8843 §7), empty without one."""
        return next((mids for semantics, mids in self.groups if semantics.upper() == "BUNDLE"), ())

    def without(self, *names: str) -> SessionDescription:
        return dataclasses.replace(self, attributes=tuple(a for a in self.attributes if a.name not in names))

    def with_attributes(self, attributes: Iterable[Attribute]) -> SessionDescription:
        return dataclasses.replace(self, attributes=tuple(attributes))

    def with_media(self, media: Iterable[MediaDescription]) -> SessionDescription:
        return dataclasses.replace(self, media=tuple(media))


def _set_direction(attributes: tuple[Attribute, ...], direction: Direction) -> tuple[Attribute, ...]:
    result: list[Attribute] = []
    placed = False
    for attr in attributes:
        if attr.name in DIRECTION_NAMES:
            if not placed:
                result.append(Attribute(direction.value))
                placed = True
            continue
        result.append(attr)
    if not placed:
        result.append(Attribute(direction.value))
    return tuple(result)
