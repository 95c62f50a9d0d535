"""The `limits` section of gateway.yaml and a user's `limits` override: what one user (or one of her API
keys) may hold at once, so that one user cannot starve the others (issue 32 item 8).

gateway/calls/caps.py enforces the call caps and the RTP port budget at dial time (every dialect passes
through it), gateway/signaling/http_api/sessions.py the event streams, gateway/runtime/message_rate.py the
rate of SIP MESSAGEs to a web user. docs/signaling.md (*Limits*) is the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from gateway.config.values import FloatRange, IntRange


@dataclass(frozen=True, slots=True)
class LimitsSection:
    """Per-user caps, the same for every user unless her `limits` say otherwise."""

    calls_per_user: Annotated[int, IntRange(1, 10_000)] = 8  # calls one user takes part in at once
    # outbound calls of one user not yet answered (dialling, ringing, early media): calls that only ring
    unanswered_per_user: Annotated[int, IntRange(1, 10_000)] = 4
    # the share of the RTP port pairs (media.rtp_ports) one user's calls may hold, at least one pair
    port_share: Annotated[float, FloatRange(0.01, 1.0)] = 0.25
    event_streams_per_user: Annotated[int, IntRange(1, 10_000)] = 8  # GET /webrtc/sessions/{id}/events
    # SIP MESSAGEs (RFC 3428) to one web user: a token bucket per recipient and one per (sender,
    # recipient); a MESSAGE over either is answered 486 Busy Here with Retry-After, never shown
    message_rate: Annotated[float, FloatRange(0.1, 1000.0)] = 5.0  # per second, sustained
    message_burst: Annotated[int, IntRange(1, 10_000)] = 20  # at once


@dataclass(frozen=True, slots=True)
class UserLimits:
    """A user's own caps (users[].limits); a key left out takes the `limits` section's value."""

    calls: Annotated[int, IntRange(1, 10_000)] | None = None
    unanswered: Annotated[int, IntRange(1, 10_000)] | None = None
    port_share: Annotated[float, FloatRange(0.01, 1.0)] | None = None
    event_streams: Annotated[int, IntRange(1, 10_000)] | None = None
