"""The identity map's value objects: web users, their SIP side, and the typed lookup results.

An inbound lookup ends in one of three results, which the SIP side answers differently:
  NoSuchUser  -> 404 Not Found (RFC 3261 §21.4.5): nobody is known by that number or URI
  NotOnline   -> 480 Temporarily Unavailable (§21.4.18): the user exists but has no open session
  Found       -> ring every session of the users found
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.identity.address import SipAddress
from gateway.identity.errors import IdentityError
from gateway.identity.passwords import PasswordHash
from gateway.identity.patterns import DialPattern

if TYPE_CHECKING:
    from gateway.config.secret import Secret


class WebAuthMode(enum.StrEnum):
    """How browsers log in (gateway.yaml `web_auth.mode`)."""

    SECRET = "secret"  # user id + per-user secret, checked against the stored hash (users[].web_secret_hash)
    TOKEN = "token"  # per-user bearer token (users[].web_token, a secret reference)


@dataclass(frozen=True, slots=True)
class PbxCredentials:
    """Digest credentials to REGISTER (and authenticate INVITEs) at the PBX on a web user's behalf."""

    username: str
    password: Secret

    def __repr__(self) -> str:
        return f"PbxCredentials(username={self.username!r}, password={self.password!r})"


@dataclass(frozen=True, slots=True)
class WebUser:
    id: str
    display_name: str
    aor: SipAddress  # the user's SIP identity, e.g. sip:1001@pbx.example.org
    credentials: PbxCredentials | None = None
    allow_outbound: tuple[DialPattern | SipAddress, ...] = ()  # empty: may call nobody
    aliases: tuple[str, ...] = ()  # user parts or full URIs (as `user@host`) that ring this user
    inbound_patterns: tuple[DialPattern, ...] = ()
    web_secret_hash: PasswordHash | None = None
    web_token: Secret | None = field(default=None, repr=False)
    on_busy: str = "ring"  # every session in a call: ring | reject | forward:<destination>
    roles: frozenset[str] = frozenset()  # users[].roles: `admin` opens the admin page and API
    pbx: str = "default"  # her own PBX's name (users[].pbx, her tenant's, else `pbx:`; config/pbxs.py)
    tenant: str | None = None  # users[].tenant

    def __post_init__(self) -> None:
        if self.on_busy not in ("ring", "reject") and not self.on_busy.startswith("forward:"):
            raise IdentityError(
                f"on_busy of user {self.id!r} must be ring, reject or forward:..., not {self.on_busy!r}"
            )
        if not self.id:
            raise IdentityError("a web user needs an id")
        if self.aor.user is None:
            raise IdentityError(f"SIP identity {str(self.aor)!r} of user {self.id!r} has no user part")


@dataclass(frozen=True, slots=True)
class SipIdentity:
    """Who a web user is on the SIP side: the AOR for From/To, and how to authenticate at the PBX."""

    aor: SipAddress
    display_name: str
    credentials: PbxCredentials | None


@dataclass(frozen=True, slots=True)
class NoSuchUser:
    target: str
    sip_status: int = 404


@dataclass(frozen=True, slots=True)
class NotOnline:
    target: str
    users: tuple[WebUser, ...]
    sip_status: int = 480


@dataclass(frozen=True, slots=True)
class Found:
    target: str
    users: tuple[WebUser, ...]  # the users addressed who are online
    sessions: Mapping[str, tuple[str, ...]]  # user id -> that user's open session ids, never empty
    sip_status: None = None


InboundResult = NoSuchUser | NotOnline | Found
