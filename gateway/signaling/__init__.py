"""Browser signaling: the WebSocket JSON protocol, the HTTP offer/answer API, the softphone page.

The only package that imports aiohttp (ARCHITECTURE.md). Layers:
  protocol.py, events.py, offer_protocol.py  sans-I/O codecs: JSON in -> requests, events -> JSON out
  connection.py                              one browser connection's logic (login, limits, dispatch)
  ws.py, http_api.py, routes.py              the thin aiohttp layer, and `add_signaling_routes`
  service.py                                 `CallService`, `OfferService`, `SessionSink`: the call layer's side

    add_signaling_routes(app, call_service=calls, offer_service=offers, identity=identities,
                         presence=presence, config=config, clock=time.time)

The protocol is documented in docs/signaling.md.
"""

from gateway.signaling.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    ServiceError,
    SignalingError,
    Timeout,
    TooLarge,
    Unauthorized,
    UnknownType,
)
from gateway.signaling.events import (
    Connected,
    DtmfReceived,
    EarlyMedia,
    Ended,
    ErrorMessage,
    Event,
    Held,
    IceCandidate,
    Incoming,
    Offer,
    Resumed,
    Ringing,
)
from gateway.signaling.limits import SignalingLimits
from gateway.signaling.routes import add_signaling_routes
from gateway.signaling.service import CallService, OfferResult, OfferService, SessionSink

__all__ = [
    "BadRequest",
    "CallService",
    "Conflict",
    "Connected",
    "DtmfReceived",
    "EarlyMedia",
    "Ended",
    "ErrorMessage",
    "Event",
    "Forbidden",
    "Held",
    "IceCandidate",
    "Incoming",
    "NotFound",
    "Offer",
    "OfferResult",
    "OfferService",
    "RateLimited",
    "Resumed",
    "Ringing",
    "ServiceError",
    "SessionSink",
    "SignalingError",
    "SignalingLimits",
    "Timeout",
    "TooLarge",
    "Unauthorized",
    "UnknownType",
    "add_signaling_routes",
]
