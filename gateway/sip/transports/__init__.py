"""SIP transports (RFC 3261 §18): the one part of the SIP stack that owns sockets, and where they send.

Owns ``transport`` (the transport interface, UDP, and the addresses they share), ``transport_tcp`` (TCP
and TLS, streams cut into messages by ``sipcore.syntax.framing``) and ``resolver`` (RFC 3263 server
location over DNS with dnspython, failover and a blocklist). It may import ``sipcore``, the gateway's
``logs``, ``listen`` and ``tls`` helpers, asyncio, ssl and dnspython; never the transaction layer or the
user agent above it (the ``sip-parts`` contract). SIP over WebSocket (``gateway.sip.transport_ws``) is a
transport too; it sits at the package's top while it moves out of it.
"""
