"""Dialogs and what happens inside them (RFC 3261 §12-§15 and the extensions a call uses), sans-I/O.

Owns ``dialog`` (one INVITE dialog and its session rules), ``dialogset`` (a UA's dialogs by id, forking
of our INVITEs), ``offer_answer`` (a dialog's offer/answer state, RFC 3264), ``reliable`` (100rel: RSeq,
RAck, PRACK, RFC 3262), ``session_timer`` (RFC 4028's negotiation), ``refer`` and ``replacing`` (transfer:
REFER, its NOTIFYs, Replaces, RFC 3515/3891), ``requests`` (builders of the requests a UA sends and the
route set) and ``inspection`` (what a UAS checks before it acts on a request). It may import
``sipcore.syntax``, ``sipcore.errors`` and ``sipcore.tables``; never a transaction, authentication or
server location (the asyncio shell, ``gateway.sip``, joins them).
"""
