"""What the gateway trusts from Redis is signed with the cluster secret (issue 32 item 11).

Redis is shared state, not an authority: whoever can write to it (a leaked password, a compromised
neighbour on its network) must not be able to send this instance's users elsewhere. So the records that
route requests or decide authentication carry an HMAC-SHA256 (RFC 2104) under a key derived from
`cluster.secret` for their purpose (one key per kind of record: a MAC of one kind never passes for
another):

- an instance's record (`{prefix}instance:{id}`: its advertised SIP and HTTP addresses, draining), over
  the id and every field: a fake instance written into Redis is never forwarded to nor redirected to;
- a session's owner (`{prefix}http:{session id}` = `<instance id>;<mac>`), over the session id and the
  owner: a request for a session is never sent to an instance Redis merely names;
- a token revocation (`{prefix}revoked:{family}` and its pub/sub message), over the family and its end;
- each field of an instance's live calls (`{prefix}live:{instance}`: a call's record, the last heartbeat,
  the HTTP address) and each handover (`{prefix}handover:{instance}`), over the instance, the field and
  the value: a survivor never carries on a call Redis made up (a re-INVITE to a party of its choosing, a
  call handed to a login of its choosing) nor writes a made-up call record (gateway/cluster/live_calls.py).

A record whose MAC is missing or wrong is ignored (as if absent) and logged once per key at WARNING.
The threat model is in docs/deploy.md, "Redis is not trusted".
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass, field
from typing import Final

logger = logging.getLogger(__name__)

INSTANCE: Final = "instance"
OWNER: Final = "owner"
REVOCATION: Final = "revocation"
LIVE: Final = "live call"
HANDOVER: Final = "handover"
MAX_WARNED: Final = 1024  # distinct bad records logged (then silently ignored: no log flooding)


def derive(secret: bytes, purpose: str) -> bytes:
    """The key of `purpose`: HMAC(secret, "sip-webrtc-gateway cluster " + purpose)."""
    return hmac.new(secret, f"sip-webrtc-gateway cluster {purpose}".encode(), hashlib.sha256).digest()


def mac(key: bytes, *parts: str) -> str:
    """The hex HMAC-SHA256 of `parts`, each length-prefixed (no two lists of parts sign alike)."""
    message = "".join(f"{len(part)}:{part}\n" for part in parts)
    return hmac.new(key, message.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


@dataclass
class RecordSigner:
    """Signs and checks the cluster's records in Redis; logs each bad record's key once."""

    secret: bytes = field(repr=False)
    _keys: dict[str, bytes] = field(default_factory=dict, repr=False)
    _warned: set[str] = field(default_factory=set, repr=False)
    rejected: int = 0  # records ignored for a missing or wrong signature (tests, status)

    def _key(self, purpose: str) -> bytes:
        key = self._keys.get(purpose)
        if key is None:
            key = self._keys[purpose] = derive(self.secret, purpose)
        return key

    def sign(self, purpose: str, *parts: str) -> str:
        return mac(self._key(purpose), *parts)

    def valid(self, purpose: str, signature: str | None, *parts: str) -> bool:
        if not signature:
            return False
        return hmac.compare_digest(self.sign(purpose, *parts).encode(), signature.encode("utf-8", "replace"))

    def reject(self, what: str, key: str) -> None:
        """Count (and log once per key) a record ignored for its signature."""
        self.rejected += 1
        if key in self._warned or len(self._warned) >= MAX_WARNED:
            return
        self._warned.add(key)
        logger.warning(
            "ignored %s in Redis at %r: its signature is missing or wrong (written by something other "
            "than a gateway holding cluster.secret)",
            what,
            key[:200],
        )

    def seal(self, purpose: str, value: str, *context: str) -> str:
        """`value;mac` where the MAC covers `context` and `value` (a one-string record)."""
        return f"{value};{self.sign(purpose, *context, value)}"

    def unseal(self, purpose: str, sealed: str | None, key: str, what: str, *context: str) -> str | None:
        """The value of a `seal`ed record, or None (absent, or its MAC wrong: logged)."""
        if sealed is None:
            return None
        value, _, signature = sealed.rpartition(";")
        if value and self.valid(purpose, signature, *context, value):
            return value
        self.reject(what, key)
        return None
