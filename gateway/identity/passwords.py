"""Hashing of web login secrets: only the salted hash is stored in gateway.yaml.

Hash strings (made by `sip-webrtc-gateway hash-secret`):
  scrypt$<n>$<r>$<p>$<salt, base64>$<digest, base64>          (the default)
  pbkdf2_sha256$<iterations>$<salt, base64>$<digest, base64>  (where hashlib has no scrypt)
Verification recomputes the digest and compares with `hmac.compare_digest` (constant time).
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Final

from gateway.identity.errors import PasswordHashError

SCRYPT_N: Final = 2**14  # 16 MiB with r=8: about 50 ms per verification
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
PBKDF2_ITERATIONS: Final = 600_000  # OWASP 2023 recommendation for PBKDF2-HMAC-SHA256
_SALT_BYTES: Final = 16
_DIGEST_BYTES: Final = 32
_MAX_SCRYPT_MEMORY: Final = 256 * 1024 * 1024


class HashAlgorithm(enum.StrEnum):
    SCRYPT = "scrypt"
    PBKDF2_SHA256 = "pbkdf2_sha256"


@dataclass(frozen=True, slots=True, repr=False)
class PasswordHash:
    """A parsed hash string; `verify(secret)` tells whether `secret` produced it."""

    algorithm: HashAlgorithm
    params: tuple[int, ...]  # scrypt: (n, r, p); pbkdf2_sha256: (iterations,)
    salt: bytes
    digest: bytes

    def __post_init__(self) -> None:
        if self.algorithm is HashAlgorithm.SCRYPT:
            if len(self.params) != 3:
                raise PasswordHashError(f"scrypt needs n, r, p, got {self.params!r}")
            n, r, p = self.params
            if n < 2 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16:
                raise PasswordHashError(f"bad scrypt parameters n={n}, r={r}, p={p}")
            if 128 * r * n * 2 > _MAX_SCRYPT_MEMORY:
                raise PasswordHashError(f"scrypt parameters n={n}, r={r} need too much memory")
        elif len(self.params) != 1 or not 1_000 <= self.params[0] <= 10_000_000:
            raise PasswordHashError(f"pbkdf2_sha256 needs 1000-10000000 iterations, got {self.params!r}")
        if len(self.salt) < 8 or len(self.digest) < 16:
            raise PasswordHashError("salt or digest too short")

    @classmethod
    def parse(cls, text: str) -> PasswordHash:
        algorithm_name, _, rest = text.partition("$")
        try:
            algorithm = HashAlgorithm(algorithm_name)
        except ValueError:
            known = ", ".join(a.value for a in HashAlgorithm)
            # The value is never echoed: what was pasted here may be the plain secret itself.
            raise PasswordHashError(
                f"not a hash: it must start with one of {known} and a '$' (the value is not shown: it may "
                "be a plain secret); make one with `sip-webrtc-gateway hash-secret`"
            ) from None
        fields = rest.split("$")
        count = 3 if algorithm is HashAlgorithm.SCRYPT else 1
        if len(fields) != count + 2:
            raise PasswordHashError(f"malformed {algorithm.value} hash (expected {count + 3} '$'-fields)")
        try:
            params = tuple(int(f) for f in fields[:count])
            salt = base64.b64decode(fields[count], validate=True)
            digest = base64.b64decode(fields[count + 1], validate=True)
        except (ValueError, binascii.Error):
            raise PasswordHashError(f"malformed {algorithm.value} hash (bad number or base64)") from None
        return cls(algorithm, params, salt, digest)

    @classmethod
    def from_config(cls, value: object) -> PasswordHash:
        if not isinstance(value, str):
            raise PasswordHashError(
                f"expected a hash string such as 'scrypt$...', got a {type(value).__name__}"
            )
        return cls.parse(value)

    def verify(self, secret: str) -> bool:
        candidate = _derive(self.algorithm, self.params, secret.encode(), self.salt, len(self.digest))
        return hmac.compare_digest(candidate, self.digest)

    def __str__(self) -> str:
        b64 = base64.b64encode
        params = "$".join(str(p) for p in self.params)
        return f"{self.algorithm.value}${params}${b64(self.salt).decode()}${b64(self.digest).decode()}"

    def __repr__(self) -> str:
        return f"PasswordHash({self.algorithm.value})"


def _derive(
    algorithm: HashAlgorithm, params: tuple[int, ...], secret: bytes, salt: bytes, size: int
) -> bytes:
    if algorithm is HashAlgorithm.SCRYPT:
        n, r, p = params
        return hashlib.scrypt(secret, salt=salt, n=n, r=r, p=p, maxmem=_MAX_SCRYPT_MEMORY, dklen=size)
    return hashlib.pbkdf2_hmac("sha256", secret, salt, params[0], dklen=size)


def default_algorithm() -> HashAlgorithm:
    return HashAlgorithm.SCRYPT if hasattr(hashlib, "scrypt") else HashAlgorithm.PBKDF2_SHA256


def hash_secret(
    secret: str, algorithm: HashAlgorithm | None = None, params: tuple[int, ...] | None = None
) -> PasswordHash:
    """Hash `secret` with a fresh random salt; `str()` of the result goes into gateway.yaml."""
    if not secret:
        raise PasswordHashError("refusing to hash an empty secret")
    algorithm = algorithm or default_algorithm()
    if params is None:
        if algorithm is HashAlgorithm.SCRYPT:
            params = (SCRYPT_N, SCRYPT_R, SCRYPT_P)
        else:
            params = (PBKDF2_ITERATIONS,)
    salt = secrets.token_bytes(_SALT_BYTES)
    return PasswordHash(
        algorithm, params, salt, _derive(algorithm, params, secret.encode(), salt, _DIGEST_BYTES)
    )


def verify_secret(secret: str, hashed: PasswordHash | str) -> bool:
    """True when `secret` matches `hashed` (a PasswordHash or its string form); constant time."""
    if isinstance(hashed, str):
        hashed = PasswordHash.parse(hashed)
    return hashed.verify(secret)
