"""Session tokens: what a logged-in browser (or an HTTP API client) presents instead of its secret.

A token is `<payload>.<mac>`, both base64url without padding: the payload is the JSON object
`{"u": user id, "e": expiry (Unix seconds), "n": random nonce, "f": family}`, the MAC is HMAC-SHA256
(RFC 2104) of the payload text under the session key (`web_auth.session_secret`, or the key kept in the
state directory: gateway.state_dir). Verification compares MACs with `hmac.compare_digest` (constant
time) before reading the payload.

The family is the login the token descends from: a password login starts one, a login with a token
keeps its family. `check()` also asks the revocation store (gateway.signaling.revocation), and
`revoke()` (a logout) refuses the whole family from then on, on every gateway sharing the store.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from gateway.signaling.errors import Unauthorized
from gateway.signaling.revocation import InMemoryRevocations, RevocationStore

MAX_TOKEN_CHARS: Final = 1024


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: str
    expires_at: float
    family: str = ""


@dataclass(frozen=True, slots=True)
class SessionTokens:
    """Issues and verifies session tokens; `clock` gives Unix time (injected so tests can move it)."""

    key: bytes = field(repr=False)
    ttl: int
    clock: Callable[[], float] = time.time
    revocations: RevocationStore = field(default_factory=InMemoryRevocations, compare=False)

    def __post_init__(self) -> None:
        if len(self.key) < 16:
            raise ValueError("the session key must be at least 16 bytes")
        if self.ttl <= 0:
            raise ValueError(f"token ttl must be positive, got {self.ttl!r}")

    @classmethod
    def with_random_key(cls, ttl: int, clock: Callable[[], float] = time.time) -> SessionTokens:
        return cls(secrets.token_bytes(32), ttl, clock, InMemoryRevocations(clock))

    def _mac(self, payload: str) -> str:
        return _b64encode(hmac.new(self.key, payload.encode("ascii"), hashlib.sha256).digest())

    def issue(self, user_id: str, family: str | None = None) -> str:
        """A new token for `user_id`, of `family` (a login with a token) or of a new one."""
        claims = {
            "u": user_id,
            "e": int(self.clock()) + self.ttl,
            "n": secrets.token_urlsafe(8),
            "f": family or secrets.token_urlsafe(12),
        }
        payload = _b64encode(json.dumps(claims, separators=(",", ":")).encode())
        return f"{payload}.{self._mac(payload)}"

    def verify(self, token: str) -> TokenClaims:
        """The claims of a valid, unexpired token; `Unauthorized` otherwise (never another error)."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
            raise Unauthorized("invalid session token", field="token")
        payload, mac = token.split(".")
        try:
            payload.encode("ascii")
        except UnicodeEncodeError:
            raise Unauthorized("invalid session token", field="token") from None
        if not hmac.compare_digest(self._mac(payload).encode(), mac.encode("utf-8", "replace")):
            raise Unauthorized("invalid session token", field="token")
        try:
            claims = json.loads(_b64decode(payload))
            user_id, expires_at = claims["u"], claims["e"]
            family = claims.get("f", claims.get("n", ""))
        except (ValueError, binascii.Error, KeyError, TypeError, AttributeError):
            raise Unauthorized("invalid session token", field="token") from None
        if not isinstance(user_id, str) or not isinstance(expires_at, int) or not isinstance(family, str):
            raise Unauthorized("invalid session token", field="token")
        if expires_at <= self.clock():
            raise Unauthorized("session token expired: log in again", field="token")
        return TokenClaims(user_id, float(expires_at), family)

    async def check(self, token: str) -> TokenClaims:
        """`verify`, and refuse a token whose family was revoked (a logout)."""
        claims = self.verify(token)
        if claims.family and await self.revocations.is_revoked(claims.family):
            raise Unauthorized("session ended by a logout: log in again", field="token")
        return claims

    async def revoke(self, family: str) -> None:
        """Refuse every token of `family` from now on (until the newest can have expired)."""
        if family:
            await self.revocations.revoke(family, self.clock() + self.ttl)
