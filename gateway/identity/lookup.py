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
import time
from collections.abc import Callable
from dataclasses import dataclass
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
# The queue (`VerifyQueue`) serves addresses with no recent wrong secret first, and when full it refuses
# a guesser's waiting check rather than a clean newcomer (issue 32: a burst of wrong logins made it
# refuse 2 of 15 correct ones).
HASH_WORKERS = 2
MAX_WAITING_LOGINS = 32
MAX_WAITING_PER_CLIENT = 4  # of those, from one address: a guesser cannot take the queue (fair share)
SUSPECT_FOR = 900.0  # seconds an address that gave a wrong secret is served after the others
MAX_SUSPECTS = 10_000


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
        self.verifying = VerifyQueue(HASH_WORKERS, MAX_WAITING_LOGINS, MAX_WAITING_PER_CLIENT)
        self.throttle = LoginThrottle()  # failed logins per address, pair and user id (issue 10)
        self.shared_throttle: SharedThrottle | None = None  # counted in Redis by every instance (cluster)
        self.throttled = 0  # logins (web, or SIP over WebSocket's) refused with a wait (/metrics)

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

    async def resolve_inbound(
        self, request_uri: str, to: str | None = None, *, pbx: str | None = None
    ) -> InboundResult:
        """The web users an inbound INVITE addresses: by Request-URI, else by the To URI. ``pbx``: the
        PBX it came from (several PBXs, config/pbxs.py): of the users matched, that PBX's, if any."""
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
        if pbx is not None and any(user.pbx == pbx for user in users):
            users = tuple(user for user in users if user.pbx == pbx)  # the tenant of the PBX that called
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
            self.throttled += 1
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
            logger.info("web login failed for user id %r from %s", user_id, client or "an unknown address")
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
            logger.info("web login failed for user id %r from %s", user_id, client or "an unknown address")
            return None
        return user

    async def _verify_off_loop(self, stored: PasswordHash, secret: str, client: str = "") -> bool:
        ok = await self.verifying.run(lambda: stored.verify(secret), client)
        self.verifying.outcome(client, ok)
        return ok


@dataclass(eq=False, slots=True)
class _Waiter:
    client: str
    suspect: bool
    future: asyncio.Future[None]
    evicted: bool = False


class VerifyQueue:
    """At most `workers` secrets hashed at once (worker threads), at most `max_waiting` checks in all
    (waiting or hashing), at most `per_client` of them from one address; beyond: LoginBusy.

    Fairness under a guessing burst (issue 32, item 5): an address that gave a wrong secret within
    SUSPECT_FOR is *suspect*. Waiting checks are served clean addresses first, then suspects, each in
    arrival order. When the queue is full, a newcomer displaces the newest waiting check that ranks
    above it, rank being (suspect, checks of its address): a suspect's before a clean one's, then the
    address holding the most; the displaced check gets LoginBusy. So correct logins from addresses that
    are not guessing are refused only when that many distinct clean addresses are already waiting.
    """

    def __init__(
        self, workers: int, max_waiting: int, per_client: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.workers, self.max_waiting, self.per_client = workers, max_waiting, per_client
        self._clock = clock
        self._running = 0
        self._queue: list[_Waiter] = []  # waiting for a worker, in arrival order
        self._total = 0  # waiting or hashing
        self._by_client: dict[str, int] = {}
        self._suspects: dict[str, float] = {}  # address -> when its last wrong secret was found
        self.displaced = 0  # waiting checks refused to make room for a cleaner newcomer

    def outcome(self, client: str, ok: bool) -> None:
        """What a check from `client` found: a wrong secret makes the address suspect, a right one clears it."""
        self._suspects.pop(client, None)
        if ok:
            return
        if len(self._suspects) >= MAX_SUSPECTS:  # the oldest quarter goes (dicts keep insertion order)
            for key in list(self._suspects)[: MAX_SUSPECTS // 4]:
                del self._suspects[key]
        self._suspects[client] = self._clock()

    @property
    def waiting(self) -> int:
        """Checks waiting or being hashed."""
        return self._total

    def suspect(self, client: str) -> bool:
        since = self._suspects.get(client)
        return since is not None and self._clock() - since < SUSPECT_FOR

    async def run(self, work: Callable[[], bool], client: str) -> bool:
        """`work()` in a worker thread, in its turn; LoginBusy when it cannot wait."""
        waiter = self._admit(client, self.suspect(client))
        try:
            if waiter is not None:
                try:
                    await waiter.future
                except asyncio.CancelledError:
                    if waiter in self._queue:
                        self._queue.remove(waiter)
                    elif waiter.future.done() and not waiter.future.cancelled() and not waiter.evicted:
                        self._hand_on()  # a worker was handed to us: pass it on
                    raise
            try:
                return await asyncio.to_thread(work)
            finally:
                self._hand_on()
        finally:
            if waiter is None or not waiter.evicted:
                self._leave(client)

    def _admit(self, client: str, suspect: bool) -> _Waiter | None:
        """Count a check in (None: it runs now; else its place in the queue), or raise LoginBusy."""
        mine = self._by_client.get(client, 0)
        if mine >= self.per_client:
            raise LoginBusy("your address has logins being checked already: try again later")
        if self._total >= self.max_waiting:
            self._displace((suspect, mine + 1))
        self._total += 1
        self._by_client[client] = mine + 1
        if self._running < self.workers:
            self._running += 1
            return None
        waiter = _Waiter(client, suspect, asyncio.get_running_loop().create_future())
        self._queue.append(waiter)
        return waiter

    def _displace(self, newcomer: tuple[bool, int]) -> None:
        def rank(w: _Waiter) -> tuple[bool, int]:
            return w.suspect, self._by_client.get(w.client, 0)

        victim = max(reversed(self._queue), key=rank, default=None)  # the newest of the highest rank
        if victim is None or rank(victim) <= newcomer:
            raise LoginBusy(f"more than {self.max_waiting} logins are being checked: try again later")
        self._queue.remove(victim)
        victim.evicted = True
        self._leave(victim.client)
        self.displaced += 1
        victim.future.set_exception(LoginBusy("logins are being checked for others first: try again later"))

    def _hand_on(self) -> None:
        """A worker is free: to the first clean waiter, else the first suspect."""
        self._running -= 1
        self._queue = [w for w in self._queue if not w.future.done()]  # cancelled, not yet resumed
        if not self._queue:
            return
        waiter = next((w for w in self._queue if not w.suspect), self._queue[0])
        self._queue.remove(waiter)
        self._running += 1
        waiter.future.set_result(None)

    def _leave(self, client: str) -> None:
        self._total -= 1
        left = self._by_client[client] - 1
        if left:
            self._by_client[client] = left
        else:
            del self._by_client[client]


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
