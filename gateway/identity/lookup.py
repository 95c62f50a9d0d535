"""`IdentityMap`: the questions the rest of the gateway asks about users, both ways.

  web user -> SIP:  `sip_identity(user_id)` (AOR and PBX credentials), `may_call(user, destination)`
  SIP -> web user:  `resolve_inbound(request_uri, to)` -> NoSuchUser (404) | NotOnline (480) | Found
  browser login:    `verify_web_login(user_id, secret)` -> WebUser | None, in constant time

Outbound policy (`may_call`) is `gateway.identity.policy`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import secrets
from typing import TYPE_CHECKING

from gateway.identity.address import SipAddress
from gateway.identity.errors import IdentityError, LoginBusy, LoginThrottled
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
from gateway.identity.policy import may_call
from gateway.identity.presence import Presence
from gateway.identity.store import IdentityStore, InMemoryIdentityStore
from gateway.identity.throttle import LoginThrottle, SharedThrottle

if TYPE_CHECKING:
    from gateway.config.schema import Config

logger = logging.getLogger(__name__)

# Hashing a login secret costs ~50 ms of CPU (scrypt): it runs in worker threads (hashlib releases the
# GIL), at most HASH_WORKERS at a time, so that a flood of logins neither blocks the event loop (SIP
# timers, RTP forwarding) nor queues without bound: beyond MAX_WAITING_LOGINS waiting, LoginBusy.
HASH_WORKERS = 2
MAX_WAITING_LOGINS = 32
MAX_WAITING_PER_CLIENT = 4  # of those, from one address: a guesser cannot take the queue (fair share)


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
        self._hashing = asyncio.Semaphore(HASH_WORKERS)
        self._waiting = 0
        self._waiting_by_client: dict[str, int] = {}
        self.throttle = LoginThrottle()  # failed logins per address, pair and user id (issue 10)
        self.shared_throttle: SharedThrottle | None = None  # counted in Redis by every instance (cluster)

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

    async def verify_web_login(self, user_id: str, secret: str, client: str = "") -> WebUser | None:
        """The user if `secret` is their login secret (or token, in token mode), else None.

        Unknown users cost the same work as known ones, so timing does not reveal which ids exist.
        `client` is the address the login comes from: one that failed too often is refused without a
        check (LoginThrottled), and at most MAX_WAITING_PER_CLIENT of its checks wait at once
        (LoginBusy), so that a guesser cannot fill the queue real users need.
        """
        wait = await self.throttle_wait(user_id, client)
        if wait > 0:
            seconds = math.ceil(wait)
            raise LoginThrottled(f"too many failed logins: try again in {seconds} s", seconds)
        user = await self._check(user_id, secret, client)
        if user is None:
            await self.throttle_failed(user_id, client)
        else:
            await self.throttle_succeeded(user_id, client)
        return user

    async def throttle_wait(self, user_id: str, client: str) -> float:
        """Seconds before a login for `user_id` from `client` may be tried: this instance's count, or the
        cluster's (which raises its ClusterUnavailable when Redis is unreachable)."""
        shared = self.shared_throttle
        return self.throttle.wait(user_id, client) if shared is None else await shared.wait(user_id, client)

    async def throttle_failed(self, user_id: str, client: str) -> None:
        if self.shared_throttle is None:
            self.throttle.failed(user_id, client)
        else:
            await self.shared_throttle.failed(user_id, client)

    async def throttle_succeeded(self, user_id: str, client: str) -> None:
        if self.shared_throttle is None:
            self.throttle.succeeded(user_id, client)
        else:
            await self.shared_throttle.succeeded(user_id, client)

    async def _check(self, user_id: str, secret: str, client: str) -> WebUser | None:
        user = await self.store.get(user_id)
        if not secret.isascii() and not _encodable(secret):  # a lone surrogate from JSON: never a secret
            logger.info("web login failed for user id %r", user_id)
            return None
        if self.login_mode is WebAuthMode.TOKEN:
            token = user.web_token.reveal() if user is not None and user.web_token is not None else None
            expected = token if token is not None else secrets.token_urlsafe(32)
            ok = hmac.compare_digest(expected.encode(), secret.encode()) and token is not None
        else:
            stored = user.web_secret_hash if user is not None else None
            if stored is None:
                if self._dummy_hash is None:
                    self._dummy_hash = await asyncio.to_thread(hash_secret, secrets.token_urlsafe(16))
                await self._verify_off_loop(self._dummy_hash, secret, client)
                ok = False
            else:
                ok = await self._verify_off_loop(stored, secret, client)
        if not ok:
            logger.info("web login failed for user id %r", user_id)
            return None
        return user

    async def _verify_off_loop(self, stored: PasswordHash, secret: str, client: str = "") -> bool:
        if self._waiting >= MAX_WAITING_LOGINS:
            raise LoginBusy(f"more than {MAX_WAITING_LOGINS} logins are being checked: try again later")
        mine = self._waiting_by_client.get(client, 0)
        if mine >= MAX_WAITING_PER_CLIENT:
            raise LoginBusy("your address has logins being checked already: try again later")
        self._waiting += 1
        self._waiting_by_client[client] = mine + 1
        try:
            async with self._hashing:
                return await asyncio.to_thread(stored.verify, secret)
        finally:
            self._waiting -= 1
            left = self._waiting_by_client[client] - 1
            if left:
                self._waiting_by_client[client] = left
            else:
                del self._waiting_by_client[client]


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def identity_map_from_config(config: Config, presence: Presence) -> IdentityMap:
    """The default wiring: an in-memory store of `config.users`."""
    return IdentityMap(
        InMemoryIdentityStore.from_config(config),
        presence,
        pbx_domain=config.pbx.effective_domain,
        login_mode=config.web_auth.mode,
    )
