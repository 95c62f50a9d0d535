"""Which pages may open the gateway's WebSockets (RFC 6455 §10.2, RFC 6454). Pure.

A browser sends the page's origin with every WebSocket upgrade; a cross-site page (evil.example) could
otherwise drive the session of a user who is logged in elsewhere or reuse a token it got hold of.
Allowed: the gateway's own origin (the scheme and Host the request came with), the configured
`http.allowed_origins`, and clients that send no Origin at all (not browsers: scripts, SIP libraries
outside a browser). ``null`` (sandboxed frames, file: pages) is refused.
"""

from __future__ import annotations

from gateway.config.values import normalize_origin


def origin_allowed(origin: str | None, scheme: str, host: str, allowed: frozenset[str]) -> bool:
    """Whether an upgrade with header ``Origin: origin`` to ``scheme``://``host`` (the Host header) may
    proceed, given the normalized ``allowed`` origins."""
    if origin is None:
        return True
    wanted = normalize_origin(origin)
    if wanted is None:
        return False
    return wanted == normalize_origin(f"{scheme}://{host}") or wanted in allowed
