"""Who may use SIP over WebSocket, and with which digest secret (users[].sip_auth in gateway.yaml).

A user's digest user name is `sip_auth.username`, else the user id; with a password (not only HA1
values) the user's extension works too, as JsSIP and SIP.js default to the user part of their URI.
The HA1 for MD5 or SHA-256 comes from the password on demand, or from `ha1_md5`/`ha1_sha256` (then
only for the one user name and the realm it was made with). Never the web secret: that is a scrypt
hash the gateway cannot digest with.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gateway.config.schema import Config
from gateway.config.users import UserConfig
from sipcore.auth.digest import Algorithm
from sipcore.auth.digest_server import ha1

__all__ = ["SipCredentials", "SipUserAuth"]


@dataclass(frozen=True, slots=True)
class SipUserAuth:
    user_id: str
    username: str
    password: str | None
    ha1: dict[Algorithm, str]


class SipCredentials:
    """Digest user names to web users and their HA1 (the DigestServer's ``credentials`` callback)."""

    def __init__(self, users: Iterable[SipUserAuth], extensions: dict[str, str]) -> None:
        self._by_name: dict[str, SipUserAuth] = {}
        for user in users:
            self._by_name[user.username] = user
        for extension, user_id in extensions.items():  # a password lets the extension log in too
            owner = next((u for u in self._by_name.values() if u.user_id == user_id), None)
            if owner is not None and owner.password is not None and extension not in self._by_name:
                self._by_name[extension] = owner

    @classmethod
    def from_config(cls, config: Config) -> SipCredentials:
        users, extensions = [], {}
        for user in config.users:
            auth = _auth(user)
            if auth is not None:
                users.append(auth)
                extension = user.sip.split(":", 1)[-1].split("@", 1)[0]
                extensions[extension] = user.id
        return cls(users, extensions)

    def user_of(self, username: str) -> str | None:
        """The web user id a digest user name belongs to."""
        auth = self._by_name.get(username)
        return auth.user_id if auth is not None else None

    def ha1(self, username: str, realm: str, algorithm: Algorithm) -> str | None:
        auth = self._by_name.get(username)
        if auth is None:
            return None
        if auth.password is not None:
            return ha1(algorithm, username, realm, auth.password)
        if username != auth.username:
            return None
        return auth.ha1.get(algorithm)

    def __len__(self) -> int:
        return len({auth.user_id for auth in self._by_name.values()})


def _auth(user: UserConfig) -> SipUserAuth | None:
    auth = user.sip_auth
    if auth is None:
        return None
    stored: dict[Algorithm, str] = {}
    if auth.ha1_md5 is not None:
        stored[Algorithm.MD5] = auth.ha1_md5
    if auth.ha1_sha256 is not None:
        stored[Algorithm.SHA_256] = auth.ha1_sha256
    password = auth.password.reveal() if auth.password is not None else None
    return SipUserAuth(user.id, auth.username or user.id, password, stored)
