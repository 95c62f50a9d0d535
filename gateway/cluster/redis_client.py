"""The Redis client of a cluster node: a URL, or the master that Sentinel names (redis-py's asyncio API).

Every command is bounded by `cluster.redis_timeout`, so an outage costs a login or a routing decision
that much and no more; redis-py reconnects by itself when Redis comes back. Credentials: AUTH with
`cluster.username` (a Redis 6 ACL user) and `cluster.password`; TLS with `cluster.tls` (a `rediss://`
URL), the server's certificate verified against `ca_file` and its host name checked.
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
    if settings.username is not None:
        options["username"] = settings.username
    tls = settings.tls
    if tls is not None:
        options.update(ssl_cert_reqs="required", ssl_check_hostname=True, ssl_ca_certs=tls.ca_file,
                       ssl_certfile=tls.certificate, ssl_keyfile=tls.private_key)  # fmt: skip
    if settings.sentinel is not None:
        sentinels = [(a.host, a.port or 26379) for a in settings.sentinel.addresses]
        sentinel_options = {k: v for k, v in options.items() if k.startswith("ssl_")}
        if tls is not None:
            options["ssl"] = sentinel_options["ssl"] = True
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            sentinels, sentinel_kwargs={"socket_timeout": settings.redis_timeout, **sentinel_options}
        )
        master: aioredis.Redis = sentinel.master_for(settings.sentinel.service, password=password, **options)
        return master
    assert settings.redis is not None  # ClusterSection.__post_init__: exactly one of the two
    client: aioredis.Redis = aioredis.Redis.from_url(settings.redis, password=password, **options)
    return client
