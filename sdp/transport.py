"""ICE credentials and DTLS parameters as they appear in SDP.

RFC 8839 §5.4 (a=ice-ufrag, a=ice-pwd), §5.6 (a=ice-options), RFC 8122 §5 (a=fingerprint),
RFC 4145 §4 and RFC 5763 §5 (a=setup).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from sdp import _grammar
from sdp.candidate import Candidate
from sdp.crypto import Crypto
from sdp.errors import SdpParseError
from sdp.lines import Connection

_ICE_CHARS = re.compile(r"[A-Za-z0-9+/]+\Z")  # RFC 8839 §5.4: ice-char = ALPHA / DIGIT / "+" / "/"
_OPTION = re.compile(r"[A-Za-z0-9+/\-_.]+\Z")
_HEX_PAIRS = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2})*\Z")
# RFC 8122 §5 hash function names -> digest length in bytes (to check the fingerprint's length).
DIGEST_SIZES = {"sha-1": 20, "sha-224": 28, "sha-256": 32, "sha-384": 48, "sha-512": 64, "md5": 16, "md2": 16}


@dataclass(frozen=True, slots=True)
class IceParameters:
    """ICE credentials and options of one side (RFC 8839 §5.4: ufrag 4-256, pwd 22-256 ice-chars)."""

    ufrag: str
    pwd: str
    options: tuple[str, ...] = ()
    lite: bool = False

    def __post_init__(self) -> None:
        if not (4 <= len(self.ufrag) <= 256 and _ICE_CHARS.match(self.ufrag)):
            raise SdpParseError(f"ice-ufrag must be 4-256 ice-chars (RFC 8839 §5.4): {self.ufrag!r}")
        if not (22 <= len(self.pwd) <= 256 and _ICE_CHARS.match(self.pwd)):
            raise SdpParseError(f"ice-pwd must be 22-256 ice-chars (RFC 8839 §5.4): {self.pwd!r}")
        for option in self.options:
            if not _OPTION.match(option):
                raise SdpParseError(f"invalid ice-options token: {option!r}")

    @property
    def trickle(self) -> bool:
        """The agent supports trickle ICE (RFC 8840 §5.1: ``a=ice-options:trickle``)."""
        return "trickle" in self.options


class Setup(Enum):
    """The DTLS role a side takes (RFC 4145 §4, RFC 5763 §5: an offer says actpass, an answer active or passive)."""

    ACTIVE = "active"
    PASSIVE = "passive"
    ACTPASS = "actpass"
    HOLDCONN = "holdconn"

    @classmethod
    def parse(cls, text: str) -> Setup:
        try:
            return cls(text.strip().lower())
        except ValueError:
            raise SdpParseError(f"invalid setup attribute (RFC 4145 §4): 'a=setup:{text}'") from None

    def answer(self) -> Setup:
        """The role an answerer takes against this offered role (RFC 5763 §5: active when offered actpass)."""
        return _SETUP_ANSWERS[self]


_SETUP_ANSWERS = {
    Setup.ACTPASS: Setup.ACTIVE,
    Setup.ACTIVE: Setup.PASSIVE,
    Setup.PASSIVE: Setup.ACTIVE,
    Setup.HOLDCONN: Setup.HOLDCONN,
}


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """A certificate fingerprint: hash function name as written (``sha-256``, ``SHA-256``) and hex pairs."""

    algorithm: str
    value: str

    def __post_init__(self) -> None:
        if not _OPTION.match(self.algorithm):
            raise SdpParseError(f"invalid fingerprint hash function: {self.algorithm!r}")
        if not _HEX_PAIRS.match(self.value):
            raise SdpParseError(
                f"fingerprint must be colon-separated hex pairs (RFC 8122 §5): {self.value!r}"
            )
        size = DIGEST_SIZES.get(self.algorithm.lower())
        if size is not None and len(self.value.split(":")) != size:
            raise SdpParseError(f"{self.algorithm} fingerprint must be {size} bytes: {self.value!r}")

    @classmethod
    def parse(cls, text: str) -> Fingerprint:
        found = _grammar.match("a", "fingerprint", "fingerprint:" + text)
        if found is None or not found["type"] or not found["hash"]:
            raise SdpParseError(f"invalid fingerprint line: 'a=fingerprint:{text}'")
        return cls(found["type"], found["hash"])

    def to_sdp(self) -> str:
        """The attribute value, written by sdp-transform's fingerprint rule."""
        line = _grammar.format_line("a", "fingerprint", {"type": self.algorithm, "hash": self.value})
        return line.removeprefix("fingerprint:")

    def __str__(self) -> str:
        return self.to_sdp()


@dataclass(frozen=True, slots=True)
class DtlsParameters:
    """The certificate fingerprints (one per hash function) and DTLS role of one side."""

    fingerprints: tuple[Fingerprint, ...]
    setup: Setup = Setup.ACTPASS

    def __post_init__(self) -> None:
        if not self.fingerprints:
            raise SdpParseError("DTLS parameters need at least one fingerprint (RFC 8122 §5)")
        if not all(isinstance(f, Fingerprint) for f in self.fingerprints):
            raise SdpParseError(f"fingerprints must be Fingerprint values: {self.fingerprints!r}")


@dataclass(frozen=True, slots=True)
class PlainTransport:
    """A side's plain RTP address and port (RTCP on port+1, written as a=rtcp when ``rtcp``: RFC 3605)."""

    address: str
    port: int
    rtcp: bool = True
    crypto: Crypto | None = None  # our SDES key (RFC 4568): answer a=crypto offers with SRTP
    # DTLS-SRTP (RFC 5763): our fingerprint and role (actpass: chosen against the offer's a=setup)
    dtls: DtlsParameters | None = None
    # ICE-lite toward a peer that offered ICE (RFC 8445 §2.5): our credentials and host candidates
    ice: IceParameters | None = None
    candidates: tuple[Candidate, ...] = ()

    def __post_init__(self) -> None:
        if not 0 < self.port < 65535:
            raise SdpParseError(f"RTP port must be 1-65534: {self.port!r}")
        Connection.for_address(self.address)
        object.__setattr__(self, "candidates", tuple(self.candidates))
        if self.crypto is not None and self.dtls is not None:
            raise SdpParseError("a plain transport has SDES or DTLS-SRTP keys, not both")
        if self.ice is not None and self.dtls is None:
            raise SdpParseError("ICE on the plain transport is answered with DTLS-SRTP only")


@dataclass(frozen=True, slots=True)
class WebRtcTransport:
    """A side's ICE credentials, DTLS parameters and candidates, for answering a WebRTC offer."""

    ice: IceParameters
    dtls: DtlsParameters
    candidates: tuple[Candidate, ...] = ()
    end_of_candidates: bool = False
    trickle: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "candidates", tuple(self.candidates))
        if not all(isinstance(c, Candidate) for c in self.candidates):
            raise SdpParseError(f"candidates must be Candidate values: {self.candidates!r}")
