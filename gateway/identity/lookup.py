"""`IdentityMap`: the questions the rest of the gateway asks about users, both ways.

  web user -> SIP:  `sip_identity(user_id)` (AOR and PBX credentials), `may_call(user, destination)`
  SIP -> web user:  `resolve_inbound(request_uri, to)` -> NoSuchUser (404) | NotOnline (480) | Found
  browser login:    `verify_web_login(user_id, secret)` -> WebUser | None, in constant time

Outbound policy (`may_call`) denies by default: a user with no `allow_outbound` entries may call
nobody. An entry is a dial pattern (matched against a number, or against the user part of a SIP
URI whose host is the PBX domain or the user's own domain) or a SIP URI allowed exactly.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from typing import TYPE_CHECKING

from gateway.identity.errors import IdentityError
from gateway.identity.model import (
    Found,
    InboundResult,
    NoSuchUser,
    NotOnline,
    SipIdentity,
    WebAuthMode,
    WebUser,
)
from gateway.identity.passwords import PasswordHash, hash_secret
from gateway.identity.patterns import DialPattern
from gateway.identity.presence import Presence
from gateway.identity.store import IdentityStore, InMemoryIdentityStore
from gateway.identity.uri import SipAddress

if TYPE_CHECKING:
    from gateway.config.schema import Config

logger = logging.getLogger(__name__)


def may_call(user: WebUser, destination: str, pbx_domain: str | None = None) -> bool:
    """Whether `user` may call `destination` (a number such as `0301234567` or a SIP URI)."""
    destination = destination.strip()
    if not destination:
        return False
    if destination.lower().startswith(("sip:", "sips:")) or "@" in destination:
        text = destination if ":" in destination.split("@")[0] else f"sip:{destination}"
        try:
            address = SipAddress.parse(text)
        except IdentityError:
            return False
        for rule in user.allow_outbound:
            if isinstance(rule, SipAddress) and (rule.user, rule.host, rule.port) == (
                address.user,
                address.host,
                address.port,
            ):
                return True
        if address.host not in {pbx_domain, user.aor.host} or address.user is None:
            return False
        destination = address.user
    return any(isinstance(rule, DialPattern) and rule.matches(destination) for rule in user.allow_outbound)


class IdentityMap:
    def __init__(
        self,
        store: IdentityStore,
        presence: Presence,
        pbx_domain: str | None = None,
        login_mode: WebAuthMode = WebAuthMode.SECRET,
    ) -> None:
        self.store = store
        self.presence = presence
        self.pbx_domain = pbx_domain
        self.login_mode = login_mode
        self._dummy_hash: PasswordHash | None = None  # verified against for unknown users (timing)

    async def sip_identity(self, user_id: str) -> SipIdentity | None:
        user = await self.store.get(user_id)
        if user is None:
            return None
        return SipIdentity(user.aor, user.display_name, user.credentials)

    def may_call(self, user: WebUser, destination: str) -> bool:
        allowed = may_call(user, destination, self.pbx_domain)
        if not allowed:
            logger.info("user %s may not call %r", user.id, destination)
        return allowed

    async def resolve_inbound(self, request_uri: str, to: str | None = None) -> InboundResult:
        """The web users an inbound INVITE addresses: by Request-URI, else by the To URI."""
        users: tuple[WebUser, ...] = ()
        for candidate in (request_uri, to):
            if candidate is None:
                continue
            try:
                users = await self.store.match_inbound(SipAddress.parse(candidate))
            except IdentityError as exc:
                logger.info("inbound target %r not understood: %s", candidate, exc)
                continue
            if users:
                break
        if not users:
            return NoSuchUser(request_uri)
        sessions: dict[str, tuple[str, ...]] = {}
        for user in users:
            open_sessions = await self.presence.sessions_of(user.id)
            if open_sessions:
                sessions[user.id] = open_sessions
        if not sessions:
            return NotOnline(request_uri, users)
        return Found(request_uri, tuple(u for u in users if u.id in sessions), sessions)

    async def verify_web_login(self, user_id: str, secret: str) -> WebUser | None:
        """The user if `secret` is their login secret (or token, in token mode), else None.

        Unknown users cost the same work as known ones, so timing does not reveal which ids exist.
        """
        user = await self.store.get(user_id)
        if self.login_mode is WebAuthMode.TOKEN:
            token = user.web_token.reveal() if user is not None and user.web_token is not None else None
            expected = token if token is not None else secrets.token_urlsafe(32)
            ok = hmac.compare_digest(expected.encode(), secret.encode()) and token is not None
        else:
            stored = user.web_secret_hash if user is not None else None
            if stored is None:
                if self._dummy_hash is None:
                    self._dummy_hash = hash_secret(secrets.token_urlsafe(16))
                self._dummy_hash.verify(secret)
                ok = False
            else:
                ok = stored.verify(secret)
        if not ok:
            logger.info("web login failed for user id %r", user_id)
            return None
        return user


def identity_map_from_config(config: Config, presence: Presence) -> IdentityMap:
    """The default wiring: an in-memory store of `config.users`."""
    return IdentityMap(
        InMemoryIdentityStore.from_config(config),
        presence,
        pbx_domain=config.pbx.effective_domain,
        login_mode=config.web_auth.mode,
    )
