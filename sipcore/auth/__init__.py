"""Digest authentication (RFC 3261 §22, RFC 7616, RFC 8760, RFC 2617), both sides, sans-I/O.

Owns ``digest`` (the client: challenges read, credentials computed) and ``digest_server`` (the server:
challenges issued and answers verified). It may import ``sipcore.syntax`` and ``sipcore.errors``; never a
dialog or a transaction: a request is authorised before either acts on it.
"""
