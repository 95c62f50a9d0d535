"""The cluster's one error: the shared state (Redis) cannot be reached.

It is a `SignalingError` (503, code `unavailable`) because what it refuses is a login or an HTTP request,
and the browser must be told why: "shared state unavailable, try again shortly". Calls in progress never
see it: they need nothing from Redis.
"""

from __future__ import annotations

from gateway.signaling.errors import SignalingError


class ClusterUnavailable(SignalingError):
    code = "unavailable"
    http_status = 503
