"""Who is calling the API dialects (HTTP offer/answer, JSON-RPC, WHIP): credentials -> `ApiPrincipal`.

Accepted, on every request (docs/signaling.md "Authentication"):
  Authorization: Bearer <API key>         users[].api_keys[].key (gateway.yaml)
  X-API-Key: <API key>                    the same key in a header of its own
  Authorization: Bearer <session token>   the `token` of a WebSocket `registered` reply
  Authorization: Basic base64(id:secret)  the user's web login (RFC 7617)
Without valid credentials: `Unauthorized` (HTTP 401 with `WWW-Authenticate` for both schemes, RFC 6750
§3, RFC 7617 §2).

API keys are looked up by their SHA-256 digest, so a lookup compares digests, never the keys themselves;
the principal carries the destination to call when an offer names none (the key's `default_dial`, else
the user's).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from gateway.config import Config
from gateway.config.users import api_key_id
from gateway.identity import LoginBusy, WebUser
from gateway.identity.lookup import IdentityMap
from gateway.signaling.errors import RateLimited, Unauthorized
from gateway.signaling.tokens import SessionTokens

WWW_AUTHENTICATE: Final = (
    'Bearer realm="sip-webrtc-gateway", Basic realm="sip-webrtc-gateway", charset="UTF-8"'
)
MAX_CREDENTIAL_CHARS: Final = 4096


@dataclass(frozen=True, slots=True)
class ApiPrincipal:
    user: WebUser
    default_dial: str | None = None  # called when an offer names no destination
    via: str = "basic"  # api_key, token or basic (for logs)
    key_name: str | None = None  # the API key's name, when one was used
    # the key's id (gateway.config.users.api_key_id): its own caps count the calls and event streams of it
    key_id: str | None = None


@dataclass(frozen=True, slots=True)
class _KeyEntry:
    user_id: str
    name: str
    default_dial: str | None
    key_id: str


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


class ApiCredentials:
    """The credential checks of the API dialects (see the module note)."""

    def __init__(
        self,
        identity: IdentityMap,
        tokens: SessionTokens,
        keys: Mapping[bytes, _KeyEntry] | None = None,
        user_defaults: Mapping[str, str] | None = None,
    ) -> None:
        self.identity = identity
        self.tokens = tokens
        self._keys = dict(keys or {})
        self._defaults = dict(user_defaults or {})

    @classmethod
    def from_config(cls, config: Config, identity: IdentityMap, tokens: SessionTokens) -> ApiCredentials:
        keys: dict[bytes, _KeyEntry] = {}
        for user in config.users:
            for index, item in enumerate(user.api_keys):
                key_id = api_key_id(user.id, index)
                keys[_digest(item.key.reveal())] = _KeyEntry(
                    user.id, item.name or key_id, item.default_dial, key_id
                )
        defaults = {u.id: u.default_dial for u in config.users if u.default_dial is not None}
        return cls(identity, tokens, keys, defaults)

    def default_dial(self, user_id: str) -> str | None:
        return self._defaults.get(user_id)

    async def authenticate(
        self, authorization: str | None, api_key: str | None = None, client: str = ""
    ) -> ApiPrincipal:
        """The principal named by an `Authorization` header value or an `X-API-Key` value."""
        if api_key is not None:
            return await self._by_key(api_key.strip())
        if not authorization:
            raise Unauthorized(
                "credentials required: Authorization: Bearer <API key or session token> or Basic"
            )
        if len(authorization) > MAX_CREDENTIAL_CHARS:
            raise Unauthorized("the credentials are too long")
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer":
            if _digest(value) in self._keys:
                return await self._by_key(value)
            claims = await self.tokens.check(value)  # revoked tokens too
            return await self._principal(claims.user_id, "token")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value, validate=True).decode("utf-8")
            except ValueError:  # not base64 (binascii.Error), not ASCII (a header's raw bytes), not UTF-8
                raise Unauthorized("malformed Basic credentials") from None
            user_id, colon, secret = decoded.partition(":")
            try:
                found = await self.identity.verify_web_login(user_id, secret, client) if colon else None
            except LoginBusy as exc:
                raise RateLimited(str(exc)) from None
            if found is None:
                raise Unauthorized("wrong user id or secret")
            return ApiPrincipal(found, self._defaults.get(found.id), "basic")
        raise Unauthorized(f"unsupported authorization scheme {scheme[:20]!r}: use Bearer or Basic")

    async def asserted(self, user_id: str, key_id: str | None = None) -> ApiPrincipal:
        """The principal of a user another cluster instance authenticated (its signed assertion was
        checked by gateway/signaling/cluster_http.py), as the API key of that id when one is named."""
        principal = await self._principal(user_id, "cluster")
        entry = next((e for e in self._keys.values() if e.key_id == key_id and e.user_id == user_id), None)
        return principal if entry is None else _as_key(principal, entry)

    async def _by_key(self, key: str) -> ApiPrincipal:
        entry = self._keys.get(_digest(key)) if len(key) <= MAX_CREDENTIAL_CHARS else None
        if entry is None:
            raise Unauthorized("unknown API key")
        return _as_key(await self._principal(entry.user_id, "api_key"), entry)

    async def _principal(self, user_id: str, via: str) -> ApiPrincipal:
        user = await self.identity.store.get(user_id)
        if user is None:
            raise Unauthorized("the user of these credentials no longer exists")
        return ApiPrincipal(user, self._defaults.get(user.id), via)


def _as_key(principal: ApiPrincipal, entry: _KeyEntry) -> ApiPrincipal:
    """The user's principal as one of her API keys: its default destination, its caps' id."""
    dial = entry.default_dial if entry.default_dial is not None else principal.default_dial
    return ApiPrincipal(principal.user, dial, f"api_key {entry.name}", entry.name, entry.key_id)
