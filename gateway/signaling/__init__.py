"""Browser signaling: every web dialect (JSON WebSocket, HTTP offer/answer, JSON-RPC, rooms, WHIP/WHEP,
SIP over WebSocket) over the one call core, and the softphone page.

The only package that imports aiohttp (ARCHITECTURE.md). Shared by every dialect, at the top:
  events.py, errors.py, service.py   what sessions are told, errors with their codes, the call layer's side
  session_loop.py, limits.py         the one socket loop of every WebSocket dialect and its limits
  sip_ws.py                          SIP over WebSocket's upgrades on it (the SIP side: gateway/websip)
  origin.py, api_auth.py, tokens.py, revocation.py   who may connect, as whom
  http.py, routes.py                 the HTTP server, and `add_signaling_routes`
  cluster_http.py, ops_http.py       HTTP between instances; readiness and metrics
One package per dialect (each says what it owns and may import): ws (the JSON `/ws`), http_api (offer/
answer), jsonrpc, rooms, whip (WHIP, WHEP).

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
