"""The SIP user agent (the transaction user, RFC 3261 §8, §12-§15 and extensions), what the runtime uses.

Owns ``ua`` (``UserAgent``), ``ua_settings`` and ``ua_start`` (its configuration and what it works out at
start), ``ua_calls``, ``incoming`` and ``outgoing`` (its calls, received and placed), ``ua_events`` (what
they report to the call layer), ``ua_reliable``, ``ua_update``, ``ua_transfer`` and ``ua_replaces``
(PRACK, UPDATE, REFER and Replaces on those calls), ``registrar_client`` (REGISTER, driving
``sipcore.registration``), ``keepalive`` (OPTIONS to the PBX) and ``pbx_binding`` (where users' PBX
credentials may go). It may import ``sipcore``, ``sdp``, ``gateway.config``, ``gateway.identity``, the
transaction layer and the transports below it, and asyncio; never the call core (``gateway.calls``) or
the runtime: the runtime joins them.
"""
