"""SDES key exchange for SRTP (RFC 4568): ``a=crypto`` lines. Pure.

    offered = section.cryptos[0]                 # the first line of a suite we support
    ours = Crypto.new(offered.tag, offered.suite) # our answer: same tag and suite, our own key
    Attribute("crypto", ours.to_sdp())

Supported suites: AES_CM_128_HMAC_SHA1_80 and AES_CM_128_HMAC_SHA1_32 (RFC 4568 §6.2), one inline
key of 30 bytes (the 16-byte master key then the 14-byte salt). A line with another suite, several
keys, an MKI or bad base64 is not usable: it is skipped, never a reason to refuse the description.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass
from typing import Final

SUITES: Final = ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32")
KEY_SALT_BYTES: Final = 30
_LINE: Final = re.compile(r"(\d{1,9})\s+([A-Za-z0-9_]+)\s+inline:([A-Za-z0-9+/=]+)(\|[^\s]*)?(?:\s+.*)?")


@dataclass(frozen=True, slots=True)
class Crypto:
    """One usable ``a=crypto`` line: tag, suite, master key and salt."""

    tag: int
    suite: str
    key: bytes  # master key || master salt, KEY_SALT_BYTES long

    def __post_init__(self) -> None:
        if self.suite not in SUITES or len(self.key) != KEY_SALT_BYTES or not 0 <= self.tag <= 999999999:
            raise ValueError(f"not a usable crypto line: tag {self.tag}, suite {self.suite}")

    def __repr__(self) -> str:  # the key is a secret: never in a log line
        return f"Crypto(tag={self.tag}, suite={self.suite})"

    @classmethod
    def parse(cls, value: str) -> Crypto | None:
        """The line's tag, suite and key, or None when the gateway cannot use it (see the module note)."""
        found = _LINE.fullmatch(value.strip())
        if found is None or found.group(2) not in SUITES:
            return None
        lifetime_or_mki = found.group(4) or ""
        if lifetime_or_mki.count("|") > 1 or ":" in lifetime_or_mki:  # an MKI: not supported
            return None
        try:
            key = base64.b64decode(found.group(3), validate=True)
        except (binascii.Error, ValueError):
            return None
        if len(key) != KEY_SALT_BYTES:
            return None
        return cls(int(found.group(1)), found.group(2), key)

    @classmethod
    def new(cls, tag: int = 1, suite: str = SUITES[0]) -> Crypto:
        """A fresh random key for ``suite`` (RFC 4568 §6.1: a new key per session)."""
        return cls(tag, suite, secrets.token_bytes(KEY_SALT_BYTES))

    def to_sdp(self) -> str:
        return f"{self.tag} {self.suite} inline:{base64.b64encode(self.key).decode()}"
