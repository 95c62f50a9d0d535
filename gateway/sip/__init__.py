"""The gateway's SIP user agent: the asyncio shell around :mod:`sipcore`.

Transports (UDP, TCP) own the sockets, the transaction layer runs :mod:`sipcore`'s transaction
machines on the event loop's clock, and :class:`UserAgent` is what the call layer uses: it places
calls (:class:`OutgoingCall`), delivers incoming ones (:class:`IncomingCall`), reports what
happens to each as event dataclasses, and keeps the configured AORs registered.

Its parts stand on one another in one order (the ``sip-parts`` contract): ``useragent`` (the UA, its
calls, registrations and keep-alive) on ``transactions`` (the transaction layer, its policy and counters)
on ``transports`` (UDP, TCP, TLS and the RFC 3263 resolver). It may import ``sipcore``, ``sdp``,
``gateway.config``, ``gateway.identity`` and the small top-level helpers (``logs``, ``listen``, ``tls``,
``tasks``); never the call core, the runtime, media or signaling (the ``layers`` and
``no-call-core-below`` contracts).
"""

from gateway.sip.useragent.incoming import IncomingCall
from gateway.sip.useragent.outgoing import OutgoingCall
from gateway.sip.useragent.registrar_client import (
    RegistrationChanged,
    RegistrationClient,
    RegistrationSpec,
    registrations_for_users,
)
from gateway.sip.useragent.ua import Listen, UASettings, UAState, UserAgent
from gateway.sip.useragent.ua_calls import Call, CallError, CallState
from gateway.sip.useragent.ua_events import (
    Answered,
    Bye,
    CallEvent,
    Cancelled,
    Confirmed,
    EarlyMedia,
    Failed,
    InfoReceived,
    MessageReceived,
    Provisional,
    ReinviteAcked,
    ReinviteReceived,
    ReinviteResult,
    set_direction,
)

__all__ = [
    "Answered",
    "Bye",
    "Call",
    "CallError",
    "CallEvent",
    "CallState",
    "Cancelled",
    "Confirmed",
    "EarlyMedia",
    "Failed",
    "IncomingCall",
    "InfoReceived",
    "Listen",
    "MessageReceived",
    "OutgoingCall",
    "Provisional",
    "RegistrationChanged",
    "RegistrationClient",
    "RegistrationSpec",
    "ReinviteAcked",
    "ReinviteReceived",
    "ReinviteResult",
    "UASettings",
    "UAState",
    "UserAgent",
    "registrations_for_users",
    "set_direction",
]
