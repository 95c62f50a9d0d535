"""The `admin` and `webhooks` sections of gateway.yaml: who may see and control the live calls (the admin
page and REST API, gateway/signaling/admin/api.py), and where call events are POSTed (gateway/ops/webhooks.py).

    admin:
      token: {env: GATEWAY_ADMIN_TOKEN}   # Authorization: Bearer <token> on /admin/api/*
    users:
      - id: alice
        roles: [admin]                    # her login (session token, Basic) opens /admin too
    webhooks:
      - url: https://hooks.example.org/gateway
        secret: {env: GATEWAY_WEBHOOK_SECRET}
        events: [ringing, answered, ended, quality_alarm]   # default: all of them

docs/operations.md describes the page, the API and the signature.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Final

from gateway.config.errors import InvalidValue
from gateway.config.ops import webhook_url
from gateway.config.secret import Secret
from gateway.config.values import FloatRange, IntRange, Parse

ROLES: Final = ("admin",)  # the roles a user entry may have (users[].roles)
WEBHOOK_EVENTS: Final = ("ringing", "answered", "ended", "quality_alarm")
MIN_SECRET_CHARS: Final = 16


def parse_role(value: object) -> str:
    if not isinstance(value, str) or value not in ROLES:
        raise ValueError(f"expected a role ({', '.join(ROLES)}), got {value!r}")
    return value


def _event(value: object) -> str:
    if not isinstance(value, str) or value not in WEBHOOK_EVENTS:
        raise ValueError(f"expected a call event ({', '.join(WEBHOOK_EVENTS)}), got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class AdminSection:
    """The bearer `token` of the admin REST API (for scripts; none: only users with `roles: [admin]`)."""

    token: Secret | None = None

    def __post_init__(self) -> None:
        if self.token is not None and len(self.token.reveal()) < MIN_SECRET_CHARS:
            raise InvalidValue("token", f"must be at least {MIN_SECRET_CHARS} characters")


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """One receiver of call events: each POST is signed with `secret` (HMAC-SHA256), retried with
    exponential backoff (`backoff` s doubling up to `backoff_max`) until `max_attempts`."""

    url: Annotated[str, Parse(webhook_url)]
    secret: Secret
    events: tuple[Annotated[str, Parse(_event)], ...] = WEBHOOK_EVENTS
    timeout: Annotated[float, FloatRange(0.1, 60.0)] = 5.0
    max_attempts: Annotated[int, IntRange(1, 20)] = 5
    backoff: Annotated[float, FloatRange(0.01, 60.0)] = 1.0
    backoff_max: Annotated[float, FloatRange(0.01, 3600.0)] = 60.0
    queue: Annotated[int, IntRange(1, 100_000)] = 1000  # events waiting; the oldest dropped beyond

    def __post_init__(self) -> None:
        if len(self.secret.reveal()) < MIN_SECRET_CHARS:
            raise InvalidValue("secret", f"must be at least {MIN_SECRET_CHARS} characters")
        if not self.events:
            raise InvalidValue("events", f"name at least one of {', '.join(WEBHOOK_EVENTS)}")
        if self.backoff_max < self.backoff:
            raise InvalidValue("backoff_max", f"must be at least backoff ({self.backoff})")
