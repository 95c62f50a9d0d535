"""Session tokens (HMAC-SHA256, expiry) and the per-connection token bucket."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.signaling.errors import Unauthorized
from gateway.signaling.limits import SignalingLimits, TokenBucket
from gateway.signaling.tokens import SessionTokens

KEY = b"k" * 32


def test_issue_and_verify() -> None:
    now = [1000.0]
    tokens = SessionTokens(KEY, 60, lambda: now[0])
    token = tokens.issue("alice")
    claims = tokens.verify(token)
    assert claims.user_id == "alice" and claims.expires_at == 1060
    assert tokens.issue("alice") != token  # a nonce in every token
    now[0] = 1059.0
    assert tokens.verify(token).user_id == "alice"
    now[0] = 1060.0
    with pytest.raises(Unauthorized, match="expired"):
        tokens.verify(token)


def test_other_key_and_tampering_are_refused() -> None:
    tokens = SessionTokens(KEY, 60)
    token = tokens.issue("alice")
    with pytest.raises(Unauthorized):
        SessionTokens(b"x" * 32, 60).verify(token)
    payload, mac = token.split(".")
    forged = SessionTokens(b"x" * 32, 60).issue("bob").split(".")[0]
    for bad in (f"{forged}.{mac}", f"{payload}.{mac[:-1]}", payload, "", "a.b.c", token + "é"):
        with pytest.raises(Unauthorized):
            tokens.verify(bad)


@given(st.text(max_size=300))
def test_random_tokens_raise_only_unauthorized(text: str) -> None:
    with contextlib.suppress(Unauthorized):
        SessionTokens(KEY, 60).verify(text)


def test_key_and_ttl_checked() -> None:
    with pytest.raises(ValueError):
        SessionTokens(b"short", 60)
    with pytest.raises(ValueError):
        SessionTokens(KEY, 0)


def test_token_bucket_refills() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=2.0, burst=3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] = 0.5
    assert [bucket.take(), bucket.take()] == [True, False]
    now[0] = 100.0
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


def test_limits_validate() -> None:
    with pytest.raises(ValueError):
        SignalingLimits(rate=0)
    with pytest.raises(ValueError):
        SignalingLimits(login_timeout=0)
    with pytest.raises(ValueError):
        SignalingLimits(max_sessions_per_user=0)
