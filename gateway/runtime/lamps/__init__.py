"""Busy lamps and the voicemail light (issue 37): the subscriptions the gateway keeps at the PBX for its
web users (RFC 6665: the dialog package, RFC 4235; message-summary, RFC 3842) and what their NOTIFYs
tell the users' sessions. It imports the SIP user agent's subscription client, the config, the identity
model and the signaling events; nothing imports it but gateway/app.py.
"""

from gateway.runtime.lamps.board import Lamps, lamp_specs, start_lamps

__all__ = ["Lamps", "lamp_specs", "start_lamps"]
