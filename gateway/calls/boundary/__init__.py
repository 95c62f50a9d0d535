"""The call core's boundary: what comes into a call and what goes out of it, as frozen values.

Owns ``events`` (events into a call: from signaling, the SIP user agent, the media bridge and the
timers), ``commands`` (commands out of a call, to the SIP user agent, the media bridge, signaling and the
timers), ``caller`` (what both sides say of who calls, carried by both) and ``_checks`` (the validation
they share; each failure quotes the bad value). It may import only the call package's ``errors``,
``states`` and ``reasons``; never the machine or a handler (the ``calls-boundary`` contract), so that the
runtime and every dialect can speak to the call core without loading it.
"""
