"""Three-way calls (issue 37 item 2): a web user's current call and a held one merged into one
conference mixed in the gateway (three_way.py). This package imports the media package (the room
mixer, the bridge's legs lent to it), the call layer's views, the signaling's errors and events, and
names the driver for typing only.
"""

from gateway.runtime.merge.three_way import Conference, ThreeWayCalls

__all__ = ["Conference", "ThreeWayCalls"]
