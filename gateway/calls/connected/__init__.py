"""Handlers of a connected call (states connected and holding) and of its end: ``midcall`` (re-INVITEs,
hold, DTMF, hangup both ways), ``escalation`` (the SIP party adding or dropping video), ``transfer`` (REFER
both ways, RFC 3515), ``replaces`` (an INVITE with Replaces taking the call over, RFC 3891 §3),
``reconnect`` (the call outliving its browser for the reconnect grace), ``info`` (INFO, RFC 6086) and
``chat`` (MESSAGE in the dialog, RFC 3428 §4).

Each handler takes the call machine and an event and returns commands; it moves the call's state only
through the machine's methods. It may import the call package's machine, records, states, reasons and
errors, the boundary's events and commands, and the set-up handlers a transfer starts a new call with
(``setup.outbound``); nothing outside ``gateway.calls``, ``sipcore`` and ``sdp``.
"""
