"""The Redis client of a cluster node: a URL, or the master that Sentinel names (redis-py's asyncio API).

Every command is bounded by `cluster.redis_timeout`, so an outage costs a login or a routing decision
that much and no more; redis-py reconnects by itself when Redis comes back.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel

from gateway.config.cluster import ClusterSection


def connect(settings: ClusterSection) -> aioredis.Redis:
    password = settings.password.reveal() if settings.password is not None else None
    options: dict[str, Any] = {
        "socket_timeout": settings.redis_timeout,
        "socket_connect_timeout": settings.redis_timeout,
        "decode_responses": True,
        "health_check_interval": 5,
    }
    if settings.sentinel is not None:
        sentinels = [(a.host, a.port or 26379) for a in settings.sentinel.addresses]
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            sentinels, sentinel_kwargs={"socket_timeout": settings.redis_timeout}
        )
        master: aioredis.Redis = sentinel.master_for(settings.sentinel.service, password=password, **options)
        return master
    assert settings.redis is not None  # ClusterSection.__post_init__: exactly one of the two
    client: aioredis.Redis = aioredis.Redis.from_url(settings.redis, password=password, **options)
    return client
