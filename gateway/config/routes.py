"""`routes`: per destination, whether the gateway terminates the media of a web user's call or passes
the browser's WebRTC description through to the SIP side (issue 13 item 7).

    routes:
      - match: "7xxx"                 # a dial pattern (gateway/identity/patterns.py) on the dialled user
        media: passthrough
      - match: "@webrtc.example.com"  # or the Request-URI's domain
        media: passthrough

``sip_offer: webrtc`` (with ``media: terminate``): the gateway terminates the media but offers the SIP
side WebRTC media (DTLS-SRTP with a=setup:actpass, ICE-lite, rtcp-mux, BUNDLE), for a SIP side that takes
nothing else.

The first route that matches the call's Request-URI decides; no route: ``terminate``. For a call *to*
a web user the route is matched against the caller's From URI, and pass-through applies only when its
offer is WebRTC's (DTLS-SRTP with ICE: what the browser can take as it is). A route list
rather than a pbx-level switch because one PBX usually fronts both: WebRTC-capable endpoints (a
WebRTC extension range, a WebRTC SBC domain) and plain phones that need the bridge.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

from gateway.config.pbxs import CallerId, PbxName, RewriteRule
from gateway.config.recording import RecordingMode
from gateway.config.values import Parse, check_host
from gateway.identity.patterns import DialPattern
from sipcore.errors import SIPError
from sipcore.syntax.uri import SipURI, parse_uri


class MediaMode(enum.StrEnum):
    """How a call's media is carried: through the bridge (both legs terminated), or browser <-> peer."""

    TERMINATE = "terminate"
    PASSTHROUGH = "passthrough"


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """A dial pattern on the Request-URI's user part, or (``@domain``) the Request-URI's host."""

    pattern: DialPattern | None = None
    domain: str | None = None

    def __post_init__(self) -> None:
        if (self.pattern is None) == (self.domain is None):
            raise ValueError(f"a route matches a dial pattern or a domain, not {self!r}")

    def matches(self, target: str) -> bool:
        try:
            uri = parse_uri(target)
        except (SIPError, ValueError):
            return False
        if not isinstance(uri, SipURI):
            return False
        if self.domain is not None:
            return uri.host.lower() == self.domain
        return self.pattern is not None and uri.user is not None and self.pattern.matches(uri.user)

    def __str__(self) -> str:
        return f"@{self.domain}" if self.domain is not None else str(self.pattern)


def parse_route_match(value: object) -> RouteMatch:
    """``"@example.com"``: a domain; anything else a dial pattern (``"7xxx"``, ``"."``)."""
    if isinstance(value, str) and value.startswith("@"):
        return RouteMatch(domain=check_host(value[1:]).lower())
    return RouteMatch(pattern=DialPattern.from_config(value))


class SipOffer(enum.StrEnum):
    """What the gateway's offer to the SIP side carries when it terminates the media: plain RTP (SDES
    per media.sip_srtp), or WebRTC media (DTLS-SRTP, ICE-lite, rtcp-mux, BUNDLE) for a SIP side that
    takes nothing else (a WebRTC SBC, a WebRTC-only extension)."""

    RTP = "rtp"
    WEBRTC = "webrtc"


@dataclass(frozen=True, slots=True)
class RouteConfig:
    match: Annotated[RouteMatch, Parse(parse_route_match)]
    media: MediaMode = MediaMode.TERMINATE
    sip_offer: SipOffer = SipOffer.RTP  # with media: terminate
    recording: RecordingMode | None = None  # its calls' recording mode (config/recording.py)
    # Several PBXs (config/pbxs.py): where the call goes, how the number is rewritten, what it presents
    pbx: PbxName | None = None
    tenant: PbxName | None = None  # the route is only this tenant's users'
    rewrite: tuple[RewriteRule, ...] = ()
    caller_id: CallerId | None = None

    def __post_init__(self) -> None:
        if self.media is MediaMode.PASSTHROUGH and self.sip_offer is not SipOffer.RTP:
            raise ValueError("sip_offer applies to media: terminate (pass-through sends the browser's offer)")


def route_for(routes: Sequence[RouteConfig], target: str | None) -> RouteConfig | None:
    """The first route matching ``target`` (a Request-URI, or a caller's From URI), else None."""
    if target is not None:
        for route in routes:
            if route.match.matches(target):
                return route
    return None


def media_mode(routes: Sequence[RouteConfig], target: str | None) -> MediaMode:
    """The media mode of a call to ``target`` (a Request-URI): the first matching route's, else terminate."""
    route = route_for(routes, target)
    return route.media if route is not None else MediaMode.TERMINATE
