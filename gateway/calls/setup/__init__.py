"""Handlers of a call until it is connected or over: ``inbound`` (SIP -> web user), ``outbound`` (browser
-> PBX), ``redirects`` (following a 3xx, RFC 3261 §8.1.3.4), ``early_update`` (an offer in UPDATE in the
early dialog, RFC 3311 §5.1) and ``pickup`` (an INVITE with Replaces naming a ringing outbound call,
RFC 3891 §3); ``busy`` says, from the registry, what an INVITE for a web user all of whose sessions carry
a call gets (users[].on_busy) before any call rings.

Each handler takes the call machine and an event and returns commands; it moves the call's state only
through the machine's methods. It may import the call package's machine, records, states, reasons and
errors, the boundary's events and commands, and the mid-call handlers it hands over to (``connected``);
nothing outside ``gateway.calls``, ``sipcore`` and ``sdp``. The transition table (``gateway.calls.table``)
names the handlers.
"""
