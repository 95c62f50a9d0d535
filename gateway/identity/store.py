"""Where web users live: the `IdentityStore` protocol and its in-memory implementation.

The in-memory store is built from gateway.yaml's `users:`; a Redis store (later) implements the same
async protocol. Inbound matching order (first step with a hit wins):
  1. the full URI `user@host` equals a user's AOR or a URI alias;
  2. the user part equals a user's AOR user part or a bare alias (the host is ignored: a PBX sends
     `sip:1001@<gateway address>`);
  3. the user part matches inbound patterns; only the most specific matching patterns count.
So exact matches always beat patterns. Several users may share a number: all of them ring.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from gateway.config.pbxs import PbxPlan
from gateway.identity.address import SipAddress
from gateway.identity.model import PbxCredentials, WebUser
from gateway.identity.patterns import DialPattern, most_specific

if TYPE_CHECKING:
    from gateway.config.schema import Config


class IdentityStore(Protocol):
    async def get(self, user_id: str) -> WebUser | None: ...

    async def all_users(self) -> tuple[WebUser, ...]: ...

    async def match_inbound(self, target: SipAddress) -> tuple[WebUser, ...]:
        """Users addressed by an inbound Request-URI or To URI (see the module note for the order)."""
        ...


def _uri_key(address: SipAddress) -> str:
    return f"{address.user}@{address.host}"


class InMemoryIdentityStore:
    def __init__(self, users: Iterable[WebUser]) -> None:
        self._users: dict[str, WebUser] = {}
        self._by_uri: dict[str, list[WebUser]] = {}
        self._by_user_part: dict[str, list[WebUser]] = {}
        self._patterns: list[tuple[DialPattern, WebUser]] = []
        for user in users:
            if user.id in self._users:
                raise ValueError(f"duplicate web user id {user.id!r}")
            self._users[user.id] = user
            self._by_uri.setdefault(_uri_key(user.aor), []).append(user)
            self._by_user_part.setdefault(user.aor.user or "", []).append(user)
            for alias in user.aliases:
                index = self._by_uri if "@" in alias else self._by_user_part
                index.setdefault(alias, []).append(user)
            self._patterns.extend((pattern, user) for pattern in user.inbound_patterns)

    @classmethod
    def from_config(cls, config: Config) -> InMemoryIdentityStore:
        return cls(web_users_from_config(config))

    async def get(self, user_id: str) -> WebUser | None:
        return self._users.get(user_id)

    async def all_users(self) -> tuple[WebUser, ...]:
        return tuple(self._users.values())

    async def match_inbound(self, target: SipAddress) -> tuple[WebUser, ...]:
        if target.user is None:
            return ()
        exact = self._by_uri.get(_uri_key(target)) or self._by_user_part.get(target.user)
        if exact:
            return tuple(exact)
        matching = [(p, u) for p, u in self._patterns if p.matches(target.user)]
        best = most_specific([p for p, _ in matching])
        found: dict[str, WebUser] = {}
        for pattern, user in matching:
            if pattern in best:
                found.setdefault(user.id, user)
        return tuple(found.values())


def web_users_from_config(config: Config) -> tuple[WebUser, ...]:
    """The web users of `config.users`, bare extensions completed with the PBX domain."""
    plan = PbxPlan.from_config(config)
    users = []
    for entry in config.users:
        pbx = plan.user_pbx(entry.pbx, entry.tenant)
        domain = plan.domain(pbx)
        if ":" in entry.sip:
            aor = SipAddress.parse(entry.sip)
        else:
            if domain is None:  # Config.__post_init__ rejects this; guard for hand-built configs
                raise ValueError(f"user {entry.id!r}: bare extension {entry.sip!r} needs pbx.domain")
            aor = SipAddress("sip", entry.sip, domain)
        aliases = tuple(
            _uri_key(SipAddress.parse(alias)) if ":" in alias else alias for alias in entry.aliases
        )
        credentials = None
        if entry.pbx_auth is not None:
            credentials = PbxCredentials(entry.pbx_auth.username, entry.pbx_auth.password)
        users.append(
            WebUser(
                id=entry.id,
                display_name=entry.display_name or entry.id,
                aor=aor,
                credentials=credentials,
                allow_outbound=entry.allow_outbound,
                aliases=aliases,
                inbound_patterns=entry.inbound_patterns,
                web_secret_hash=entry.web_secret_hash,
                web_token=entry.web_token,
                on_busy=entry.on_busy,
                roles=frozenset(entry.roles),
                pbx=pbx,
                tenant=entry.tenant,
            )
        )
    return tuple(users)
