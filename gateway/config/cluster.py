"""The `cluster` section of gateway.yaml: several gateways sharing state in Redis (docs/deploy.md).

    cluster:
      redis: redis://127.0.0.1:6379/0          # or sentinel: {addresses: [...], service: mymaster}
      instance_id: gw-a                         # unique per instance
      advertise: {sip: 10.0.0.2:5060, http: http://10.0.0.2:8080}   # where the others reach this one
      secret: {env: GATEWAY_CLUSTER_SECRET}     # signs forwarded requests and what Redis holds
      username: gateway                         # Redis ACL user (AUTH username password)
      password: {env: GATEWAY_REDIS_PASSWORD}   # from the environment or a file, never inline
      tls: {ca_file: /etc/redis/ca.pem}         # with a rediss:// URL (or Sentinel): TLS to Redis

Absent, the gateway keeps its state in memory (one machine). docs/deploy.md says what is shared.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Final
from urllib.parse import urlsplit

from gateway.config.errors import InvalidValue
from gateway.config.secret import Secret, SecretSource
from gateway.config.values import FloatRange, HostPort, Parse

_INSTANCE_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


def _instance_id(value: object) -> str:
    if not isinstance(value, str) or not _INSTANCE_ID.fullmatch(value):
        raise ValueError(f"expected 1-63 letters, digits, '.', '_' or '-', got {value!r}")
    return value


def _url(schemes: tuple[str, ...], form: str, path: bool) -> Callable[[object], str]:
    """A parser of URLs of `schemes` (`path` False: nothing after host[:port] but a slash)."""

    def parse(value: object) -> str:
        if not isinstance(value, str):
            raise TypeError(f"expected {form}, got {value!r}")
        parts = urlsplit(value)
        if parts.scheme not in schemes or not (parts.hostname or (path and parts.path)):
            raise ValueError(f"expected {form}, got {value!r}")
        if not path and parts.path not in ("", "/"):
            raise ValueError(f"expected {form} with no path, got {value!r}")
        return value if path else value.rstrip("/")

    return parse


_redis_url = _url(("redis", "rediss", "unix"), "redis://host[:port][/db], rediss:// or unix://", True)
_http_url = _url(("http", "https"), "http(s)://host[:port]", False)


def _key_prefix(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_.:-]{1,32}", value):
        raise ValueError(f"expected 1-32 letters, digits or '_.:-', got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class ClusterAdvertise:
    """Where the other instances (and Kamailio) reach this one: SIP `host:port` (UDP) for redirected
    calls, HTTP base URL for forwarded HTTP API requests."""

    sip: HostPort
    http: Annotated[str, Parse(_http_url)]

    def __post_init__(self) -> None:
        if self.sip.port is None:
            raise InvalidValue("sip", f"needs a port (host:port), got {str(self.sip)!r}")


@dataclass(frozen=True, slots=True)
class RedisSentinel:
    """Redis through Sentinel: the master of `service` as the sentinels at `addresses` name it."""

    addresses: tuple[HostPort, ...]
    service: str = "mymaster"

    def __post_init__(self) -> None:
        if not self.addresses:
            raise InvalidValue("addresses", "needs at least one sentinel host:port")


@dataclass(frozen=True, slots=True)
class RedisTls:
    """TLS to Redis (a `rediss://` URL, or the master and sentinels found through Sentinel): the server's
    certificate must chain to `ca_file` (default: the system's CAs) and name the host; `certificate` and
    `private_key` are this instance's client certificate when Redis asks for one (tls-auth-clients)."""

    ca_file: str | None = None
    certificate: str | None = None
    private_key: str | None = None

    def __post_init__(self) -> None:
        if (self.certificate is None) != (self.private_key is None):
            raise InvalidValue("certificate", "give both certificate and private_key, or neither")


@dataclass(frozen=True, slots=True)
class ClusterSection:
    instance_id: Annotated[str, Parse(_instance_id)]
    advertise: ClusterAdvertise
    secret: Secret  # shared by every instance: authenticates forwarded HTTP requests and the admin API
    redis: Annotated[str, Parse(_redis_url)] | None = None
    sentinel: RedisSentinel | None = None
    password: Secret | None = None  # Redis AUTH (also for the master found through Sentinel)
    username: str | None = None  # Redis 6 ACL user (AUTH username password); None: the default user
    tls: RedisTls | None = None  # TLS to Redis (needs a rediss:// URL when redis is a URL)
    key_prefix: Annotated[str, Parse(_key_prefix)] = "gw:"
    # seconds between refreshes of this instance's leases (presence, HTTP sessions, PBX registrations)
    heartbeat: Annotated[float, FloatRange(0.1, 60.0)] = 2.0
    # a lease not refreshed for this long is gone: a dead instance's users and registrations move
    lease: Annotated[float, FloatRange(0.4, 600.0)] = 6.0
    redis_timeout: Annotated[float, FloatRange(0.05, 30.0)] = 0.5  # one Redis command, seconds
    drain_timeout: Annotated[float, FloatRange(0.0, 86400.0)] = 300.0  # drain: wait for calls this long

    def __post_init__(self) -> None:
        if (self.redis is None) == (self.sentinel is None):
            raise InvalidValue("redis", "give exactly one of redis (a URL) and sentinel")
        if self.lease < 2 * self.heartbeat:
            raise InvalidValue("lease", f"must be at least twice heartbeat ({self.heartbeat:g} s)")
        if len(self.secret.reveal()) < 16:
            raise InvalidValue("secret", "must be at least 16 characters")
        self._check_redis_credentials()

    def _check_redis_credentials(self) -> None:
        parts = urlsplit(self.redis) if self.redis is not None else None
        if parts is not None and (parts.password or parts.username):
            raise InvalidValue(
                "redis",
                "no credentials in the URL: cluster.username, and cluster.password from the environment",
            )
        if self.password is not None and self.password.source is SecretSource.INLINE:
            raise InvalidValue(
                "password", "must come from the environment ({env: NAME}) or a file, not inline"
            )
        if self.username is not None and not re.fullmatch(r"[!-~]{1,64}", self.username):
            raise InvalidValue("username", f"expected 1-64 printable characters, got {self.username!r}")
        if self.username is not None and self.password is None:
            raise InvalidValue("username", "an ACL user needs cluster.password")
        if parts is not None and self.tls is not None and parts.scheme != "rediss":
            raise InvalidValue("tls", f"needs a rediss:// URL, got {parts.scheme}://")
