"""Parse and write whole session descriptions (RFC 8866 §5), keeping every attribute in order.

Each line is ``<type>=<value>``; lines end with CRLF, a bare LF is accepted (RFC 8866 §5). The
structured lines (o=, c=) go through sdp-transform's grammar (see ``sdp._grammar``); attributes are
kept as ordered raw ``Attribute`` values and checked, where the gateway interprets them, by the typed
views of the model, so that a description that parses can also be translated without surprises.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from sdp.errors import SdpError, SdpParseError
from sdp.model import Attribute, Bandwidth, Connection, MediaDescription, Origin, SessionDescription

_LINE = re.compile(r"([a-z])=(.*)\Z", re.DOTALL)
_M_LINE = re.compile(r"(\S+) (\d{1,5})(?:/(\d{1,5}))? (\S+)((?: \S+)*)\Z", re.ASCII)
_SESSION_INFO = "iuep"  # RFC 8866 §5: i= u= e= p= between s= and c=
_TIMING = "trz"
_MAX_LENGTH = 1 << 20  # a description larger than 1 MiB is not a SIP body we want to hold
_CACHED_LENGTH = 16 << 10  # descriptions up to 16 KiB are remembered (the last 128, by their text)


def parse(text: str | bytes) -> SessionDescription:
    """Parse a session description; raises ``SdpParseError`` (SIP 400) quoting the offending line."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SdpParseError(f"session description is not UTF-8: {exc}") from None
    if not isinstance(text, str):
        raise SdpParseError(f"session description must be text, not {type(text).__name__}")
    if len(text) > _MAX_LENGTH:
        raise SdpParseError(f"session description too long: {len(text)} characters")
    if len(text) <= _CACHED_LENGTH:
        return _parse_cached(text)
    return _parse(text)


@functools.lru_cache(maxsize=128)
def _parse_cached(text: str) -> SessionDescription:
    """A call's setup reads the same text several times (the API checks the browser's offer, the bridge
    translates it; aiortc's answer is read back): descriptions are immutable, so each is parsed once."""
    return _parse(text)


def _parse(text: str) -> SessionDescription:
    try:
        description = _Builder().run(text)
        validate(description)
    except SdpError:
        raise
    except (
        ValueError,
        KeyError,
        IndexError,
        TypeError,
        OverflowError,
    ) as exc:  # pragma: no cover - defensive
        raise SdpParseError(f"invalid session description: {exc!r}") from None
    return description


def write(description: SessionDescription) -> str:
    """Write a description in RFC 8866 §5 line order with CRLF line endings."""
    lines = ["v=0", f"o={description.origin}", f"s={description.name}"]
    lines += [f"{letter}={value}" for letter, value in description.info]
    if description.connection is not None:
        lines.append(f"c={description.connection}")
    lines += [f"b={b}" for b in description.bandwidths]
    lines += [f"{letter}={value}" for letter, value in description.timing]
    if description.key is not None:
        lines.append(f"k={description.key}")
    lines += [f"a={a}" for a in description.attributes]
    for media in description.media:
        lines.append(f"m={media.m_line}")
        if media.title is not None:
            lines.append(f"i={media.title}")
        if media.connection is not None:
            lines.append(f"c={media.connection}")
        lines += [f"b={b}" for b in media.bandwidths]
        if media.key is not None:
            lines.append(f"k={media.key}")
        lines += [f"a={a}" for a in media.attributes]
    return "\r\n".join(lines) + "\r\n"


def validate(description: SessionDescription) -> None:
    """Compute every typed view the gateway relies on, so malformed lines fail here (SIP 400)."""
    for level in (description, *description.media):
        _ = level.direction, level.ice, level.fingerprints, level.setup, level.groups
    mids: set[str] = set()
    for media in description.media:
        _ = media.codecs, media.candidates, media.rtcp, media.cryptos
        if media.mid is not None:
            if media.mid in mids:  # RFC 5888 §4: unique within the session
                raise SdpParseError(f"a=mid:{media.mid} names two media sections (RFC 5888 §4)")
            mids.add(media.mid)


class _Builder:
    """Walks the lines once: session-level fields until the first m=, then one media section per m=."""

    def __init__(self) -> None:
        self.origin: Origin | None = None
        self.name: str | None = None
        self.info: list[tuple[str, str]] = []
        self.connection: Connection | None = None
        self.bandwidths: list[Bandwidth] = []
        self.timing: list[tuple[str, str]] = []
        self.key: str | None = None
        self.attributes: list[Attribute] = []
        self.media: list[MediaDescription] = []
        self.section: _Section | None = None

    def run(self, text: str) -> SessionDescription:
        lines = [line.rstrip("\r").rstrip(" \t") for line in text.split("\n")]
        lines = [line for line in lines if line]
        if not lines:
            raise SdpParseError("empty session description")
        if lines[0] != "v=0":
            raise SdpParseError(f"a session description starts with 'v=0' (RFC 8866 §5.1): {lines[0][:80]!r}")
        for line in lines[1:]:
            found = _LINE.match(line)
            if found is None:
                # Not a <type>=<value> line at all (Bria 4 writes "mid:1" without its "a="): skipped, as
                # a line one does not understand is (RFC 8866 §5: a parser ignores what it cannot use;
                # an odd a=rtpmap is skipped by the codec view) rather than losing the whole call.
                continue
            try:
                self._line(found.group(1), found.group(2))
            except SdpParseError as exc:
                if line[:200] in exc.message:
                    raise
                raise SdpParseError(f"{exc.message} in line {line[:200]!r}") from None
        self._close_section()
        if self.origin is None:
            raise SdpParseError("missing origin line 'o=' (RFC 8866 §5.2)")
        return SessionDescription(
            origin=self.origin,
            name=self.name if self.name is not None else "-",
            info=tuple(self.info),
            connection=self.connection,
            bandwidths=tuple(self.bandwidths),
            timing=tuple(self.timing) or (("t", "0 0"),),
            key=self.key,
            attributes=tuple(self.attributes),
            media=tuple(self.media),
        )

    def _line(self, letter: str, value: str) -> None:
        if letter == "m":
            self._close_section()
            self.section = _media_fields(value)
        elif self.section is not None:
            self._media_line(self.section, letter, value)
        else:
            self._session_line(letter, value)

    def _session_line(self, letter: str, value: str) -> None:
        if letter == "a":
            self.attributes.append(Attribute.parse(value))
        elif letter == "o" and self.origin is None:
            self.origin = Origin.parse(value)
        elif letter == "s" and self.name is None:
            self.name = value
        elif letter == "c" and self.connection is None:
            self.connection = Connection.parse(value)
        elif letter == "b":
            self.bandwidths.append(Bandwidth.parse(value))
        elif letter in _SESSION_INFO:
            self.info.append((letter, value))
        elif letter in _TIMING:
            if letter == "t" and not re.fullmatch(r"\d+ \d+", value):
                raise SdpParseError(f"invalid timing line (RFC 8866 §5.9): 't={value}'")
            self.timing.append((letter, value))
        elif letter == "k" and self.key is None:
            self.key = value
        else:
            raise SdpParseError(f"unexpected or repeated session-level line: '{letter}={value[:200]}'")

    @staticmethod
    def _media_line(section: _Section, letter: str, value: str) -> None:
        if letter == "a":
            section.attributes.append(Attribute.parse(value))
        elif letter == "c" and section.connection is None:
            section.connection = Connection.parse(value)
        elif letter == "b":
            section.bandwidths.append(Bandwidth.parse(value))
        elif letter == "i" and section.title is None:
            section.title = value
        elif letter == "k" and section.key is None:
            section.key = value
        else:
            raise SdpParseError(f"unexpected or repeated media-level line: '{letter}={value[:200]}'")

    def _close_section(self) -> None:
        if self.section is not None:
            self.media.append(self.section.build())
            self.section = None


@dataclass(slots=True)
class _Section:
    """The lines of the media section being read (mutable while reading, frozen by ``build``)."""

    media: str
    port: int
    count: int | None
    proto: str
    formats: tuple[str, ...]
    title: str | None = None
    connection: Connection | None = None
    bandwidths: list[Bandwidth] = field(default_factory=list)
    key: str | None = None
    attributes: list[Attribute] = field(default_factory=list)

    def build(self) -> MediaDescription:
        return MediaDescription(
            media=self.media,
            port=self.port,
            proto=self.proto,
            formats=self.formats,
            port_count=self.count,
            title=self.title,
            connection=self.connection,
            bandwidths=tuple(self.bandwidths),
            key=self.key,
            attributes=tuple(self.attributes),
        )


def _media_fields(value: str) -> _Section:
    # RFC 8866 §5.14: m=<media> <port>[/<number of ports>] <proto> <fmt> ...  (sdp-transform's m= rule
    # cannot read the "/<number of ports>" form, so this one is matched here)
    found = _M_LINE.match(value)
    if found is None:
        raise SdpParseError(f"invalid media line (RFC 8866 §5.14): 'm={value[:200]}'")
    media, port, count, proto, formats = found.groups()
    return _Section(
        media, int(port), int(count) if count is not None else None, proto, tuple(formats.split())
    )
