"""Login throttling counted in Redis (issue 18: "login throttling counters"): two gateway instances in this
process (127.0.0.2, 127.0.0.3) sharing a real Redis.

- wrong secrets for alice from one address, alternating between the instances: after the pair's free
  failures (5) the next login, on either instance, is refused `rate_limited` ("too many failed logins")
  without a check, although each instance saw only half of the failures (its own count would not throttle);
- Redis stopped: a login is refused with `unavailable` (the shared state named), no traceback logged;
  Redis back: bob logs in on both instances by himself.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from gateway.identity.throttle import LoginThrottle
from peers.web_user import WebUser, WebUserError
from tests.e2e.cluster.cluster_harness import cluster
from tests.e2e.harness import BOB_SECRET

FREE_PER_PAIR = LoginThrottle().free_per_pair


async def login_error(url: str, user: str, secret: str) -> str:
    """The error a login gets (the assertion fails if it succeeds)."""
    try:
        async with WebUser(url, user, secret):
            pass
    except WebUserError as exc:
        return str(exc)
    raise AssertionError(f"{user} logged in with {secret!r}")


async def test_wrong_secrets_over_two_instances_meet_one_limit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with cluster(tmp_path, 2) as c:
        redis, gateways, urls = c.redis, c.gateways, c.urls
        for n in range(FREE_PER_PAIR + 1):  # alternating: each instance sees about half
            error = await login_error(urls[n % 2], "alice", f"wrong-{n}")
            assert "'unauthorized'" in error, error
        for url in urls:  # the limit holds on both, though neither counted more than 3 itself
            error = await login_error(url, "alice", "wrong-again")
            assert "'rate_limited'" in error and "too many failed logins" in error, error
            assert gateways[0].identities.throttle.wait("alice", "127.0.0.1") == 0.0  # not local
        throttles = [g.cluster.throttle_store for g in gateways if g.cluster is not None]
        assert sum(t.lockouts for t in throttles if t is not None) == 1  # logged once, where it fell

        caplog.clear()
        redis.stop()
        with caplog.at_level(logging.WARNING):
            error = await login_error(urls[1], "bob", BOB_SECRET)
        assert "'unavailable'" in error and "shared state (Redis) unavailable" in error, error
        tracebacks = [r for r in caplog.records if r.exc_info is not None or r.levelno >= logging.ERROR]
        assert not tracebacks, [r.getMessage() for r in tracebacks]

        redis.start()
        for url in urls:  # each instance notices Redis is back by itself
            for _ in range(100):
                try:
                    async with WebUser(url, "bob", BOB_SECRET):
                        break
                except WebUserError as exc:
                    assert "'unavailable'" in str(exc), exc
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"bob cannot log in at {url} after Redis came back")
