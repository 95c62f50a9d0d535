"""Digest authentication as a client (RFC 3261 §22, RFC 7616, RFC 8760, RFC 2617).

:class:`DigestClient` holds one set of credentials. Given a request and the 401/407 that
challenged it, it picks for each realm the strongest algorithm offered (SHA-512-256, then
SHA-256, then MD5; ``-sess`` variants included), answers with ``qop=auth`` when offered (or the
RFC 2069 form when no qop is offered), echoes ``opaque``, and remembers the nonce so that later
requests can be signed in advance with an incremented nonce count (RFC 7616 §3.4). A new
challenge to a request that already carried our credentials means they were refused, unless it
says ``stale=true`` (RFC 7616 §3.3): then :class:`DigestError` is raised instead of looping.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from sipcore.errors import BadRequest, DigestError
from sipcore.syntax.headers import CSeq, is_token, new_branch, quote, split_commas, unquote
from sipcore.syntax.message import Request, Response

__all__ = [
    "Algorithm",
    "Challenge",
    "DigestClient",
    "digest_response",
    "parse_auth_header",
    "parse_challenges",
]

logger = logging.getLogger(__name__)


class Algorithm(enum.Enum):
    """Digest algorithms (RFC 7616 §3.2, RFC 8760 §2.2), with (hash, session, strength)."""

    MD5 = "MD5"
    MD5_SESS = "MD5-sess"
    SHA_256 = "SHA-256"
    SHA_256_SESS = "SHA-256-sess"
    SHA_512_256 = "SHA-512-256"
    SHA_512_256_SESS = "SHA-512-256-sess"

    @property
    def hash_name(self) -> str:
        return _ALGORITHMS[self][0]

    @property
    def session(self) -> bool:
        return self.value.endswith("-sess")

    @property
    def strength(self) -> int:
        return _ALGORITHMS[self][1]

    @classmethod
    def from_token(cls, token: str) -> Algorithm | None:
        return _BY_NAME.get(token.lower())

    def hash(self, text: str) -> str:
        return hashlib.new(self.hash_name, text.encode("utf-8")).hexdigest()


_ALGORITHMS: dict[Algorithm, tuple[str, int]] = {
    Algorithm.MD5: ("md5", 1),
    Algorithm.MD5_SESS: ("md5", 1),
    Algorithm.SHA_256: ("sha256", 2),
    Algorithm.SHA_256_SESS: ("sha256", 2),
    Algorithm.SHA_512_256: ("sha512_256", 3),
    Algorithm.SHA_512_256_SESS: ("sha512_256", 3),
}
_BY_NAME = {algorithm.value.lower(): algorithm for algorithm in Algorithm}

# 401 answers with Authorization, 407 with Proxy-Authorization (RFC 3261 §22.2, §22.3).
CHALLENGE_HEADERS = {"WWW-Authenticate": "Authorization", "Proxy-Authenticate": "Proxy-Authorization"}


def parse_auth_header(value: str) -> list[tuple[str, dict[str, str]]]:
    """Split a WWW-Authenticate/Authorization value into ``(scheme, params)`` items; a value may
    hold several challenges separated by commas (RFC 7235 §4.1). Param values are unquoted."""
    items: list[tuple[str, dict[str, str]]] = []
    for piece in split_commas(value, "WWW-Authenticate"):
        if not piece:
            continue
        first, _, rest = piece.partition(" ")
        if "=" not in first:
            if not is_token(first):
                raise BadRequest(f"invalid auth scheme {first!r}")
            items.append((first, {}))
            piece = rest.strip()
            if not piece:
                continue
        if not items:
            raise BadRequest(f"auth parameter before a scheme in {value!r}")
        name, eq, raw = piece.partition("=")
        name, raw = name.strip(), raw.strip()
        if not eq or not is_token(name):
            raise BadRequest(f"invalid auth parameter {piece!r}")
        items[-1][1][name.lower()] = unquote(raw)
    return items


@dataclass(frozen=True, slots=True)
class Challenge:
    """One Digest challenge (RFC 7616 §3.3)."""

    realm: str
    nonce: str
    algorithm: Algorithm = Algorithm.MD5
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False
    userhash: bool = False
    header: str = "WWW-Authenticate"

    def __post_init__(self) -> None:
        if not self.nonce:
            raise ValueError(f"empty nonce in challenge for realm {self.realm!r}")
        if self.header not in CHALLENGE_HEADERS:
            raise ValueError(f"invalid challenge header {self.header!r}")


def parse_challenges(response: Response) -> list[Challenge]:
    """The Digest challenges of a 401/407 whose algorithm we support (others are skipped)."""
    challenges: list[Challenge] = []
    for header in CHALLENGE_HEADERS:
        for value in response.headers.get_all(header):
            for scheme, params in parse_auth_header(value):
                if scheme.lower() != "digest":
                    continue
                algorithm = Algorithm.from_token(params.get("algorithm", "MD5"))
                if algorithm is None or "nonce" not in params:
                    logger.debug("skipping digest challenge %r", params)
                    continue
                qop = tuple(q.strip() for q in params.get("qop", "").split(",") if q.strip())
                try:
                    challenges.append(
                        Challenge(
                            params.get("realm", ""),
                            params["nonce"],
                            algorithm,
                            qop,
                            params.get("opaque"),
                            params.get("stale", "").lower() == "true",
                            params.get("userhash", "").lower() == "true",
                            header,
                        )
                    )
                except ValueError as exc:
                    raise BadRequest(str(exc)) from None
    return challenges


def digest_response(
    algorithm: Algorithm,
    *,
    username: str,
    password: str,
    realm: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None = None,
    nc: str = "00000001",
    cnonce: str = "",
    body: bytes = b"",
) -> str:
    """The ``response`` value (RFC 7616 §3.4.1; RFC 2617 §3.2.2.1 without qop)."""
    ha1 = algorithm.hash(f"{username}:{realm}:{password}")
    if algorithm.session:
        ha1 = algorithm.hash(f"{ha1}:{nonce}:{cnonce}")  # RFC 7616 §3.4.2
    if qop == "auth-int":
        body_hash = hashlib.new(algorithm.hash_name, body).hexdigest()
        ha2 = algorithm.hash(f"{method}:{uri}:{body_hash}")  # RFC 7616 §3.4.3
    else:
        ha2 = algorithm.hash(f"{method}:{uri}")
    if qop is None:
        return algorithm.hash(f"{ha1}:{nonce}:{ha2}")
    return algorithm.hash(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


@dataclass(slots=True)
class _NonceState:
    challenge: Challenge
    count: int = 0


class DigestClient:
    """Answers Digest challenges for one username/password."""

    def __init__(
        self,
        username: str,
        password: str,
        *,
        cnonce_factory: Callable[[], str] = lambda: secrets.token_hex(16),
        realm: str | None = None,
    ) -> None:
        self.username = username
        self._password = password
        self.realm = realm  # when set, the only realm these credentials answer (a PBX's `realm`)
        self._cnonce = cnonce_factory
        self._nonces: dict[tuple[str, str], _NonceState] = {}  # (header, realm) -> state

    def _choose(self, response: Response) -> list[Challenge]:
        best: dict[tuple[str, str], Challenge] = {}
        for challenge in parse_challenges(response):
            key = (challenge.header, challenge.realm)
            # The strongest algorithm offered for a realm (RFC 8760 §2.4 lets the UAC choose).
            if key not in best or challenge.algorithm.strength > best[key].algorithm.strength:
                best[key] = challenge
        return list(best.values())

    def credentials(self, challenge: Challenge, method: str, uri: str, body: bytes = b"") -> str:
        """An Authorization value answering ``challenge``; increments the nonce count."""
        state = self._nonces.get((challenge.header, challenge.realm))
        if state is None or state.challenge.nonce != challenge.nonce:
            state = _NonceState(challenge)
            self._nonces[(challenge.header, challenge.realm)] = state
        state.count += 1
        qop = "auth" if "auth" in challenge.qop else ("auth-int" if "auth-int" in challenge.qop else None)
        if challenge.qop and qop is None:
            raise DigestError(f"no supported qop in {challenge.qop!r}")
        nc = f"{state.count:08x}"
        cnonce = self._cnonce() if qop is not None or challenge.algorithm.session else ""
        algorithm = challenge.algorithm
        response = digest_response(
            algorithm,
            username=self.username,
            password=self._password,
            realm=challenge.realm,
            nonce=challenge.nonce,
            method=method,
            uri=uri,
            qop=qop,
            nc=nc,
            cnonce=cnonce,
            body=body,
        )
        username = self.username
        if challenge.userhash:
            username = algorithm.hash(f"{self.username}:{challenge.realm}")  # RFC 7616 §3.4.4
        parts = [
            f"Digest username={quote(username)}",
            f"realm={quote(challenge.realm)}",
            f"nonce={quote(challenge.nonce)}",
            f"uri={quote(uri)}",
            f"response={quote(response)}",
            f"algorithm={algorithm.value}",
        ]
        if cnonce:
            parts.append(f"cnonce={quote(cnonce)}")
        if challenge.opaque is not None:
            parts.append(f"opaque={quote(challenge.opaque)}")
        if qop is not None:
            parts += [f"qop={qop}", f"nc={nc}"]
        if challenge.userhash:
            parts.append("userhash=true")
        return ", ".join(parts)

    def authorize(self, request: Request, response: Response) -> Request:
        """The request to send again after ``response`` (401/407) challenged ``request``: same
        Call-ID, CSeq + 1, a new Via branch, credentials for each realm (RFC 3261 §22.2).

        Raises DigestError when there is no usable challenge, or when a realm refuses
        credentials that ``request`` already carried for it without saying ``stale=true``, or when a
        challenge names a realm other than ``realm`` (when set)."""
        challenges = self._choose(response)
        if not challenges:
            raise DigestError(f"no supported Digest challenge in {response.status} response")
        foreign = sorted({c.realm for c in challenges} - {self.realm}) if self.realm is not None else []
        if foreign:
            raise DigestError(
                f"credentials of {self.username!r} withheld: realm {foreign!r} is not {self.realm!r}"
            )
        headers = request.headers
        for challenge in challenges:
            answer_header = CHALLENGE_HEADERS[challenge.header]
            previous = [v for v in headers.get_all(answer_header) if _realm_of(v) == challenge.realm]
            if previous and not challenge.stale:
                raise DigestError(f"credentials of {self.username!r} refused by realm {challenge.realm!r}")
            kept = [v for v in headers.get_all(answer_header) if _realm_of(v) != challenge.realm]
            value = self.credentials(challenge, request.method, str(request.uri), request.body)
            headers = headers.replace(answer_header, *kept, value)
        cseq = request.cseq
        if cseq is not None and request.method != "ACK":
            headers = headers.replace("CSeq", str(CSeq(cseq.seq + 1, cseq.method)))
        via = request.top_via
        if via is not None:
            headers = headers.replace(
                "Via", str(via.with_param("branch", new_branch())), *headers.get_all("Via")[1:]
            )
        return Request(request.method, request.uri, headers, request.body)

    def sign(self, request: Request) -> Request:
        """Add credentials in advance from the nonces remembered (RFC 7616 §3.4: nc + 1)."""
        headers = request.headers
        for state in list(self._nonces.values()):
            challenge = state.challenge
            answer_header = CHALLENGE_HEADERS[challenge.header]
            kept = [v for v in headers.get_all(answer_header) if _realm_of(v) != challenge.realm]
            value = self.credentials(challenge, request.method, str(request.uri), request.body)
            headers = headers.replace(answer_header, *kept, value)
        return Request(request.method, request.uri, headers, request.body)


def _realm_of(value: str) -> str | None:
    try:
        items = parse_auth_header(value)
    except BadRequest:
        return None
    return items[0][1].get("realm") if items else None
