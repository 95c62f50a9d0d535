"""Where SIP messages go (RFC 3261 §8.1.2, §8.1.3.4, §18.2.2; RFC 3263; RFC 3581), sans-I/O.

Owns ``routing`` (the next hop of a request and the address a response goes back to), ``locate`` (which
DNS lookups a next hop needs and the order of its targets: the asyncio resolver in ``gateway.sip`` runs
them) and ``redirect`` (the targets of a 3xx, best q-value first). It may import ``sipcore.syntax`` and
``sipcore.errors``; never a dialog, a transaction or authentication.
"""
