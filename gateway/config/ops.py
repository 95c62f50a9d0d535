"""The operations sections of gateway.yaml: `metrics` (Prometheus /metrics, /readyz), `cdr` (call records)
and `quality` (figures while a call is up).

docs/operations.md describes what they expose.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from gateway.config.errors import InvalidValue
from gateway.config.secret import Secret
from gateway.config.values import FloatRange, HostPort, IntRange, Parse


@dataclass(frozen=True, slots=True)
class MetricsSection:
    """`/metrics` in the Prometheus text format. Protection: a bearer `token` (401 without it) and/or a
    `listen` address of its own (a port only the monitoring network reaches); /healthz and /readyz are
    served there too."""

    enabled: bool = True
    token: Secret | None = None  # `Authorization: Bearer <token>` required when set
    listen: HostPort | None = None  # host:port of a listener for /metrics, /healthz, /readyz only
    loop_lag_interval: Annotated[float, FloatRange(0.05, 60.0)] = 0.5  # event-loop lag probe period, s


def webhook_url(value: object) -> str:
    """An http:// or https:// URL with a host (the cdr webhook, the `webhooks` receivers)."""
    if not isinstance(value, str):
        raise TypeError(f"expected an http(s) URL, got {value!r}")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class CdrSection:
    """One JSON call record per call when it ends: appended to `file` (JSON lines), logged (`log`, INFO
    on the gateway.ops.cdr logger), and/or POSTed to `webhook` (never holding up a call)."""

    file: str | None = None  # path of a JSON lines file (created, appended to)
    log: bool = False
    webhook: Annotated[str, Parse(webhook_url)] | None = None
    webhook_timeout: Annotated[float, FloatRange(0.1, 60.0)] = 5.0

    def __post_init__(self) -> None:
        if self.file is not None and not self.file.strip():
            raise InvalidValue("file", "must be a path (omit the key for no file)")


@dataclass(frozen=True, slots=True)
class QualitySection:
    """Quality while a call is up (gateway/ops/quality.py): every `interval` seconds, one timer samples each
    live call's legs (RTT, jitter, loss, an estimated MOS), observes the /metrics histograms, and tells the
    web user when a leg's figures move by `min_change` MOS or cross `poor_mos` (its "poor connection"
    indicator). A leg under `alarm_mos` for `alarm_samples` samples in a row raises one `quality_alarm`
    (webhooks, a WARNING), and one recovery once it stays at or above it as long."""

    enabled: bool = True
    interval: Annotated[float, FloatRange(0.5, 300.0)] = 5.0
    poor_mos: Annotated[float, FloatRange(1.0, 4.5)] = 3.5
    min_change: Annotated[float, FloatRange(0.05, 4.0)] = 0.3
    alarm_mos: Annotated[float, FloatRange(1.0, 4.5)] = 3.0
    alarm_samples: Annotated[int, IntRange(1, 1000)] = 3
