"""Which pages may open the gateway's WebSockets (RFC 6455 §10.2, RFC 6454). Pure.

A browser sends the page's origin with every WebSocket upgrade; a cross-site page (evil.example) could
otherwise drive the session of a user who is logged in elsewhere or reuse a token it got hold of. The
Host header is no proof of who we are: a DNS-rebinding page (evil.example re-pointed at the gateway's
address) sends ``Origin: http://evil.example`` with ``Host: evil.example``, so the gateway's own origins
come from its configuration, never from the request (issue 32):

- ``http.public_origins``, the URLs browsers open the gateway's pages at (behind a proxy, the proxy's);
- when that is empty, the origins derived from the listener: ``scheme://http.host:http.port`` for a
  named host; for a loopback or wildcard ``http.host`` the loopback names (localhost, 127.0.0.0/8,
  [::1]) in the listener's scheme on any port (the development defaults: a page on the same machine,
  a local proxy in front); with ``http.tls`` the certificate's names at ``http.port`` (a LAN demo with
  ``dev-cert <ip>``);
- the configured ``http.allowed_origins`` (other sites' pages);
- and clients that send no Origin at all (not browsers: scripts, SIP libraries outside a browser).

``null`` (sandboxed frames, file: pages) is refused.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.config.schema import HttpSection
from gateway.config.values import normalize_origin

__all__ = ["OriginPolicy", "origin_policy"]

_WILDCARDS = frozenset({"", "0.0.0.0", "::", "[::]", "*"})


def _loopback(host: str) -> bool:
    bare = host.strip("[]").lower()
    if bare == "localhost" or bare.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False


def _literal(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


@dataclass(frozen=True, slots=True)
class OriginPolicy:
    """The normalized origins allowed, and the scheme in which any loopback origin is (None: none is)."""

    origins: frozenset[str]
    loopback_scheme: str | None = None

    def allows(self, origin: str | None) -> bool:
        """Whether an upgrade with header ``Origin: origin`` (None: absent) may proceed."""
        if origin is None:
            return True
        wanted = normalize_origin(origin)
        if wanted is None:
            return False
        if wanted in self.origins:
            return True
        scheme, _, rest = wanted.partition("://")
        host = rest.rsplit(":", 1)[0] if not rest.endswith("]") else rest
        return scheme == self.loopback_scheme and _loopback(host)


def origin_policy(http: HttpSection, certificate_names: Iterable[str] = ()) -> OriginPolicy:
    """The origins that may open the WebSockets under ``http`` (see the module note); ``certificate_names``:
    the DNS names and addresses of ``http.tls``'s certificate."""
    allowed = set(http.allowed_origins)
    if http.public_origins:
        return OriginPolicy(frozenset(allowed | set(http.public_origins)))
    scheme = "https" if http.tls is not None else "http"
    hosts = [*certificate_names] if http.tls is not None else []
    local = http.host in _WILDCARDS or _loopback(http.host)
    if http.host not in _WILDCARDS:
        hosts.append(http.host)
    for host in hosts:
        origin = normalize_origin(f"{scheme}://{_literal(host)}:{http.port}")
        if origin is not None:
            allowed.add(origin)
    return OriginPolicy(frozenset(allowed), scheme if local else None)
