"""The identity map: web users <-> SIP identities, inbound targets, outbound policy, web login.

The package's values and the outbound policy are pure (no I/O); the map itself, which verifies
logins in worker threads, is in `gateway.identity.lookup`:

identities = identity_map_from_config(config, presence=InMemoryPresence())
result = await identities.resolve_inbound("sip:1001@gw.example.org")  # NoSuchUser | NotOnline | Found
"""

from gateway.identity.address import SipAddress
from gateway.identity.errors import IdentityError, LoginBusy, LoginThrottled, PasswordHashError, PatternError
from gateway.identity.model import (
    Found,
    InboundResult,
    NoSuchUser,
    NotOnline,
    PbxCredentials,
    SipIdentity,
    WebAuthMode,
    WebUser,
)
from gateway.identity.passwords import HashAlgorithm, PasswordHash, hash_secret, verify_secret
from gateway.identity.patterns import DialPattern
from gateway.identity.policy import may_call
from gateway.identity.presence import InMemoryPresence, Presence
from gateway.identity.store import IdentityStore, InMemoryIdentityStore, web_users_from_config

__all__ = [
    "DialPattern",
    "Found",
    "HashAlgorithm",
    "IdentityError",
    "IdentityStore",
    "InMemoryIdentityStore",
    "InMemoryPresence",
    "InboundResult",
    "LoginBusy",
    "LoginThrottled",
    "NoSuchUser",
    "NotOnline",
    "PasswordHash",
    "PasswordHashError",
    "PatternError",
    "PbxCredentials",
    "Presence",
    "SipAddress",
    "SipIdentity",
    "WebAuthMode",
    "WebUser",
    "hash_secret",
    "may_call",
    "verify_secret",
    "web_users_from_config",
]
