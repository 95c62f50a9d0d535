"""Calls that outlive what carries them (issue 34): a connected call waits for its browser when the page's
socket or media goes (`reconnect.py`: who may take it back, `reattach`), and another gateway instance
carries it on when this one dies (`takeover.py`: each call's handover, kept in Redis, and the survivor's
takeover of it). It imports the call layer, the runtime's `CallRuntime`, the signaling's session types
and the SIP UA's call; the driver (driver_core.py) owns one of each.
"""
