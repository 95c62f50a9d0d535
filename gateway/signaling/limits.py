"""Limits on browser connections, and the per-connection token bucket that enforces the message rate.

One `SignalingLimits` bounds every WebSocket dialect alike (gateway/signaling/session_loop.py applies
them; docs/signaling.md, *Limits*, is the table)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from gateway.signaling.errors import RateLimited
from gateway.signaling.ws.protocol import MAX_MESSAGE_BYTES

DEFAULT_MAX_SESSIONS_PER_USER: Final = 5


@dataclass(frozen=True, slots=True)
class SignalingLimits:
    max_message_bytes: int = MAX_MESSAGE_BYTES  # larger WebSocket messages get `too_large`
    rate: float = 20.0  # messages per second, sustained, per connection
    burst: int = 40  # messages allowed at once
    max_rate_limited: int = 200  # consecutive refused messages after which the socket is closed
    login_timeout: float = 5.0  # seconds a socket may stay open without a successful login
    # seconds between WebSocket pings (RFC 6455 §5.5.2); no pong within half of it: closed, so a browser
    # whose network went away is noticed in at most 1.5x this (its calls end with BYE)
    heartbeat: float = 4.0
    max_sessions_per_user: int = DEFAULT_MAX_SESSIONS_PER_USER
    service_timeout: float = 20.0  # seconds the HTTP API waits for the call layer (then 408)
    dtmf_burst: float = 60.0  # seconds of keypad tones a connection may have queued (refilled in real time)
    send_timeout: float = 10.0  # seconds a message to the browser may wait for it to read (then: closed)
    max_awaiting_login: int = 1000  # sockets open but not logged in; more get HTTP 429 (bounds a flood)
    max_awaiting_login_per_ip: int = 8  # of those, from one address; more get HTTP 429 (one host's flood)
    max_failed_logins: int = 3  # wrong credentials on one socket; then it is closed (4001)
    # SIP over WebSocket has no login message (digest is SIP's): its flows are counted for their whole life
    max_sip_flows: int = 4096  # open SIP WebSocket flows; more get HTTP 429
    max_sip_flows_per_ip: int = 32  # of those, from one address (an office behind one NAT); then 429
    # requests of one session handled at once (/ws: a `message` awaiting Timer F beside `ping`, `hangup`);
    # more wait their turn, in order, up to `max_requests_queued`; beyond, `too_many_requests`
    # (session_loop.SessionSocket.run)
    max_requests_in_flight: int = 16
    max_requests_queued: int = 64

    def __post_init__(self) -> None:
        if self.max_message_bytes < 1024:
            raise ValueError(f"max_message_bytes must be at least 1024, got {self.max_message_bytes!r}")
        if self.rate <= 0 or self.burst < 1:
            raise ValueError(f"rate and burst must be positive, got {self.rate!r}, {self.burst!r}")
        for name in ("login_timeout", "heartbeat", "service_timeout", "send_timeout", "dtmf_burst"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        for name in (
            "max_sessions_per_user", "max_rate_limited", "max_awaiting_login", "max_awaiting_login_per_ip",
            "max_failed_logins", "max_sip_flows", "max_sip_flows_per_ip", "max_requests_in_flight",
            "max_requests_queued",
        ):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)!r}")


class TokenBucket:
    """`burst` tokens, refilled at `rate` per second; each message takes one, or `cost` (RFC 2697's idea,
    simplified)."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float]) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def take(self, cost: float = 1.0) -> bool:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False


# What one digit costs from a DTMF budget when the browser names no duration (the call layer's default
# is 100 ms), and the gap between digits: the budget is in seconds of tones, refilled in real time, so
# that a browser cannot queue hours of tones (or thousands of SIP INFOs) faster than they play.
DEFAULT_DTMF_MS: Final = 100
DTMF_GAP_MS: Final = 50


def charge_tones(budget: TokenBucket, digits: str, duration_ms: int | None, burst: float) -> None:
    """The digits' seconds of tones from a session's DTMF budget (`limits.dtmf_burst`); past it
    `rate_limited` naming `digits` (`/ws` and JSON-RPC alike)."""
    if not budget.take(len(digits) * ((duration_ms or DEFAULT_DTMF_MS) + DTMF_GAP_MS) / 1000):
        raise RateLimited(
            f"more than {burst:g} seconds of tones queued: wait for the digits to play", field="digits"
        )
