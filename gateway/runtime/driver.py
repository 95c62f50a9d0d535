"""`CallDriver`: the call layer's I/O. It implements `CallService` (WebSocket sessions) and
`OfferService` (the HTTP offer/answer API) over one `CallRegistry`, and takes the UA's incoming calls.

Each call gets a `CallRuntime` (gateway/runtime/call_runtime.py) that runs its commands and feeds
back its events in one task, so one call failing ends that call only. The driver's own job is the
entry points: browser requests become call events (and a refused event becomes a signaling error),
new INVITEs are resolved through the identity map (presence tells who is online) and become
`SipIncomingInvite`, and shutdown ends every call (CANCEL, BYE, 480) before the UA closes.

The driver is composed of one class per concern: `DriverCore` (driver_core.py: state, runtimes,
`RuntimeHost`, shutdown), `BrowserRequests` (browser_requests.py: `CallService`) and `HttpOffers`
(http_offers.py: the HTTP offer API) build on it; `SipInbound` (sip_inbound.py: the UA's callbacks)
is an object of its own over it, `driver.sip_inbound`, whose callbacks the UA is given. This module
only composes them; it imports them and the media package's `BridgeSettings`.
"""

from __future__ import annotations

from dataclasses import replace

from gateway.calls import CallRegistry
from gateway.config import Config
from gateway.identity.lookup import IdentityMap
from gateway.media.bridge_settings import BridgeSettings
from gateway.runtime.driver_core import BridgeFactory, DriverCore
from gateway.runtime.http_offers import HTTP_RETENTION, HttpOffers
from gateway.runtime.merge import ThreeWayCalls
from gateway.runtime.sip_inbound import SipInbound
from gateway.sip import UserAgent

__all__ = ["HTTP_RETENTION", "BridgeFactory", "CallDriver", "DriverCore", "loopback_bridge_settings"]


class CallDriver(HttpOffers):
    """The call layer's I/O: browser requests, the HTTP offer API and the SIP UA's new calls over one
    `CallRegistry`, each call carried out by its `CallRuntime` (see the module note)."""

    def __init__(
        self, registry: CallRegistry, identity: IdentityMap, bridge_settings: BridgeFactory, config: Config
    ) -> None:
        super().__init__(registry, identity, bridge_settings, config)
        self.sip_inbound = SipInbound(self, config)
        self.three_way = ThreeWayCalls(self)  # merged calls (gateway/runtime/merge/)
        self.call_gone = self.three_way.call_gone
        self.takeovers.merge_of = self.three_way.merge_of  # a conference outlives its instance (issue 34)
        self.takeovers.on_merged_call = self.three_way.taken_over
        self.takeovers.on_released = self.three_way.release

    def attach_ua(self, ua: UserAgent) -> None:
        super().attach_ua(ua)
        self.sip_inbound.attach_ua(ua)


def loopback_bridge_settings(settings: BridgeSettings) -> BridgeSettings:
    """A gateway bound to loopback serves browsers on this machine only: its web legs also gather
    127.0.0.1 (aioice skips loopback addresses; a browser may only have loopback candidates, as
    Chromium with --allow-loopback-in-peer-connection on a host without a network)."""
    return replace(settings, include_loopback=True)
