"""ICE server URLs whose host is an IPv6 address, for aiortc 1.16 (issue 68: the web leg over IPv6).

RFC 7064 §3.1 (stun:, stuns:) and RFC 7065 §3.1 (turn:, turns:) take the host of the URL from RFC 3986
§3.2.2: an IPv6 address is an IP-literal, in brackets (``turn:[2001:db8::1]:3478?transport=udp``). aiortc
parses the URLs of its ``RTCIceServer``s with ``aiortc.rtcicetransport.parse_stun_turn_uri`` (called by
``connection_kwargs`` as a peer connection makes its ICE gatherer, at ``addTransceiver``), whose host is
``[^?:]+``: such a URL in ``ice.gateway`` raised "malformed uri" as each web leg was made, and every call
failed. ``accept_ipv6_literals()`` wraps that parser (process-wide, as aiortc looks the function up in its
module; idempotent): a bracketed host is checked here and handed on without its brackets, as aioice takes
a server's address (a ``(host, port)`` for getaddrinfo and sendto); every other URL is aiortc's alone.
``tests/media/webrtc/test_ice_urls.py`` fails if an aiortc upgrade moves the parser.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any, Final

import aiortc.rtcicetransport

from gateway.media.webrtc.aiortc_hooks import HookError

Parser = Callable[[str], dict[str, Any]]

# scheme ":" "[" IPv6address "]" [ ":" port ] [ "?transport=" ... ]: the rest goes to aiortc's parser
_BRACKETED: Final = re.compile(r"(?P<scheme>[A-Za-z]+):\[(?P<address>[^\]]*)\](?P<rest>.*)", re.S)
_STAND_IN: Final = "ipv6-literal"  # a host aiortc's parser accepts, replaced by the address after it


class _Ipv6Literals:
    """aiortc's parser, taught IP-literal hosts (RFC 3986 §3.2.2)."""

    def __init__(self, original: Parser) -> None:
        self.original = original

    def __call__(self, uri: str) -> dict[str, Any]:
        found = _BRACKETED.fullmatch(uri)
        if found is None:
            return self.original(uri)
        try:
            address = ipaddress.IPv6Address(found["address"])
            if address.scope_id is not None:  # a zone (fe80::1%eth0): as ice.* URLs, none (config/values.py)
                raise ValueError
        except ValueError:
            raise ValueError(f"malformed uri: {found['address']!r} is not an IPv6 address") from None
        parsed = self.original(f"{found['scheme']}:{_STAND_IN}{found['rest']}")
        parsed["host"] = str(address)
        return parsed


def accept_ipv6_literals() -> None:
    """Let aiortc's ICE servers be given by URLs with an IPv6 literal host (module note). Idempotent."""
    current = getattr(aiortc.rtcicetransport, "parse_stun_turn_uri", None)
    if isinstance(current, _Ipv6Literals):
        return
    if not callable(current):
        raise HookError("aiortc.rtcicetransport.parse_stun_turn_uri is gone")
    aiortc.rtcicetransport.parse_stun_turn_uri = _Ipv6Literals(current)
