"""The `trace` section of gateway.yaml: per-call traces (both legs' SIP, the web signaling, the gateway's
decisions) kept in memory for the admin to download, and an optional HEPv3 copy of every SIP message to
a Homer capture server (gateway/ops/trace.py, docs/operations.md "Per-call traces").

    trace:
      enabled: true
      keep_calls: 100        # ended calls kept...
      keep_seconds: 3600     # ...for at most this long
      max_messages: 500      # per call (later ones are counted, not kept)
      max_bytes: 524288      # per call
      hep:
        address: 10.0.0.5:9060
        agent_id: 2001
        password: {env: HEP_PASSWORD}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from gateway.config.errors import InvalidValue
from gateway.config.secret import Secret
from gateway.config.values import FloatRange, HostPort, IntRange


@dataclass(frozen=True, slots=True)
class HepSection:
    """Where each SIP message is copied, as HEPv3 over UDP (`address` host:port, port required)."""

    address: HostPort
    agent_id: Annotated[int, IntRange(0, 4294967295)] = 0  # the capture agent id chunk (uint32)
    password: Secret | None = None  # the authentication key chunk, when the server checks one

    def __post_init__(self) -> None:
        if self.address.port is None:
            raise InvalidValue("address", f"needs a port (host:port), got {self.address.host!r}")


@dataclass(frozen=True, slots=True)
class TraceSection:
    """Per-call traces: off by default (they hold the calls' SIP messages and SDPs in memory)."""

    enabled: bool = False
    keep_calls: Annotated[int, IntRange(0, 100_000)] = 100
    keep_seconds: Annotated[float, FloatRange(0.0, 7 * 86400.0)] = 3600.0
    max_messages: Annotated[int, IntRange(1, 100_000)] = 500
    max_bytes: Annotated[int, IntRange(1024, 64 * 1024 * 1024)] = 512 * 1024
    max_live: Annotated[int, IntRange(1, 1_000_000)] = 1000  # calls traced at once
    hep: HepSection | None = field(default=None)
