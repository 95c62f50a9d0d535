"""How late the datagram being handled is: seconds between its arrival at the socket and now, 0 outside a
fast-lane drain.

The fast lane's engine (``gateway.media.fastlane``) queues the RTCP and STUN it leaves to Python for up to
its NOTIFY_DELAY (10 ms) so that one wake-up carries many calls' reports; ``Engine.drain`` sets ``late``
for each datagram it hands over (from one ``time.monotonic()`` read per drain: a little short for the last
ones of a long drain, never long) and resets it to 0 after. What takes a report's arrival time reads it:
RFC 3550 §6.4.1's round-trip time A - LSR - DLSR, where A is the report's ARRIVAL, and the arrival of a
sender report that our own DLSR counts from.

RTP and DTLS wake Python at once (and what the engine forwards it accounts with its own arrivals, jitter
included, RFC 3550 A.8), but a Python behind handles them late: ``at`` is their arrival, which the audio
paths take as the packet's time. ICE consent (RFC 7675) allows 30 s, 10 ms is nothing. Datagrams asyncio
hands over itself are handled as they come: ``late`` and ``at`` are 0 then.
"""

from __future__ import annotations

__all__ = ["at", "late"]

late: float = 0.0  # seconds; set and reset by the fast lane's Engine.drain only
# The datagram's arrival itself (``time.monotonic()``, the engine's read of it), 0.0 outside a drain: the
# time the audio paths take for a packet the engine left to Python. A Python seconds behind (a burst of
# calls) would otherwise stamp the packet with when it got to it, and a lane armed with that time (the
# engine's jump check: media time against arrival time since the last packet) would refuse every packet
# of a backlog queued before it, each refusal handing the direction back to the Python path: no lane
# ever took over, every call silent (issue 38 item 3).
at: float = 0.0
