"""The ICE servers a browser gets, with TURN credentials minted per login (the TURN REST API).

draft-uberti-behave-turn-rest-00 §2.2 (what coturn implements with `use-auth-secret` and
`static-auth-secret`): the TURN username is `<expiry unix time>:<user id>` and the password is
base64(HMAC-SHA1(shared secret, username)). The TURN server recomputes the password from the username and
refuses it once the expiry has passed, so a credential read from one user's page is worth nothing to
anyone after its TTL, and the shared secret itself never leaves the gateway.

`IceServers` is what the signaling endpoints hold: `for_user()` for a logged-in user (the static servers
of `ice.browser` plus, with `ice.turn`, freshly minted TURN credentials), `public()` for anyone (STUN
entries only, no credential).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.config import Config
from gateway.signaling.events import IceServerInfo


def turn_rest_credential(secret: bytes, username: str) -> str:
    """The TURN password for `username` (draft-uberti-behave-turn-rest-00 §2.2): base64(HMAC-SHA1)."""
    digest = hmac.new(secret, username.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def turn_rest_username(expiry: int, user_id: str) -> str:
    """`<expiry unix time>:<user id>` (coturn reads the timestamp before the first `:`)."""
    return f"{expiry}:{user_id}"


@dataclass(frozen=True, slots=True)
class TurnRestIssuer:
    """Mints TURN credentials that expire `ttl` seconds after `clock()` (Unix time)."""

    urls: tuple[str, ...]
    secret: bytes = field(repr=False)
    ttl: int
    clock: Callable[[], float]

    def issue(self, user_id: str) -> IceServerInfo:
        username = turn_rest_username(int(self.clock()) + self.ttl, user_id)
        return IceServerInfo(self.urls, username, turn_rest_credential(self.secret, username))


def turn_rest_issuer(config: Config, clock: Callable[[], float]) -> TurnRestIssuer | None:
    """The issuer of `ice.turn`, None without one; `clock` is Unix time."""
    turn = config.ice.turn
    if turn is None:
        return None
    return TurnRestIssuer(turn.urls, turn.shared_secret.reveal().encode("utf-8"), turn.ttl, clock)


@dataclass(frozen=True, slots=True)
class IceServers:
    """The browsers' ICE servers: static ones from `ice.browser` (signaling/routes.py), TURN REST ones
    from `ice.turn` (`turn_rest_issuer`)."""

    static: tuple[IceServerInfo, ...] = ()
    turn: TurnRestIssuer | None = None

    def for_user(self, user_id: str) -> tuple[IceServerInfo, ...]:
        """Every server, with TURN credentials for `user_id` (only ever for an authenticated user)."""
        if self.turn is None:
            return self.static
        return (*self.static, self.turn.issue(user_id))

    def public(self) -> tuple[IceServerInfo, ...]:
        """What anyone may see: the servers that need no credential (STUN), without any username."""
        return tuple(
            IceServerInfo(s.urls)
            for s in self.static
            if s.credential is None and not any(url.lower().startswith("turn") for url in s.urls)
        )
