"""Revoked session tokens: a logout invalidates its token everywhere (every gateway that shares the store).

Tokens are revoked by *family*: the `f` claim of gateway.signaling.tokens, given to the token a password
login issues and kept by every token issued on a login with it (a reconnect, a reload of the page). A
logout revokes the family until the newest token of it can have expired (`until`, Unix time), so the
entry can be forgotten then.

`RevocationStore` is the interface; `InMemoryRevocations` serves one process, `FileRevocations` keeps
them in the state directory (gateway.state_dir), so they survive a restart and reach the other gateways
that share the directory; gateway/cluster/revocations.py shares them in Redis, fail-closed.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

logger = logging.getLogger(__name__)


class RevocationStore(Protocol):
    async def revoke(self, family: str, until: float) -> None:
        """Refuse tokens of `family` until Unix time `until`."""
        ...

    async def is_revoked(self, family: str) -> bool: ...


class InMemoryRevocations:
    """Revocations of this process only (lost on restart)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._until: dict[str, float] = {}

    def _prune(self) -> None:
        now = self._clock()
        for family in [f for f, until in self._until.items() if until <= now]:
            del self._until[family]

    async def revoke(self, family: str, until: float) -> None:
        self._prune()
        self._until[family] = max(until, self._until.get(family, 0.0))

    async def is_revoked(self, family: str) -> bool:
        until = self._until.get(family)
        return until is not None and until > self._clock()


class FileRevocations:
    """Revocations in a small JSON file (`{family: until}`), read again whenever it changed on disk and
    replaced atomically (written beside it, then renamed) on each revocation, expired entries dropped.

    Two gateways revoking in the same instant may lose one entry (the last rename wins): shared
    deployments with frequent logouts want the Redis store."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self._path = path
        self._clock = clock
        self._until: dict[str, float] = {}
        self._seen: tuple[int, int] | None = None  # (mtime_ns, size) of the file last read

    def _load(self) -> None:
        try:
            info = os.stat(self._path)
        except FileNotFoundError:
            self._until, self._seen = {}, None
            return
        seen = (info.st_mtime_ns, info.st_size)
        if seen == self._seen:
            return
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            logger.warning(
                "cannot read revoked tokens from %s: %s (keeping %d known)", self._path, exc, len(self._until)
            )
            return
        if isinstance(data, dict):
            self._until = {
                str(family): float(until)
                for family, until in data.items()
                if isinstance(until, (int, float)) and not isinstance(until, bool)
            }
        self._seen = seen

    async def revoke(self, family: str, until: float) -> None:
        self._load()
        now = self._clock()
        entries = {f: u for f, u in self._until.items() if u > now}
        entries[family] = max(until, entries.get(family, 0.0))
        temporary = self._path.with_name(f".{self._path.name}.{os.getpid()}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(entries, out)
        os.replace(temporary, self._path)
        self._until = entries
        self._seen = None  # read our own write back next time (its mtime is new)

    async def is_revoked(self, family: str) -> bool:
        self._load()
        until = self._until.get(family)
        return until is not None and until > self._clock()
