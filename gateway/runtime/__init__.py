"""The driver: carries out the call layer's commands with the SIP UA, the media bridges, the browser
sessions and timers, and feeds back what happens (see gateway/runtime/driver.py and docs/runtime.md).
A call's decisions belong to the call machine (gateway/calls); each call's `CallRuntime` runs the
machine's commands through its `SipSide` and `MediaSide` (one `CallMedia` interface for the bridge and
pass-through media), and `CallDriver` turns browser requests and new INVITEs into call events. The
package may import everything below it (calls, config, identity, media, signaling, sip, sipcore, sdp);
of those, none imports it (gateway/ops and gateway/cluster, wired beside it by app.py, do). Rooms with SIP parties are its sub-package `rooms`;
live audio streams of calls to apps, `audio_streams`.

    driver = CallDriver(registry, identities, bridge_settings, config)
    add_signaling_routes(app, call_service=driver, offer_service=OfferApi(driver), ...)
    inbound = driver.sip_inbound
    ua = UserAgent(settings, on_incoming_call=inbound.on_incoming_call, on_registration=inbound.on_registration)
    driver.attach_ua(ua)
"""

from gateway.runtime.call_runtime import CallRuntime
from gateway.runtime.driver import CallDriver, loopback_bridge_settings
from gateway.runtime.offers import HttpSession, OfferApi, http_status_for

__all__ = [
    "CallDriver",
    "CallRuntime",
    "HttpSession",
    "OfferApi",
    "http_status_for",
    "loopback_bridge_settings",
]
