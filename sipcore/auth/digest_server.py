"""Digest authentication, the server's side (RFC 3261 §22.4, RFC 7616, RFC 8760): challenges and
their verification, sans I/O.

Nonces are stateless: ``base64(issued-at || HMAC(key, issued-at || realm))``, so any of our processes
with the key can check one and nothing is stored per challenge. A nonce older than ``nonce_ttl`` is
*stale*: the answer is a new challenge with ``stale=true`` (§22.4: the client retries without asking
the user). With ``qop=auth`` the client's ``nc`` must grow for a nonce (a replayed Authorization is
refused); the last count per nonce is remembered for nonces still valid, within ``max_tracked``.

Credentials come from a callback ``(username, realm, algorithm) -> HA1 hex or None``: a store may
keep a password (and hash it on demand) or only HA1 values, so no clear password is needed here.
One challenge per configured algorithm, in the configured order of preference (RFC 8760 §2.4: a
client answers the first one it supports). SHA-256 then MD5 by default: JsSIP 3 and SIP.js 0.21 read
only the last challenge (and abort on any algorithm but MD5), RFC 8760 clients take SHA-256.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sipcore.auth.digest import Algorithm, parse_auth_header
from sipcore.errors import SIPError
from sipcore.syntax.message import Request

__all__ = ["Credentials", "DigestServer", "Outcome", "Verified"]

Credentials = Callable[[str, str, Algorithm], str | None]  # (username, realm, algorithm) -> HA1


@dataclass(frozen=True, slots=True)
class Verified:
    """The request carries a valid answer for ``username``."""

    username: str
    algorithm: Algorithm


@dataclass(frozen=True, slots=True)
class Outcome:
    """The request is not (yet) authenticated: answer ``status`` with ``headers`` (the challenges).
    ``reason`` says why, for the log; ``username`` is the one tried, if any."""

    status: int
    headers: tuple[tuple[str, str], ...]
    reason: str
    username: str | None = None


class DigestServer:
    """Challenge and verify for one realm (see the module note)."""

    def __init__(
        self,
        realm: str,
        credentials: Credentials,
        *,
        algorithms: Sequence[Algorithm] = (Algorithm.SHA_256, Algorithm.MD5),
        key: bytes | None = None,
        nonce_ttl: float = 300.0,
        clock: Callable[[], float],
        max_tracked: int = 10000,
    ) -> None:
        if not algorithms or any(a.session for a in algorithms):
            raise ValueError("digest algorithms: one or more of MD5, SHA-256, SHA-512-256")
        self.realm = realm
        self.algorithms = tuple(algorithms)
        self._credentials = credentials
        self._key = key or os.urandom(32)
        self._ttl = nonce_ttl
        self._clock = clock
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._max_tracked = max_tracked

    # --- nonces ----------------------------------------------------------------------------------
    def _nonce(self) -> str:
        issued = struct.pack(">d", self._clock())
        mac = hmac.new(self._key, issued + self.realm.encode(), hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(issued + mac).decode().rstrip("=")

    def _nonce_age(self, nonce: str) -> float | None:
        """Seconds since we issued ``nonce``; None when it is not one of ours."""
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except (ValueError, TypeError):
            return None
        if len(raw) != 24:
            return None
        issued, mac = raw[:8], raw[8:]
        wanted = hmac.new(self._key, issued + self.realm.encode(), hashlib.sha256).digest()[:16]
        if not hmac.compare_digest(mac, wanted):
            return None
        (when,) = struct.unpack(">d", issued)
        return self._clock() - float(when)

    # --- challenges ------------------------------------------------------------------------------
    def challenge(self, proxy: bool = False, stale: bool = False) -> tuple[tuple[str, str], ...]:
        """One WWW-Authenticate (or Proxy-Authenticate) per algorithm, the preferred first."""
        header = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        nonce = self._nonce()
        extra = ", stale=true" if stale else ""
        return tuple(
            (header, f'Digest realm="{self.realm}", nonce="{nonce}", algorithm={a.value}, qop="auth"{extra}')
            for a in self.algorithms
        )

    def check(self, request: Request, proxy: bool = False) -> Verified | Outcome:
        """Verify ``request``'s Authorization (or Proxy-Authorization, with ``proxy``) for our realm."""
        status = 407 if proxy else 401
        header = "Proxy-Authorization" if proxy else "Authorization"
        answers = []
        for value in request.headers.get_all(header):
            try:
                items = parse_auth_header(value)
            except SIPError:
                return Outcome(400, (), f"malformed {header}")
            answers += [params for scheme, params in items if scheme.lower() == "digest"]
        mine = [p for p in answers if p.get("realm") == self.realm]
        if not mine:
            return Outcome(status, self.challenge(proxy), "no credentials" if not answers else "other realm")
        params = mine[0]
        username = params.get("username", "")
        algorithm = Algorithm.from_token(params.get("algorithm", "MD5"))
        if algorithm not in self.algorithms:
            return Outcome(status, self.challenge(proxy), f"algorithm {params.get('algorithm')!r}", username)
        assert algorithm is not None
        missing = [name for name in ("username", "nonce", "uri", "response") if not params.get(name)]
        if missing:
            return Outcome(400, (), f"{header} without {', '.join(missing)}", username)
        age = self._nonce_age(params["nonce"])
        if age is None:
            return Outcome(status, self.challenge(proxy), "not our nonce", username)
        qop = params.get("qop")
        if qop is not None and qop != "auth":
            return Outcome(status, self.challenge(proxy), f"qop {qop!r}", username)
        ha1 = self._credentials(username, self.realm, algorithm)
        if ha1 is None:
            return Outcome(403, (), "unknown user", username)
        nc, cnonce = params.get("nc", ""), params.get("cnonce", "")
        ha2 = algorithm.hash(f"{request.method}:{params['uri']}")
        if qop is None:
            expected = algorithm.hash(f"{ha1}:{params['nonce']}:{ha2}")
        else:
            expected = algorithm.hash(f"{ha1}:{params['nonce']}:{nc}:{cnonce}:{qop}:{ha2}")
        if not hmac.compare_digest(expected.lower(), params["response"].lower()):
            return Outcome(403, (), "wrong password", username)
        if age > self._ttl or age < -5:
            return Outcome(status, self.challenge(proxy, stale=True), "stale nonce", username)
        if qop is not None and not self._count_ok(params["nonce"], nc):
            return Outcome(status, self.challenge(proxy), f"replayed nc {nc!r}", username)
        return Verified(username, algorithm)

    def _count_ok(self, nonce: str, nc: str) -> bool:
        try:
            count = int(nc, 16)
        except ValueError:
            return False
        last = self._counts.get(nonce, 0)
        if count <= last:
            return False
        self._counts[nonce] = count
        self._counts.move_to_end(nonce)
        while len(self._counts) > self._max_tracked:
            self._counts.popitem(last=False)
        return True


def ha1(algorithm: Algorithm, username: str, realm: str, password: str) -> str:
    """H(username:realm:password), what a credential store may keep instead of the password."""
    return algorithm.hash(f"{username}:{realm}:{password}")
