"""Revoked session tokens: by family, until they can have expired; the file store is shared and kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.signaling.errors import Unauthorized
from gateway.signaling.revocation import FileRevocations, InMemoryRevocations
from gateway.signaling.tokens import SessionTokens

KEY = b"k" * 32


async def test_a_revoked_family_is_refused_and_others_are_not() -> None:
    now = [1000.0]
    tokens = SessionTokens(KEY, 60, lambda: now[0], InMemoryRevocations(lambda: now[0]))
    first = tokens.issue("alice")
    family = tokens.verify(first).family
    second = tokens.issue("alice", family)  # a login with the first token keeps its family
    other = tokens.issue("alice")  # another login (another tab with the secret)
    assert tokens.verify(second).family == family != tokens.verify(other).family
    await tokens.revoke(family)
    for token in first, second:
        with pytest.raises(Unauthorized, match="logout"):
            await tokens.check(token)
    assert (await tokens.check(other)).user_id == "alice"
    assert tokens.verify(first).user_id == "alice"  # the signature alone is still good: check() refuses


async def test_entries_are_forgotten_once_every_token_of_them_expired() -> None:
    now = [1000.0]
    store = InMemoryRevocations(lambda: now[0])
    await store.revoke("f1", 1060.0)
    assert await store.is_revoked("f1")
    now[0] = 1061.0
    assert not await store.is_revoked("f1")
    await store.revoke("f2", 2000.0)
    assert "f1" not in store._until


async def test_the_file_store_is_shared_and_survives_a_restart(tmp_path: Path) -> None:
    now = [1000.0]
    path = tmp_path / "revoked-tokens.json"
    one, two = FileRevocations(path, lambda: now[0]), FileRevocations(path, lambda: now[0])
    assert not await two.is_revoked("f1")
    await one.revoke("f1", 1060.0)
    assert await two.is_revoked("f1")  # another gateway sharing the state directory
    await two.revoke("f2", 1100.0)
    assert await one.is_revoked("f1") and await one.is_revoked("f2")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    now[0] = 1070.0
    await one.revoke("f3", 1200.0)  # rewriting drops what expired
    assert "f1" not in path.read_text() and await FileRevocations(path, lambda: now[0]).is_revoked("f3")


async def test_an_unreadable_file_keeps_what_was_known(tmp_path: Path) -> None:
    path = tmp_path / "revoked-tokens.json"
    store = FileRevocations(path, lambda: 1000.0)
    await store.revoke("f1", 2000.0)
    path.write_text("{not json")
    assert await store.is_revoked("f1")
