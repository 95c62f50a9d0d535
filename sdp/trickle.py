"""Trickle ICE: SDP fragments (RFC 8840 §9) and the browser's JSON candidates (RFC 8829 §5.2.1, W3C).

An ``application/trickle-ice-sdpfrag`` body (RFC 8840 §9.1, grammar in RFC 8840 §9.2) carries the
ICE credentials and, per media stream, an m= line (port 9 as in the RFC examples: only its position and
a=mid matter) followed by new a=candidate lines and optionally a=end-of-candidates (RFC 8840 §8):

    a=ice-options:trickle
    a=ice-ufrag:8hhY
    a=ice-pwd:asd88fgpdd777uzjYhagZg
    m=audio 9 RTP/AVP 0
    a=mid:1
    a=candidate:1 1 UDP 2130706431 192.0.2.1 5000 typ host
    a=end-of-candidates

Browsers send each candidate as JSON: ``{"candidate": "candidate:...", "sdpMid": "0",
"sdpMLineIndex": 0, "usernameFragment": "8hhY"}``; an empty ``candidate`` means end of candidates.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sdp.candidate import Candidate
from sdp.errors import SdpParseError
from sdp.model import TOKEN, Attribute
from sdp.transport import IceParameters

MEDIA_TYPE = "application/trickle-ice-sdpfrag"
_FRAG_M_LINE = re.compile(r"(\S+) (\d{1,5}) (\S+)((?: \S+)*)\Z", re.ASCII)
_MAX_LENGTH = 1 << 20


@dataclass(frozen=True, slots=True)
class TrickleMedia:
    """One m= section of a fragment: the stream (by mid) that the candidates belong to."""

    mid: str
    candidates: tuple[Candidate, ...] = ()
    end_of_candidates: bool = False
    m_line: str = "audio 9 RTP/AVP 0"

    def __post_init__(self) -> None:
        if not TOKEN.match(self.mid):
            raise SdpParseError(f"invalid mid (RFC 5888 §4): {self.mid!r}")
        if not _FRAG_M_LINE.match(self.m_line):
            raise SdpParseError(f"invalid m= line in sdpfrag: 'm={self.m_line}'")


@dataclass(frozen=True, slots=True)
class TrickleFragment:
    """An ``application/trickle-ice-sdpfrag`` body: credentials, and candidates per media stream.

    ``end_of_candidates`` is the session-level a=end-of-candidates (gathering done for every stream).
    """

    ice: IceParameters | None
    media: tuple[TrickleMedia, ...] = ()
    end_of_candidates: bool = False

    def candidates(self) -> list[tuple[str, Candidate]]:
        """Every candidate with the mid of its stream, in order."""
        return [(m.mid, c) for m in self.media for c in m.candidates]


def encode_sdpfrag(fragment: TrickleFragment) -> str:
    """Write a fragment body with CRLF line endings (RFC 8840 §9.2)."""
    lines: list[str] = []
    if fragment.ice is not None:
        if fragment.ice.options:
            lines.append(f"a=ice-options:{' '.join(fragment.ice.options)}")
        lines += [f"a=ice-ufrag:{fragment.ice.ufrag}", f"a=ice-pwd:{fragment.ice.pwd}"]
    if fragment.end_of_candidates:
        lines.append("a=end-of-candidates")
    for media in fragment.media:
        lines += [f"m={media.m_line}", f"a=mid:{media.mid}"]
        lines += [f"a={c.to_sdp()}" for c in media.candidates]
        if media.end_of_candidates:
            lines.append("a=end-of-candidates")
    return "\r\n".join(lines) + "\r\n" if lines else ""


def decode_sdpfrag(body: str | bytes) -> TrickleFragment:
    """Read a fragment body; unknown attributes are ignored (RFC 8840 §9.2), malformed lines raise 400."""
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SdpParseError(f"sdpfrag body is not UTF-8: {exc}") from None
    if not isinstance(body, str) or len(body) > _MAX_LENGTH:
        raise SdpParseError("sdpfrag body must be text of at most 1 MiB")
    session: list[Attribute] = []
    sections: list[tuple[str, list[Attribute]]] = []
    for raw in body.split("\n"):
        line = raw.rstrip("\r").rstrip(" \t")
        if not line:
            continue
        if line.startswith("m="):
            if not _FRAG_M_LINE.match(line[2:]):
                raise SdpParseError(f"invalid m= line in sdpfrag: {line[:200]!r}")
            sections.append((line[2:], []))
        elif line.startswith("a="):
            (sections[-1][1] if sections else session).append(Attribute.parse(line[2:]))
        else:
            raise SdpParseError(f"an sdpfrag holds only a= and m= lines (RFC 8840 §9.2): {line[:200]!r}")
    media = tuple(_media(m_line, attributes) for m_line, attributes in sections)
    # RFC 8840 §9.2 allows the credentials at session or media level (bundled: the same in every section)
    ice = _ice(session) or next((i for _, a in sections if (i := _ice(a)) is not None), None)
    return TrickleFragment(ice, media, any(a.name == "end-of-candidates" for a in session))


def _ice(attributes: Sequence[Attribute]) -> IceParameters | None:
    values = {a.name: (a.value or "").strip() for a in reversed(attributes)}
    if "ice-ufrag" not in values and "ice-pwd" not in values:
        return None
    if "ice-ufrag" not in values or "ice-pwd" not in values:
        raise SdpParseError(
            "an sdpfrag with ICE credentials needs both a=ice-ufrag and a=ice-pwd (RFC 8840 §9.2)"
        )
    options = tuple(values.get("ice-options", "").split())
    return IceParameters(values["ice-ufrag"], values["ice-pwd"], options)


def _media(m_line: str, attributes: Sequence[Attribute]) -> TrickleMedia:
    mid = next(((a.value or "").strip() for a in attributes if a.name == "mid"), None)
    if not mid:
        raise SdpParseError(f"sdpfrag m= section without a=mid (RFC 8840 §9.2): 'm={m_line}'")
    candidates = tuple(Candidate.parse(f"candidate:{a.value}") for a in attributes if a.name == "candidate")
    end = any(a.name == "end-of-candidates" for a in attributes)
    return TrickleMedia(mid, candidates, end, m_line)


@dataclass(frozen=True, slots=True)
class IceCandidateInit:
    """A browser's ``RTCIceCandidateInit``; ``candidate`` None is the end-of-candidates marker (empty string)."""

    candidate: Candidate | None
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None
    username_fragment: str | None = None

    def __post_init__(self) -> None:
        if self.sdp_mid is None and self.sdp_mline_index is None:
            raise SdpParseError("a browser candidate needs sdpMid or sdpMLineIndex")
        if self.sdp_mline_index is not None and not 0 <= self.sdp_mline_index < 65536:
            raise SdpParseError(f"invalid sdpMLineIndex: {self.sdp_mline_index!r}")

    def to_json(self) -> dict[str, object]:
        """The JSON object a browser's ``addIceCandidate`` takes (``candidate`` without ``a=``)."""
        result: dict[str, object] = {
            "candidate": self.candidate.to_sdp() if self.candidate is not None else ""
        }
        if self.sdp_mid is not None:
            result["sdpMid"] = self.sdp_mid
        if self.sdp_mline_index is not None:
            result["sdpMLineIndex"] = self.sdp_mline_index
        if self.username_fragment is not None:
            result["usernameFragment"] = self.username_fragment
        return result

    @classmethod
    def from_json(cls, data: object) -> IceCandidateInit:
        """Read ``{"candidate": ..., "sdpMid": ..., "sdpMLineIndex": ..., "usernameFragment": ...}``."""
        if not isinstance(data, Mapping):
            raise SdpParseError(f"a browser candidate is a JSON object, not {type(data).__name__}")
        text, mid, index, ufrag = (
            data.get(k) for k in ("candidate", "sdpMid", "sdpMLineIndex", "usernameFragment")
        )
        if not isinstance(text, str):
            raise SdpParseError(f"candidate must be a string: {text!r}")
        if mid is not None and not isinstance(mid, str):
            raise SdpParseError(f"sdpMid must be a string: {mid!r}")
        if index is not None and (not isinstance(index, int) or isinstance(index, bool)):
            raise SdpParseError(f"sdpMLineIndex must be an integer: {index!r}")
        if ufrag is not None and not isinstance(ufrag, str):
            raise SdpParseError(f"usernameFragment must be a string: {ufrag!r}")
        candidate = Candidate.parse(text) if text.strip() else None
        return cls(candidate, mid, index, ufrag or None)


def candidate_to_json(
    candidate: Candidate | None, *, mid: str | None, index: int | None = None, ufrag: str | None = None
) -> dict[str, object]:
    """One candidate (None: end of candidates) as the browser's JSON object."""
    return IceCandidateInit(candidate, mid, index, ufrag).to_json()


def candidate_from_json(data: object) -> IceCandidateInit:
    return IceCandidateInit.from_json(data)


def fragment_to_json(fragment: TrickleFragment, mids: Sequence[str] | None = None) -> list[dict[str, object]]:
    """The fragment's candidates as browser JSON objects; ``mids`` (the m-line order) gives sdpMLineIndex.
    A stream's a=end-of-candidates becomes an empty candidate for that stream."""
    ufrag = fragment.ice.ufrag if fragment.ice is not None else None
    result: list[dict[str, object]] = []
    for media in fragment.media:
        index = mids.index(media.mid) if mids is not None and media.mid in mids else None
        result += [candidate_to_json(c, mid=media.mid, index=index, ufrag=ufrag) for c in media.candidates]
        if media.end_of_candidates or fragment.end_of_candidates:
            result.append(candidate_to_json(None, mid=media.mid, index=index, ufrag=ufrag))
    return result


def fragment_from_json(
    items: Sequence[object], *, ice: IceParameters | None, mids: Sequence[str] | None = None
) -> TrickleFragment:
    """Browser JSON candidates as one fragment, grouped by stream in first-seen order.

    ``mids`` (the m-line order of the session) resolves candidates that carry only sdpMLineIndex.
    """
    grouped: dict[str, tuple[list[Candidate], list[bool]]] = {}
    for item in items:
        init = IceCandidateInit.from_json(item)
        mid = init.sdp_mid
        if mid is None:
            index = init.sdp_mline_index
            if mids is None or index is None or index >= len(mids):
                raise SdpParseError(f"cannot tell the stream of candidate {item!r} without its mid")
            mid = mids[index]
        candidates, end = grouped.setdefault(mid, ([], [False]))
        if init.candidate is None:
            end[0] = True
        else:
            candidates.append(init.candidate)
    media = tuple(TrickleMedia(mid, tuple(c), e[0]) for mid, (c, e) in grouped.items())
    return TrickleFragment(ice, media)
